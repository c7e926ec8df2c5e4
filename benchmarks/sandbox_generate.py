"""Benchmark the Karbon sandbox: firm generation time and memory per size, and page serving.

    uv run python benchmarks/sandbox_generate.py                 # tiny, small, medium, large
    uv run python benchmarks/sandbox_generate.py --sizes medium --pages 10

Each size is generated in a fresh subprocess so its peak memory (max RSS) is its own. Serving is
measured in-process (httpx.ASGITransport, no latency, no rate limit) on the medium firm: the
first page of a list pays for sorting and the first rendering, later pages only slice and join
cached fragments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TODAY = date(2026, 8, 19)


def _one(size: str) -> None:
    """Child process: generate one firm, print a JSON line of measurements."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from sandbox.generator import generate_firm

    started = time.perf_counter()
    firm = generate_firm(size, 0, today=TODAY)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "size": size,
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(peak / 1024, 1),
                "generation_rss_mb": round((peak - before) / 1024, 1),
                "counts": firm.counts(),
            }
        )
    )


async def _serve(pages: int) -> list[tuple[str, float, float, int]]:
    import httpx

    from sandbox.app import create_sandbox_app
    from sandbox.state import Sandbox, SandboxConfig

    sandbox = Sandbox.create(
        ("Bench", "medium", 0), today=TODAY, config=SandboxConfig(rate_limit_enabled=False)
    )
    tenant = sandbox.tenant("Bench")
    headers = {"AccessKey": tenant.access_key, "Authorization": f"Bearer {tenant.bearer_token}"}
    urls = [
        "/v3/Users",
        "/v3/Contacts?$top=100",
        "/v3/Organizations?$top=100&$orderby=LastModifiedDateTime desc",
        "/v3/WorkItems?$top=100",
        "/v3/Timesheets?$top=100&$expand=TimeEntries",
        "/v3/Invoices?$top=100&$orderby=UpdatedAt desc",
        "/v3/Invoices?$top=100&$filter=InvoiceStatus eq 'Paid'",
    ]
    out = []
    transport = httpx.ASGITransport(app=create_sandbox_app(sandbox))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=headers
    ) as c:
        for url in urls:
            timings: list[float] = []
            size = 0
            next_url: str | None = url
            for _ in range(pages):
                if not next_url:
                    break
                started = time.perf_counter()
                r = await c.get(next_url)
                timings.append(time.perf_counter() - started)
                size = max(size, len(r.content))
                next_url = r.json().get("@odata.nextLink")
            rest = statistics.median(timings[1:]) if len(timings) > 1 else float("nan")
            out.append((url, timings[0] * 1000, rest * 1000, size))
        started = time.perf_counter()
        await c.get("/v3/Timesheets?$top=100&$expand=TimeEntries&$skip=3000")
        out.append(
            (
                "  deep page ($skip=3000, cached order)",
                (time.perf_counter() - started) * 1000,
                float("nan"),
                0,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="tiny,small,medium,large")
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args.one)
        return
    print(f"{'size':<8}{'seconds':>9}{'peak MB':>9}  records")
    for size in args.sizes.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", size],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        c = row["counts"]
        print(
            f"{size:<8}{row['seconds']:>9.2f}{row['peak_rss_mb']:>9.0f}  "
            f"{c['users']} users, {c['contacts']} contacts, {c['organizations']} orgs, "
            f"{c['work_items']} work items, {c['timesheets']} timesheets "
            f"({c['time_entries']} entries), {c['invoices']} invoices "
            f"({c['line_items']} lines)"
        )
    print(
        f"\nServing medium in-process, {args.pages} pages per list "
        "(ms: first page / median of the rest, largest body):"
    )
    for url, first, rest, size in asyncio.run(_serve(args.pages)):
        rest_s = "" if rest != rest else f"{rest:8.1f}"
        size_s = f"{size / 1024:8.0f} KiB" if size else ""
        print(f"  {url:<62}{first:8.1f}{rest_s:>9}{size_s}")


if __name__ == "__main__":
    main()
