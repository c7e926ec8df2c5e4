"""Achieved request rate of one tenant's budget against a local server that answers slowly.

Run: uv run python benchmarks/client_rate.py [--seconds 30] [--min-latency 0.5] [--max-latency 1]

Starts a tiny HTTP server on localhost that answers every ``GET /v3/Users/{id}`` after a random
delay, points a KarbonClient at it, fetches user details for the given time and prints the
achieved rate next to the 1.8 req/s target and the busiest 10-second window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time

from app.sync.karbon import USERS, KarbonClient, TenantBudget

TARGET = 1.8


async def serve(min_latency: float, max_latency: float, arrivals: list[float]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await answer(reader, writer)
        writer.close()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readline():  # keep-alive: one request per header block
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            arrivals.append(time.monotonic())
            await asyncio.sleep(random.uniform(min_latency, max_latency))
            body = json.dumps({"Id": "u", "CapacityMinutesPerWeek": 2400}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def main(seconds: float, min_latency: float, max_latency: float) -> None:
    arrivals: list[float] = []
    server = await serve(min_latency, max_latency, arrivals)
    port = server.sockets[0].getsockname()[1]
    client = KarbonClient(
        "benchmark-access-key",
        "benchmark-bearer",
        budget=TenantBudget(),
        base_url=f"http://127.0.0.1:{port}",
    )
    keys = (f"user{i}" for i in range(1_000_000))
    async with client:
        try:
            async with asyncio.timeout(seconds):
                async for _ in client.iter_details(USERS, keys):
                    pass
        except TimeoutError:
            pass
    server.close()
    span = arrivals[-1] - arrivals[0]
    rate = (len(arrivals) - 1) / span
    busiest = max(sum(1 for t in arrivals if s <= t < s + 10) for s in arrivals)
    print(f"requests: {len(arrivals)} in {span:.1f} s, latency {min_latency}-{max_latency} s")
    print(f"achieved: {rate:.3f} req/s = {100 * rate / TARGET:.1f}% of {TARGET} req/s")
    print(f"busiest 10 s window: {busiest} requests (limit 18)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--min-latency", type=float, default=0.5)
    parser.add_argument("--max-latency", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.min_latency, args.max_latency))
