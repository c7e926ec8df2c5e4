"""Page write benchmark: CPU one worker spends on a page of 100 timesheets (with their time
entries) and on a page of 100 invoices (with their lines), from the response body to the
committed transaction, split into its steps.

    uv run python benchmarks/page_write.py [--size small] [--pages 30]

Pages are rendered from a generated firm exactly as the sandbox Karbon sends them. Each page
is written for a new tenant, so every write is an insert, as in a first sync. CPU is this
process's (`time.process_time`): PostgreSQL's own work is not in it.

Last measured on 2 cores shared with PostgreSQL, 30 pages each (ms of CPU per page, the
better of two runs):

    stream      decode  tokens+parse  save  raw page  commit  total
    timesheets  1.0     5.5           6.7   1.0       0.4     14.7   (176 KB page)
    invoices    1.2     2.3           4.4   1.1       0.4      9.4   (140 KB page)

`save` took 9.0 ms for timesheets and 6.4 ms for invoices (in the better run; 13.9 and 11.3
in the other) while rows went to PostgreSQL as one array per column, not one JSON document.

Uses DATABASE_URL when set, the embedded server otherwise; runs in a scratch database that
is dropped afterwards.
"""

import argparse
import asyncio
import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from app.db import create_engine, create_sessionmaker, unit_of_work
from app.embedded import resolve_service_urls
from app.settings import Settings
from app.sync.karbon.client import KarbonResponse
from app.sync.records import parse_batch
from app.sync.store import RecordStore
from app.sync.streams import STREAMS
from app.worker import tune_worker_process
from sandbox import render
from sandbox.generator import generate_firm
from tests.factories import create_tenant
from tests.services import scratch_database

PAGE = 100
STEPS = ("decode", "tokens+parse", "save", "raw page", "commit")


def page_bodies(size: str) -> dict[str, bytes]:
    """The first list page of timesheets and of invoices, as Karbon would send them."""
    firm = generate_firm(size, 0)
    sheets = [render.timesheet(t, with_entries=True) for t in firm.timesheets.values()]
    invoices = [render.invoice_summary(i, with_lines=True) for i in firm.invoices.values()]
    return {
        "timesheets": render.dumps({"value": sheets[:PAGE]}).encode(),
        "invoices": render.dumps({"value": invoices[:PAGE]}).encode(),
    }


class StepClock:
    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._last = time.process_time()

    def lap(self, step: str) -> None:
        now = time.process_time()
        self.spent[step] += now - self._last
        self._last = now


async def write_pages(sessions: Any, stream_name: str, body: bytes, pages: int) -> StepClock:
    stream = next(s for s in STREAMS if s.name == stream_name)
    clock = StepClock()
    for index in range(pages):
        tenant_id = await create_tenant(sessions, f"Page firm {stream_name} {index}")
        clock.lap("setup")
        decoded = json.loads(body)
        records = decoded["value"]
        clock.lap("decode")
        tokens = stream.tokens(records)
        batch = parse_batch(stream.parse, records, {}, key=stream.key_field)
        clock.lap("tokens+parse")
        async with unit_of_work(sessions) as session:
            store = RecordStore(session, tenant_id, uuid4())
            await store.save(stream.storage, batch.records, tokens)
            clock.lap("save")
            response = KarbonResponse("page", datetime.now(UTC), 200, decoded)
            await store.save_raw(stream_name, [("page", response)])
            clock.lap("raw page")
        clock.lap("commit")
    return clock


async def bench(size: str, pages: int) -> None:
    bodies = page_bodies(size)
    urls = resolve_service_urls(Settings(RECKONRY_ENV="test"))
    async with scratch_database(urls.database_url) as database_url:
        engine = create_engine(database_url)
        sessions = create_sessionmaker(engine)
        print(f"ms of CPU per page ({pages} pages each, {size} firm)")
        print(f"{'stream':12}" + "".join(f"{step:>14}" for step in STEPS) + f"{'total':>10}")
        for name, body in bodies.items():
            await write_pages(sessions, name, body, 1)  # warm up
            clock = await write_pages(sessions, name, body, pages)
            figures = [1000 * clock.spent[step] / pages for step in STEPS]
            print(
                f"{name:12}" + "".join(f"{ms:14.1f}" for ms in figures) + f"{sum(figures):10.1f}"
                f"   ({len(body) // 1000} KB page)"
            )
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--pages", type=int, default=30)
    args = parser.parse_args()
    tune_worker_process()  # as `reckonry worker` does
    asyncio.run(bench(args.size, args.pages))


if __name__ == "__main__":
    main()
