"""Karbon client behaviour at the HTTP boundary (respx), on virtual time."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import logging
import weakref
from typing import Any

import httpx
import pytest
import respx

from app.sync.karbon import (
    INVOICES,
    USERS,
    WORK_ITEMS,
    KarbonAuthError,
    KarbonPermissionError,
    KarbonProtocolError,
    KarbonRequestError,
    KarbonResponse,
    KarbonUnavailable,
    RetryPolicy,
    TenantBudget,
    validate_credentials,
)
from app.sync.karbon.budget import Limits, LocalSchedule
from tests.sync.karbon_fakes import ACCESS_KEY, BASE, BEARER, make_client, run_virtual


class Recorder:
    """Answers requests from a script and notes the (virtual) time each one arrived."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.times: list[float] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(asyncio.get_running_loop().time())
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


def get_users(recorder: Recorder, retry: RetryPolicy | None = None) -> KarbonResponse:
    async def go() -> KarbonResponse:
        async with make_client(retry=retry) as client:
            return await client.get("/v3/Users")

    with respx.mock(base_url=BASE) as karbon:
        karbon.get("/v3/Users").mock(side_effect=recorder)
        return run_virtual(go())


def test_sends_both_auth_headers_and_accepts_gzip() -> None:
    recorder = Recorder(ok({"value": []}))
    get_users(recorder)
    headers = recorder.requests[0].headers
    assert headers["AccessKey"] == ACCESS_KEY
    assert headers["Authorization"] == f"Bearer {BEARER}"
    assert "gzip" in headers["Accept-Encoding"]


def test_gzip_bodies_are_decoded() -> None:
    body = gzip.compress(json.dumps({"value": [{"Id": "u1"}]}).encode())
    answer = httpx.Response(200, content=body, headers={"Content-Encoding": "gzip"})
    assert get_users(Recorder(answer)).body_json == {"value": [{"Id": "u1"}]}


def collect_pages(routes: dict[str, Any], **page_args: Any) -> list[Any]:
    async def go() -> list[Any]:
        async with make_client() as client:
            return [page async for page in client.iter_pages(INVOICES, **page_args)]

    with respx.mock(assert_all_called=False) as karbon:
        for url, body in routes.items():
            karbon.get(url).respond(200, json=body)
        return run_virtual(go())


def test_paging_follows_next_link_exactly_and_exposes_count() -> None:
    odd_link = f"{BASE}/v3/Invoices?$skiptoken=abc%3D%3D&$top=2"
    pages = collect_pages(
        {
            f"{BASE}/v3/Invoices?$top=2": {
                "@odata.count": 3,
                "value": [{"InvoiceKey": "a"}, {"InvoiceKey": "b"}],
                "@odata.nextLink": odd_link,
            },
            odd_link: {"@odata.count": 3, "values": [{"InvoiceKey": "c"}]},
        },
        params={"$top": 2},
    )
    assert [r["InvoiceKey"] for p in pages for r in p.records] == ["a", "b", "c"]
    assert pages[0].total_count == 3
    assert pages[0].next_link == odd_link
    assert pages[1].response.url == odd_link


def test_paging_can_resume_from_a_saved_next_link() -> None:
    link = f"{BASE}/v3/Invoices?$skip=100"
    pages = collect_pages({link: {"value": [{"InvoiceKey": "z"}]}}, resume_from=link)
    assert [p.records for p in pages] == [[{"InvoiceKey": "z"}]]


def test_paging_loop_is_detected() -> None:
    loop_link = f"{BASE}/v3/Invoices?$skip=100"
    with pytest.raises(KarbonProtocolError, match="came twice"):
        collect_pages(
            {
                f"{BASE}/v3/Invoices": {"value": [], "@odata.nextLink": loop_link},
                loop_link: {"value": [], "@odata.nextLink": loop_link},
            }
        )


@pytest.mark.parametrize(
    "link", ["https://elsewhere.test/v3/Invoices?$skip=100", f"{BASE}/v3/Users?$skip=100"]
)
def test_next_link_to_another_host_or_path_is_refused(link: str) -> None:
    with pytest.raises(KarbonProtocolError):
        collect_pages({f"{BASE}/v3/Invoices": {"value": [], "@odata.nextLink": link}})


