"""Fault injection (each kind), latency, run-time config, and the threaded server on a real
socket."""

from __future__ import annotations

import json
import socket
import time
from datetime import date

import httpx
import pytest

from sandbox.server import serve_sandbox_in_thread
from sandbox.state import LatencyConfig, SandboxConfig
from sandbox.tests.conftest import auth, client_for, make_sandbox


async def test_scripted_faults_in_process() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0))
    sandbox.update_config(faults={"timeout_seconds": 0.2})
    sandbox.inject_faults(
        "Firm A", ["500", "503", "429", "truncate", "malformed", "timeout", "ok", "drop"]
    )
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        r = await c.get("/v3/Users")
        assert r.status_code == 500 and r.json()["error"]["code"] == "5001"
        assert r.json()["error"]["message"].startswith("Unexpected Internal Error.")
        assert (await c.get("/v3/Users")).status_code == 503
        r = await c.get("/v3/Users")
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"
        for _kind in ("truncate", "malformed"):
            r = await c.get("/v3/Users")
            assert r.status_code == 200
            assert int(r.headers["content-length"]) == len(r.content)
            with pytest.raises(json.JSONDecodeError):
                json.loads(r.content)
        started = time.monotonic()
        r = await c.get("/v3/Users")
        assert r.status_code == 200 and time.monotonic() - started >= 0.2
        assert (await c.get("/v3/Users")).status_code == 200  # "ok": a normal answer
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get("/v3/Users")
        assert (await c.get("/v3/Users")).status_code == 200  # the script is used up
    got = sandbox.counters("Firm A")
    assert got["faults_injected"] == {
        "500": 1,
        "503": 1,
        "429": 1,
        "truncate": 1,
        "malformed": 1,
        "timeout": 1,
        "drop": 1,
    }
    assert got["by_status"]["dropped"] == 1 and got["rate_limited_429"] == 1


async def test_random_faults_and_429_bursts() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0), seed=7, rate_limit_enabled=False)
    sandbox.update_config(
        {"faults": {"burst_429_rate": 1.0, "burst_429_length": 3, "burst_429_retry_after": 5}}
    )
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        codes = [(await c.get("/v3/Users")).status_code for _ in range(3)]
        assert codes == [429, 429, 429]
        sandbox.update_config(faults={"burst_429_rate": 0.0, "error_500_rate": 0.5})
        codes = [(await c.get("/v3/Users")).status_code for _ in range(200)]
    assert 60 < codes.count(500) < 140 and set(codes) == {200, 500}
    assert sandbox.counters("Firm A")["rate_limited_429"] == 3


async def test_latency_distribution() -> None:
    sandbox = make_sandbox(
        ("Firm A", "tiny", 0), latency=LatencyConfig(distribution="constant", median_seconds=0.05)
    )
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        started = time.monotonic()
        await c.get("/v3/Users")
        assert time.monotonic() - started >= 0.05
    lognormal = LatencyConfig(distribution="lognormal", median_seconds=0.5, sigma=0.4)
    import random

    rng = random.Random(1)
    samples = sorted(lognormal.sample(rng) for _ in range(2001))
    assert 0.45 < samples[1000] < 0.55  # median about 0.5 s
    assert LatencyConfig().sample(rng) == 0.0  # unit-test default: no latency
    assert lognormal.sample(rng, expanded=True) > 0


