"""Karbon's two-header authentication, tenant isolation, the 120/minute rate limit, and exact
counters for a known request pattern."""

from __future__ import annotations

import re

import httpx

from sandbox.state import make_access_key, make_bearer_token
from sandbox.tests.conftest import FakeClock, auth, client_for, make_sandbox

JWT_NOT_PRESENT = {"error": {"statusCode": "401", "message": "JWT not present."}}
JWT_INVALID = {"error": {"statusCode": "401", "message": "JWT is invalid."}}
BEARER = {
    "error": {
        "statusCode": "401",
        "message": "Authorization has been denied for this "
        "request. The Bearer token is not valid for this AccessKey.",
    }
}


def test_keys_look_like_karbons() -> None:
    key = make_access_key("Firm A", 0)
    assert key.startswith("eyJ") and len(key.split(".")) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in key.split("."))
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        make_bearer_token("Firm A", 0),
    )
    assert make_access_key("Firm A", 0) == key and make_access_key("Firm A", 1) != key


async def test_both_401_kinds_and_swapped_keys() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0), ("Firm B", "tiny", 1))
    a, b = sandbox.tenant("Firm A"), sandbox.tenant("Firm B")
    cases = [
        ({}, JWT_NOT_PRESENT),
        ({"Authorization": f"Bearer {a.bearer_token}"}, JWT_NOT_PRESENT),
        ({"AccessKey": "", "Authorization": f"Bearer {a.bearer_token}"}, JWT_NOT_PRESENT),
        (
            {
                "AccessKey": "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.c2ln",
                "Authorization": f"Bearer {a.bearer_token}",
            },
            JWT_INVALID,
        ),
        # users often swap the two keys
        ({"AccessKey": a.bearer_token, "Authorization": f"Bearer {a.access_key}"}, JWT_INVALID),
        ({"AccessKey": a.access_key}, BEARER),
        ({"AccessKey": a.access_key, "Authorization": a.bearer_token}, BEARER),
        ({"AccessKey": a.access_key, "Authorization": "Bearer not-a-guid"}, BEARER),
        ({"AccessKey": a.access_key, "Authorization": f"Bearer {b.bearer_token}"}, BEARER),
    ]
    async with client_for(sandbox) as c:
        for headers, body in cases:
            r = await c.get("/v3/Users", headers=headers)
            assert (r.status_code, r.json()) == (401, body), headers
        ok = await c.get(
            "/v3/Users",
            headers={
                "accesskey": a.access_key,
                "authorization": f"bearer {a.bearer_token.upper()}",
            },
        )
        assert ok.status_code == 200
    counters = sandbox.counters("Firm A")
    assert counters["unauthorized_401"] == 4 and counters["requests"] == 5
    assert sandbox.unattributed.unauthorized == 5


async def test_tenants_are_isolated() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0), ("Firm B", "tiny", 1))
    a, b = sandbox.tenant("Firm A"), sandbox.tenant("Firm B")
    assert set(a.firm.work_items).isdisjoint(b.firm.work_items)
    async with client_for(sandbox) as c:
        ra = (await c.get("/v3/WorkItems", headers=auth(a))).json()
        rb = (await c.get("/v3/WorkItems", headers=auth(b))).json()
        assert {w["WorkItemKey"] for w in ra["value"]} == set(a.firm.work_items)
        assert {w["WorkItemKey"] for w in rb["value"]} == set(b.firm.work_items)
        other = next(iter(b.firm.work_items))
        assert (await c.get(f"/v3/WorkItems/{other}", headers=auth(a))).status_code == 404
        assert (await c.get(f"/v3/WorkItems/{other}", headers=auth(b))).status_code == 200
    assert sandbox.counters("Firm A")["requests"] == 2
    assert sandbox.counters("Firm B")["requests"] == 2


async def test_rate_limit_120_per_minute_with_retry_after() -> None:
    clock = FakeClock()
    sandbox = make_sandbox(("Firm A", "tiny", 0), ("Firm B", "tiny", 1), clock=clock)
    a, b = sandbox.tenant("Firm A"), sandbox.tenant("Firm B")
    async with client_for(sandbox) as c:
        for _ in range(120):
            assert (await c.get("/v3/Users", headers=auth(a))).status_code == 200
            clock.advance(0.1)  # 120 requests in 12 s
        r = await c.get("/v3/Users", headers=auth(a))
        assert r.status_code == 429
        # the first request (t=1000.0) leaves the window at t=1060.0; now t=1012.0
        assert r.headers["Retry-After"] == "48"
        assert r.json() == {
            "statusCode": "429",
            "message": "Rate limit is exceeded. Try again in 48 seconds.",
        }
        assert (await c.get("/v3/Users", headers=auth(b))).status_code == 200  # per tenant
        clock.advance(47.9)
        assert (await c.get("/v3/Users", headers=auth(a))).status_code == 429
        clock.advance(0.15)  # t=1060.05: only the request of t=1000.0 has left the window
        assert (await c.get("/v3/Users", headers=auth(a))).status_code == 200
        assert (await c.get("/v3/Users", headers=auth(a))).status_code == 429
    counters = sandbox.counters("Firm A")
    assert counters["rate_limited_429"] == 3
    assert counters["by_status"] == {"200": 121, "429": 3}