def test_429_waits_exactly_retry_after_and_pauses_the_tenant() -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "7"}, json={"statusCode": "429"}),
        ok({"value": []}),
    )
    get_users(recorder)
    assert recorder.times[1] - recorder.times[0] == pytest.approx(7.0, abs=1e-9)


def test_429_without_header_uses_karbons_message() -> None:
    message = "Rate limit is exceeded. Try again in 10 seconds."
    recorder = Recorder(
        httpx.Response(429, json={"statusCode": "429", "message": message}), ok({"value": []})
    )
    get_users(recorder)
    assert recorder.times[1] - recorder.times[0] == pytest.approx(10.0, abs=1e-9)


def test_absurd_retry_after_is_capped() -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "86400"}), ok({"value": []}))
    get_users(recorder, RetryPolicy(max_retry_after=120.0))
    assert recorder.times[1] - recorder.times[0] == pytest.approx(120.0, abs=1e-9)


def test_a_429_holds_back_other_requests_of_the_same_tenant() -> None:
    async def go() -> tuple[float, float]:
        budget = TenantBudget()
        async with make_client(budget=budget) as client:
            first = asyncio.create_task(client.get("/v3/Users"))
            await asyncio.sleep(1.0)  # the 429 has arrived; now another request starts
            second_start = asyncio.get_running_loop().time()
            await client.get("/v3/Contacts")
            await first
            return second_start, asyncio.get_running_loop().time()

    contacts = Recorder(ok({"value": []}))
    with respx.mock(base_url=BASE) as karbon:
        karbon.get("/v3/Users").mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "30"}), ok({"value": []})]
        )
        karbon.get("/v3/Contacts").mock(side_effect=contacts)
        run_virtual(go())
    assert contacts.times[0] >= 30.0


def test_a_429_met_by_one_process_holds_a_request_another_already_waits_to_send() -> None:
    # Two budgets, one schedule (two processes sharing it in Redis): the other process's
    # request had reserved the turn after the throttled one, before the 429 came back.
    schedule = LocalSchedule(Limits.at(1.8))
    throttled, other = TenantBudget(schedule=schedule), TenantBudget(schedule=schedule)

    async def go() -> None:
        async with make_client(budget=throttled) as a, make_client(budget=other) as b:
            await asyncio.gather(a.get("/v3/Users"), b.get("/v3/Contacts"))

    contacts = Recorder(ok({"value": []}))
    with respx.mock(base_url=BASE) as karbon:
        karbon.get("/v3/Users").mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "30"}), ok({"value": []})]
        )
        karbon.get("/v3/Contacts").mock(side_effect=contacts)
        run_virtual(go())
    assert contacts.times[0] >= 30.0


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500), httpx.Response(503), httpx.ConnectError("down"), httpx.ReadTimeout("")],
)
def test_5xx_and_transport_errors_are_retried_with_growing_backoff(failure: Any) -> None:
    recorder = Recorder(failure, failure, failure, ok({"value": []}))
    result = get_users(recorder, RetryPolicy(base_delay=1.0))
    assert result.status == 200
    waits = [b - a for a, b in zip(recorder.times, recorder.times[1:], strict=False)]
    # Equal jitter: the n-th wait lies in [2^(n-1)/2, 2^(n-1)] seconds.
    for n, wait in enumerate(waits, start=1):
        assert 2 ** (n - 1) / 2 <= wait <= 2 ** (n - 1) + 1e-9


def test_retries_run_out_into_karbon_unavailable() -> None:
    recorder = Recorder(httpx.Response(502))
    with pytest.raises(KarbonUnavailable) as caught:
        get_users(recorder, RetryPolicy(max_attempts=4))
    assert len(recorder.times) == 4
    assert caught.value.attempts == 4


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_fail_at_once_with_karbons_message(status: int) -> None:
    body = {"error": {"code": "4004", "message": "The record could not be found"}}
    recorder = Recorder(httpx.Response(status, json=body))
    with pytest.raises(KarbonRequestError, match="could not be found") as caught:
        get_users(recorder)
    assert caught.value.status == status
    assert len(recorder.times) == 1