async def test_config_over_the_admin_api() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0))
    async with client_for(sandbox) as c:
        cfg = (await c.get("/_sandbox/config")).json()
        assert cfg["max_page_size"] == 100 and cfg["rate_limit_requests"] == 120
        r = await c.patch(
            "/_sandbox/config",
            json={
                "max_page_size": 3,
                "latency": {"distribution": "none"},
                "invoice_list_includes_line_items": True,
            },
        )
        assert r.status_code == 200 and r.json()["max_page_size"] == 3
        assert sandbox.config.invoice_list_includes_line_items is True
        for bad in (
            {"nope": 1},
            {"max_page_size": "x"},
            {"max_page_size": 0},
            {"latency": {"distribution": "weird"}},
            {"faults": {"drop_rate": True}},
        ):
            assert (await c.patch("/_sandbox/config", json=bad)).status_code == 422, bad
        assert sandbox.config.max_page_size == 3  # a rejected update changes nothing
        page = (await c.get("/v3/Users", headers=auth(sandbox.tenant("Firm A")))).json()
        assert len(page["value"]) == 3 and "@odata.nextLink" in page
        r = await c.post("/_sandbox/tenants/Firm A/faults", json={"faults": ["500"]})
        assert r.json() == {"queued": ["500"]}
        assert (
            await c.post("/_sandbox/tenants/Firm A/faults", json={"faults": ["boom"]})
        ).status_code == 422
        tenants = (await c.get("/_sandbox/tenants")).json()
        assert tenants[0]["access_key"] == sandbox.tenant("Firm A").access_key
        assert tenants[0]["counts"]["users"] == 4
        assert (await c.get("/_sandbox/health")).json()["status"] == "ok"
        headers = auth(sandbox.tenant("Firm A"))
        assert (await c.get("/v3/Users", headers=headers)).status_code == 500  # queued above
        assert (await c.get("/", headers=headers)).status_code == 404


def test_threaded_server_over_a_real_socket() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0), ("Firm B", "tiny", 1))
    sandbox.update_config(faults={"timeout_seconds": 3.0})
    tenant = sandbox.tenant("Firm A")
    with serve_sandbox_in_thread(sandbox) as base:
        assert base.startswith("http://127.0.0.1:")
        port = int(base.rsplit(":", 1)[1])
        with httpx.Client(base_url=base, headers=auth(tenant), timeout=5) as c:
            r = c.get("/v3/Timesheets?$expand=TimeEntries", headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
            assert r.json()["@odata.context"] == f"{base}/v3/$metadata#Timesheets(TimeEntries())"
            page = c.get("/v3/WorkItems?$top=2").json()
            assert page["@odata.nextLink"].startswith(f"{base}/v3/WorkItems?")
            assert c.get(page["@odata.nextLink"]).status_code == 200
            sandbox.inject_faults("Firm A", ["drop", "timeout", "truncate"])
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                c.get("/v3/Users")
            with pytest.raises(httpx.ReadTimeout):
                c.get("/v3/Users", timeout=0.3)
            r = c.get("/v3/Users")
            with pytest.raises(json.JSONDecodeError):
                r.json()
            assert c.get("/v3/Users").status_code == 200
            # the test thread may change the firm while the server runs
            changes = sandbox.advance("Firm A", 7)
            assert changes and c.get("/v3/Users").status_code == 200
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(1)
        s.connect(("127.0.0.1", port))  # shut down: nobody listens any more
    assert sandbox.counters("Firm A")["faults_injected"] == {"drop": 1, "timeout": 1, "truncate": 1}


def test_sandbox_config_defaults_suit_unit_tests() -> None:
    config = SandboxConfig()
    assert config.latency.distribution == "none"
    assert config.max_page_size == 100 and config.rate_limit_enabled
    assert not config.invoice_list_includes_line_items
    assert date.today() >= date(2024, 1, 1)


async def test_requests_in_flight_are_served_concurrently() -> None:
    """A client needs several requests in flight to reach 1.8 req/s at 0.5 s latency: the
    sandbox must not serialize them, and counts them all in the same 1 s window."""
    import asyncio

    sandbox = make_sandbox(
        ("Firm A", "tiny", 0), latency=LatencyConfig(distribution="constant", median_seconds=0.4)
    )
    with serve_sandbox_in_thread(sandbox) as base:
        async with httpx.AsyncClient(base_url=base, headers=auth(sandbox.tenant("Firm A"))) as c:
            started = time.monotonic()
            replies = await asyncio.gather(*(c.get("/v3/Users") for _ in range(6)))
            elapsed = time.monotonic() - started
    assert [r.status_code for r in replies] == [200] * 6
    assert 0.4 <= elapsed < 1.2  # one latency, not six
    assert sandbox.counters("Firm A")["max_requests_in_window"]["1s"] == 6