async def test_counters_are_exact_for_a_known_pattern() -> None:
    clock = FakeClock(start=0.0)
    sandbox = make_sandbox(("Firm A", "tiny", 0), clock=clock, rate_limit_enabled=False)
    a = sandbox.tenant("Firm A")
    wi = next(iter(a.firm.work_items))
    # 5 requests 0.1 s apart, a 2 s gap, 3 requests 0.5 s apart, then a POST, a bad bearer, a
    # path outside the endpoints, a 400 and a detail.
    pattern = [0.1] * 5 + [2.0] + [0.5] * 3
    async with client_for(sandbox, a) as c:
        for gap in pattern:
            await c.get("/v3/Users")
            clock.advance(gap)
        await c.post("/v3/Contacts", json={"FirstName": "x"})
        await c.get("/v3/Contacts", headers={"Authorization": "Bearer nope"})
        await c.get("/v3/ClientGroups")
        await c.get("/v3/Invoices?$top=500")
        await c.get(f"/v3/WorkItems/{wi}")
        await c.delete(f"/v3/WorkItems/{wi}")
    got = sandbox.counters("Firm A")
    times = [0.0]
    for gap in pattern:
        times.append(times[-1] + gap)
    # 9 GETs at the recorded times; the last one arrived at times[-2], after it the final gap
    arrivals = times[:-1] + [times[-1]] * 6

    def window_max(width: float) -> int:
        return max(sum(1 for u in arrivals if t - width < u <= t) for t in arrivals)

    assert got["requests"] == 15
    assert got["by_route"] == {
        "GET /v3/Users": 9,
        "POST /v3/Contacts": 1,
        "GET /v3/Contacts": 1,
        "GET <unmatched>": 1,
        "GET /v3/Invoices": 1,
        "GET /v3/WorkItems/{key}": 1,
        "DELETE /v3/WorkItems/{key}": 1,
    }
    assert got["by_status"] == {"200": 10, "400": 1, "401": 1, "404": 1, "405": 2}
    assert got["non_get_attempts"] == 2
    assert got["unauthorized_401"] == 1 and got["rate_limited_429"] == 0
    assert got["unmatched_paths"] == {"/v3/ClientGroups": 1}
    assert got["max_requests_in_window"] == {
        "1s": window_max(1.0),
        "10s": window_max(10.0),
        "60s": window_max(60.0),
    }
    assert got["max_requests_in_window"] == {"1s": 7, "10s": 15, "60s": 15}
    sandbox.reset_counters("Firm A")
    assert sandbox.counters("Firm A")["requests"] == 0


async def test_window_maxima_for_a_client_at_the_limit() -> None:
    clock = FakeClock(start=0.0)
    sandbox = make_sandbox(("Firm A", "tiny", 0), clock=clock)
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        for _ in range(150):  # exactly 2 requests per second (0.5 is exact in binary)
            r = await c.get("/v3/Users?$top=1")
            assert r.status_code == 200  # 120 in any 60 s window is allowed
            clock.advance(0.5)
        assert (await c.get("/v3/Users?$top=1")).status_code == 200
        assert (await c.get("/v3/Users?$top=1")).status_code == 429  # a 121st in the window
    got = sandbox.counters("Firm A")
    # arrivals at 0, 0.5, ..., 74.5 and twice at 75.0; windows are (t - w, t]:
    # (74, 75] holds 74.5 + 2; (65, 75] holds 65.5..74.5 (19) + 2; (15, 75] holds 119 + 2.
    assert got["max_requests_in_window"] == {"1s": 3, "10s": 21, "60s": 121}
    assert got["rate_limited_429"] == 1


async def test_counters_over_the_admin_api() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0))
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        await c.get("/v3/Users")
        await c.put("/v3/Users")
        r = (await c.get("/_sandbox/tenants/Firm A/counters")).json()
        assert r["requests"] == 2 and r["non_get_attempts"] == 1
        log = (await c.get("/_sandbox/tenants/Firm A/counters?log=true")).json()["log"]
        assert [e["route"] for e in log] == ["GET /v3/Users", "PUT /v3/Users"]
        await c.get("/v3/Users", headers={"AccessKey": "nope"})
        everything = (await c.get("/_sandbox/counters")).json()
        assert everything["unattributed"]["unauthorized_401"] == 1
        assert (await c.post("/_sandbox/counters/reset")).status_code == 200
        assert (await c.get("/_sandbox/tenants/Firm A/counters")).json()["requests"] == 0
        assert (await c.get("/_sandbox/tenants/Nobody/counters")).status_code == 404
    # admin calls are never counted
    assert sandbox.counters("Firm A")["requests"] == 0


async def test_gzip_when_accepted() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0))
    transport = httpx.ASGITransport(
        app=__import__("sandbox.app", fromlist=["x"]).create_sandbox_app(sandbox)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
        r = await c.get(
            "/v3/Timesheets?$expand=TimeEntries",
            headers={**auth(sandbox.tenant("Firm A")), "Accept-Encoding": "gzip"},
        )
    assert r.headers["content-encoding"] == "gzip"
    assert r.json()["value"]