@pytest.mark.parametrize(
    ("status", "message", "rejected"),
    [
        (401, "JWT not present.", "access_key"),
        (401, "JWT is invalid.", "access_key"),
        (
            401,
            "Authorization has been denied for this request. "
            "The Bearer token is not valid for this AccessKey.",
            "bearer_token",
        ),
        (401, "AccessKey header missing", "access_key"),
        (401, "Something else went wrong", "unknown"),
        (401, None, "unknown"),
    ],
)
def test_auth_failures_say_which_key_was_rejected_and_are_not_retried(
    status: int, message: str | None, rejected: str
) -> None:
    body = {"error": {"statusCode": str(status), "message": message}} if message else None
    recorder = Recorder(httpx.Response(status, json=body))
    with pytest.raises(KarbonAuthError) as caught:
        get_users(recorder)
    assert caught.value.rejected_key == rejected
    assert caught.value.status == status
    assert len(recorder.times) == 1


@pytest.mark.parametrize("message", ["This API application does not have permission.", None])
def test_a_403_is_a_missing_permission_naming_the_endpoint_never_a_rejected_key(
    message: str | None,
) -> None:
    body = {"error": {"statusCode": "403", "message": message}} if message else None
    recorder = Recorder(httpx.Response(403, json=body))
    with pytest.raises(KarbonPermissionError) as caught:
        get_users(recorder)
    assert caught.value.endpoint == "/v3/Users"
    assert caught.value.karbon_message == message
    assert not isinstance(caught.value, KarbonAuthError)
    assert len(recorder.times) == 1


def test_malformed_json_on_200_is_retried_then_fails_clearly() -> None:
    truncated = httpx.Response(200, content=b'{"value": [{"Id": "u1"')
    recorder = Recorder(truncated)
    with pytest.raises(KarbonProtocolError, match="unreadable JSON"):
        get_users(recorder, RetryPolicy(max_malformed_attempts=3))
    assert len(recorder.times) == 3


def test_malformed_json_then_good_json_succeeds() -> None:
    recorder = Recorder(httpx.Response(200, content=b"<html>"), ok({"value": []}))
    assert get_users(recorder).body_json == {"value": []}


@pytest.mark.parametrize(
    "note",
    [b"x\\u0000y", b"x\\ud800y", b"x\\uDC00y", b"x\xed\xa0\x80y"],
    ids=["nul", "surrogate-escaped", "surrogate-escaped-upper-case", "surrogate-bytes"],
)
def test_text_postgresql_cannot_store_is_replaced(note: bytes) -> None:
    # A NUL or a lone surrogate would fail every write of its page, on every run.
    content = b'{"value": [{"' + note + b'": "' + note + b'", "Name": "ok"}]}'
    body = get_users(Recorder(httpx.Response(200, content=content))).body_json
    assert body == {"value": [{"x\ufffdy": "x\ufffdy", "Name": "ok"}]}


def test_escaped_text_that_postgresql_can_store_is_kept() -> None:
    content = b'{"value": [{"Name": "\\\\u0000 \\ud83d\\ude00 \xed\x95\x9c"}]}'
    body = get_users(Recorder(httpx.Response(200, content=content))).body_json
    assert body == {"value": [{"Name": "\\u0000 \U0001f600 \ud55c"}]}


def test_secrets_never_appear_in_errors_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"JWT is invalid: {ACCESS_KEY} / {BEARER}"
    failures: list[Exception] = []
    for answer in (
        httpx.Response(401, json={"error": {"message": echo}}),
        httpx.Response(400, json={"error": {"message": echo}}),
        httpx.Response(500, json={"error": {"message": echo}}),
        httpx.ConnectError(echo),
    ):
        with pytest.raises(Exception) as caught:
            get_users(Recorder(answer), RetryPolicy(max_attempts=2, base_delay=0.01))
        failures.append(caught.value)
    texts = [str(f) for f in failures] + [repr(f) for f in failures]
    texts += [repr(make_client()), caplog.text]
    for text in texts:
        assert ACCESS_KEY not in text
        assert BEARER not in text


