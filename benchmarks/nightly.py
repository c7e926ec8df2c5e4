"""The nightly run against the night: the medium and large sandbox firms, in Karbon time.

    uv run python benchmarks/nightly.py                  # medium and large
    uv run python benchmarks/nightly.py --sizes large --interval 120

For each firm (record counts from the sandbox generator) it prints the pages of a read of
every list, the records read in detail (users, organizations, work items, and the invoices
whose list falls short: both when the invoice list carries its lines and when it does not),
the rotation's period, tonight's share (the real bucket, by the same hash the queue uses), and
the nightly's requests against the night (01:00-05:00 at 1.8 requests/second: 25,920), with
how long they hold the firm's queue (requests ÷ 1.8). The baseline, measured in the same run,
is a nightly that re-reads every detail. It also checks that `period` consecutive nights
re-check every record once, and says how much of the share the nightly run itself takes
before its re-checks stop for the next incremental (the rest stays queued for the next runs).
Pure arithmetic on the generated firm: no Karbon, no database; it runs in about a minute.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import KARBON_REQUESTS_PER_SECOND  # noqa: E402
from app.sync.rotation import (  # noqa: E402
    NIGHTLY_WINDOW_START_HOUR,
    bucket_of,
    choose_period,
    night_requests,
    recheck_until,
    tonight_bucket,
)
from app.sync.streams import STREAMS, invoice_lines_fall_short  # noqa: E402
from sandbox.generator import generate_firm  # noqa: E402
from sandbox.model import Firm  # noqa: E402
from sandbox.render import invoice_summary  # noqa: E402

TODAY = date(2026, 8, 19)
RATE = KARBON_REQUESTS_PER_SECOND


def _list_pages(counts: dict[str, int]) -> int:
    return sum(max(1, math.ceil(counts[s.name] / s.page_size)) for s in STREAMS)


def _detail_keys(firm: Firm, *, list_carries_lines: bool) -> list[tuple[str, str]]:
    keys = [("users", k) for k in firm.users]
    keys += [("organizations", k) for k in firm.organizations]
    keys += [("work_items", k) for k in firm.work_items]
    for invoice in firm.visible_invoices():
        listed = invoice_summary(invoice, with_lines=list_carries_lines)
        if invoice_lines_fall_short(listed):
            keys.append(("invoices", invoice.key))
    return keys


def _report(size: str, firm: Firm, *, list_carries_lines: bool, interval: timedelta) -> None:
    counts = firm.counts()
    pages = _list_pages(counts)
    keys = _detail_keys(firm, list_carries_lines=list_carries_lines)
    night = night_requests(RATE)
    rotation = choose_period(pages, len(keys), night)
    buckets = Counter(bucket_of(stream, key, rotation.period) for stream, key in keys)
    nights = [TODAY + timedelta(days=i) for i in range(rotation.period)]
    covered = sum(buckets[tonight_bucket(n, rotation.period)] for n in nights) == len(keys)
    tonight = tonight_bucket(TODAY, rotation.period)
    share = buckets[tonight]
    requests = pages + share
    baseline = pages + len(keys)
    start = datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(
        hours=NIGHTLY_WINDOW_START_HOUR
    )
    run_window = (recheck_until(start, interval, pages, RATE) - start).total_seconds()
    in_run = min(share, max(0, int(run_window * RATE) - pages))
    lines = "with lines" if list_carries_lines else "without lines"
    print(f"{size} firm, invoice list {lines}")
    print(
        f"  records: {counts['users']} users, {counts['contacts']} contacts, "
        f"{counts['organizations']} organizations, {counts['work_items']} work items, "
        f"{counts['timesheets']} timesheets, {counts['invoices']} invoices"
    )
    print(f"  list pages (every list, {STREAMS[0].page_size} a page): {pages:,}")
    print(f"  records read in detail: {len(keys):,}")
    print(
        f"  period: {rotation.period} night(s); tonight ({TODAY}) bucket {tonight}, share "
        f"{share:,} (largest night {max(buckets.values()):,}); every record once in "
        f"{rotation.period} nights: {covered}"
    )
    verdict = "fits" if requests <= night else "DOES NOT FIT"
    print(
        f"  nightly: {requests:,} requests against the night's {night:,} "
        f"({requests / night:.1%}, {verdict}); holds the queue {requests / RATE / 3600:.2f} h"
    )
    print(
        f"  baseline (every detail re-read): {baseline:,} requests "
        f"({baseline / night:.1%} of the night), {baseline / RATE / 3600:.2f} h"
    )
    print(
        f"  with a {interval.total_seconds() / 60:.0f}-minute incremental interval the nightly "
        f"run itself ends after {run_window / 60:.0f} min: lists and {in_run:,} re-checks; "
        f"{share - in_run:,} stay queued for the next runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["medium", "large"])
    parser.add_argument("--interval", type=int, default=120, help="incremental minutes")
    args = parser.parse_args()
    for size in args.sizes:
        firm = generate_firm(size, 0, today=TODAY)
        for list_carries_lines in (True, False):
            _report(
                size,
                firm,
                list_carries_lines=list_carries_lines,
                interval=timedelta(minutes=args.interval),
            )


if __name__ == "__main__":
    main()