def test_every_response_is_handed_to_the_capture_hook() -> None:
    captured: list[KarbonResponse] = []

    async def capture(response: KarbonResponse) -> None:
        captured.append(response)

    async def go() -> None:
        async with make_client(on_response=capture) as client:
            await client.get_detail(WORK_ITEMS, "wi 1")

    with respx.mock(base_url=BASE) as karbon:
        karbon.get("/v3/WorkItems/wi%201").mock(
            side_effect=[httpx.Response(503), ok({"WorkItemKey": "wi 1"})]
        )
        run_virtual(go())
    assert [r.status for r in captured] == [503, 200]
    assert captured[1].url == f"{BASE}/v3/WorkItems/wi%201"
    assert captured[1].body_json == {"WorkItemKey": "wi 1"}
    assert captured[1].fetched_at.tzinfo is not None


def test_iter_details_fetches_every_key_once() -> None:
    async def go() -> dict[str, Any]:
        async with make_client() as client:
            return {key: r.body_json async for key, r in client.iter_details(USERS, keys)}

    keys = [f"u{i}" for i in range(15)]
    with respx.mock(base_url=BASE) as karbon:
        route = karbon.get(path__regex=r"/v3/Users/(?P<key>\w+)").mock(
            side_effect=lambda request, key: ok({"Id": key})
        )
        result = run_virtual(go())
    assert result == {key: {"Id": key} for key in keys}
    assert route.call_count == 15


@pytest.mark.parametrize(
    ("answer", "rejected"),
    [(httpx.Response(401, json={"error": {"message": "JWT not present."}}), "access_key")],
)
def test_validate_credentials_reports_the_rejected_key(
    answer: httpx.Response, rejected: str
) -> None:
    with respx.mock(base_url=BASE) as karbon:
        karbon.get("/v3/Users", params={"$top": "1"}).mock(return_value=answer)
        check = run_virtual(validate_credentials(BASE, ACCESS_KEY, BEARER, budget=TenantBudget()))
    assert not check.ok
    assert isinstance(check.error, KarbonAuthError)
    assert check.error.rejected_key == rejected


OTHER_READ_ENDPOINTS = (
    "/v3/Contacts",
    "/v3/Organizations",
    "/v3/WorkItems",
    "/v3/Timesheets",
    "/v3/Invoices",
)


def test_validate_credentials_succeeds_when_every_endpoint_answers_200() -> None:
    with respx.mock(base_url=BASE) as karbon:
        others = [
            karbon.get(path, params={"$top": "1"}).respond(200, json={"value": []})
            for path in OTHER_READ_ENDPOINTS
        ]
        route = karbon.get("/v3/Users", params={"$top": "1"}).respond(
            200, json={"@odata.count": 12, "value": [{"Id": "u"}]}
        )
        check = run_virtual(validate_credentials(BASE, ACCESS_KEY, BEARER, budget=TenantBudget()))
    assert check.ok and check.error is None and check.user_count == 12
    assert check.denied == ()
    assert route.call_count == 1 and all(other.call_count == 1 for other in others)


class _RememberingTransport(httpx.AsyncBaseTransport):
    """Answers every request with one user and keeps a weak reference to each response."""

    def __init__(self) -> None:
        self.responses: list[weakref.ref[httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = ok({"value": [{"UserKey": "u1"}]})
        self.responses.append(weakref.ref(response))
        return response


def test_a_read_response_is_freed_without_waiting_for_the_cycle_collector() -> None:
    """httpx ties a response and its stream in a reference cycle; left to the collector,
    many tenants' responses piled up and each collection stopped the event loop."""
    transport = _RememberingTransport()

    async def go() -> KarbonResponse:
        async with make_client(transport=transport) as client:
            return await client.get("/v3/Users")

    gc.collect()
    gc.disable()
    try:
        result = run_virtual(go())
        assert result.body_json == {"value": [{"UserKey": "u1"}]}
        assert transport.responses and all(ref() is None for ref in transport.responses)
    finally:
        gc.enable()
