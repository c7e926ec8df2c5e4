"""The read-only Karbon v3 client every sync request goes through.

It only knows how to GET; ``endpoints.assert_allowed`` checks each outgoing request (method,
host, path template) in an httpx request hook, before anything is sent. Every attempt waits for
its turn in the tenant's ``TenantBudget``, whose schedule every process shares; failures are
retried as ``RetryPolicy`` says, and every response Karbon returns (success or not) is handed
to ``on_response`` for raw capture.

Given a ``RequestLoop``, the budget and the HTTP exchange run there and only the finished
response comes back to the caller's loop, where it is decoded and captured.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from app.metrics import KARBON_RETRIES, KARBON_RETRY_AFTER, count_karbon_request
from app.sync.karbon.body import decode_json
from app.sync.karbon.budget import BudgetStats, Leaving, TenantBudget
from app.sync.karbon.endpoints import Resource, assert_allowed, endpoint_of
from app.sync.karbon.errors import (
    KarbonAuthError,
    KarbonPermissionError,
    KarbonProtocolError,
    KarbonRequestError,
    KarbonUnavailable,
    ReadOnlyViolation,
    classify_rejected_key,
    karbon_message,
    redact,
)
from app.sync.karbon.request_loop import RequestLoop
from app.sync.karbon.retry import RetryPolicy

DEFAULT_BASE_URL = "https://api.karbonhq.com"
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=10.0, pool=30.0)
PAGE_SIZE_MAX = 100

Params = Mapping[str, str | int]
T = TypeVar("T")


@dataclass(frozen=True)
class KarbonResponse:
    """One raw answer from Karbon, as the sync engine stores it."""

    url: str
    fetched_at: datetime
    status: int
    body_json: Any
    """The decoded body, or None when it was not JSON."""
    content_sha256: bytes | None = None
    """SHA-256 of the body's bytes as sent: the same bytes read again are the same answer."""


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint."""

    response: KarbonResponse
    records: list[dict[str, Any]]
    next_link: str | None
    total_count: int | None
    """``@odata.count``: all records matching the query, when Karbon gives it."""


ResponseHook = Callable[[KarbonResponse], Awaitable[None]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process: building one loads the CA bundle,
    tens of milliseconds of CPU, and every sync run opens its own client."""
    return httpx.create_ssl_context()


class KarbonClient:
    """Reads one tenant's Karbon data. Use as an async context manager."""

    def __init__(
        self,
        access_key: str,
        bearer_token: str,
        *,
        budget: TenantBudget,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy | None = None,
        on_response: ResponseHook | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = _utcnow,
        request_loop: RequestLoop | None = None,
    ) -> None:
        self._base_url = httpx.URL(base_url)
        self._secrets = (access_key, bearer_token)
        self._budget = budget
        self._request_loop = request_loop
        self._retry = retry or RetryPolicy()
        self._on_response = on_response
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            headers={
                "AccessKey": access_key,
                "Authorization": f"Bearer {bearer_token}",
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            },
            timeout=timeout,
            verify=_tls_context(),
            transport=transport,
            follow_redirects=False,
            event_hooks={"request": [self._refuse_unless_allowed]},
        )

    def __repr__(self) -> str:
        return f"KarbonClient(base_url={str(self._base_url)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._on_request_loop(self._http.aclose)

    async def budget_stats(self) -> BudgetStats:
        return await self._on_request_loop(self._read_budget_stats)

    async def get(self, url: str, params: Params | None = None) -> KarbonResponse:
        """GET a path (relative to the base URL) or an absolute Karbon URL, with retries."""
        return await self._send(url, params, endpoint_of(self._base_url.join(url), self._base_url))

    async def get_detail(
        self,
        resource: Resource,
        key: str,
        params: Params | None = None,
        *,
        background: bool = False,
    ) -> KarbonResponse:
        """GET one record, e.g. ``GET /v3/WorkItems/{key}``; in the ``background``, each
        attempt takes only a turn no other request of the budget wants."""
        path = resource.detail_url_path(key)  # refuses a resource without a detail endpoint
        return await self._send(path, params, resource.detail_path or path, background)

    async def iter_details(
        self, resource: Resource, keys: Iterable[str], params: Params | None = None
    ) -> AsyncIterator[tuple[str, KarbonResponse]]:
        """GET many records concurrently (as many as the budget lets fly), yielding as they land.

        Order is completion order. The first failure cancels the rest and is raised.
        """
        remaining = iter(keys)
        pending: dict[asyncio.Task[KarbonResponse], str] = {}
        try:
            while True:
                while len(pending) < self._budget.max_in_flight + 2:
                    key = next(remaining, None)
                    if key is None:
                        break
                    task = asyncio.ensure_future(self.get_detail(resource, key, params))
                    pending[task] = key
                if not pending:
                    return
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield pending.pop(task), task.result()
        finally:
            for task in pending:
                task.cancel()
            # Wait for them to unwind: no request may outlive this call (or the client).
            await asyncio.gather(*pending, return_exceptions=True)

    async def iter_pages(
        self, resource: Resource, params: Params | None = None, *, resume_from: str | None = None
    ) -> AsyncGenerator[Page, None]:
        """Every page of a list endpoint, following ``@odata.nextLink`` exactly as given.

        ``resume_from`` is a next link saved with an earlier page's checkpoint; ``params`` are
        then ignored because the link already carries the query.
        """
        url: str = resume_from or resource.list_path
        query = None if resume_from else params
        followed: set[str] = set()
        while True:
            page = _page_from(await self._send(url, query, resource.list_path))
            yield page
            if page.next_link is None:
                return
            if page.next_link in followed:
                raise KarbonProtocolError(
                    f"{resource.name} paging loops: next link {page.next_link} came twice"
                )
            followed.add(page.next_link)
            self._check_next_link(resource, page.next_link)
            url, query = page.next_link, None

    def _check_next_link(self, resource: Resource, next_link: str) -> None:
        target = self._base_url.join(next_link)
        try:
            assert_allowed("GET", target, self._base_url)
        except ReadOnlyViolation as exc:
            raise KarbonProtocolError(f"{resource.name} next link refused: {exc}") from exc
        if target.path.rstrip("/") != self._base_url.path.rstrip("/") + resource.list_path:
            raise KarbonProtocolError(
                f"{resource.name} next link {next_link} leaves {resource.list_path}"
            )

    async def _refuse_unless_allowed(self, request: httpx.Request) -> None:
        assert_allowed(request.method, request.url, self._base_url)

    async def _send(
        self, url: str, params: Params | None, endpoint: str, background: bool = False
    ) -> KarbonResponse:
        """One logical GET: attempts under the budget until success or a definite failure.

        ``endpoint`` names what is called in metrics: the path template, without ids."""
        failures = 0
        malformed = 0
        while True:
            try:
                response = await self._on_request_loop(self._paced_get, url, params, background)
            except httpx.RequestError as exc:
                count_karbon_request(endpoint, "error")
                failures += 1
                self._give_up_if_exhausted(url, failures, f"{type(exc).__name__}: {exc}")
                await self._sleep_before_retry(failures, "transport_error")
                continue

            status = response.status_code
            count_karbon_request(endpoint, str(status))
            result = await self._capture(response)
            if status == 401:
                raise self._auth_error(status, result.body_json)
            if status == 403:
                message = self._redacted(karbon_message(result.body_json))
                raise KarbonPermissionError(endpoint, message)
            if status == 429:
                failures += 1
                self._give_up_if_exhausted(url, failures, "429 rate limited")
                await self._pause_for_throttle(response, result.body_json)
                continue
            if status >= 500:
                failures += 1
                self._give_up_if_exhausted(url, failures, f"{status} from Karbon")
                await self._sleep_before_retry(failures, "server_error")
                continue
            if not 200 <= status < 300:
                message = karbon_message(result.body_json)
                raise KarbonRequestError(status, url, self._redacted(message))
            if isinstance(result.body_json, dict):
                return result
            malformed += 1
            if malformed >= self._retry.max_malformed_attempts:
                raise KarbonProtocolError(
                    f"Karbon sent unreadable JSON for {result.url} {malformed} times in a row"
                )
            await self._sleep_before_retry(malformed, "malformed_json")

    async def _on_request_loop(
        self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any
    ) -> T:
        """Budget calls and requests run where the budget lives: on the request loop when the
        client has one, else on the caller's own loop."""
        if self._request_loop is None:
            return await function(*args)
        return await self._request_loop.run(function, *args)

    async def _paced_get(
        self, url: str, params: Params | None, background: bool = False
    ) -> httpx.Response:
        async with self._budget.slot(background=background) as leaving:
            trace = _calling_when_headers_are_sent(leaving)
            response = await self._http.get(url, params=params, extensions={"trace": trace})
        _release_stream(response)
        return response

    async def _pause_budget(self, seconds: float) -> None:
        self._budget.note_retry()
        await self._budget.pause(seconds)

    async def _note_retry(self) -> None:
        self._budget.note_retry()

    async def _read_budget_stats(self) -> BudgetStats:
        return self._budget.stats()

    async def _capture(self, response: httpx.Response) -> KarbonResponse:
        url = str(response.url)
        try:
            body = decode_json(response.content, url=url) if response.content else None
        except ValueError:
            body = None
        result = KarbonResponse(
            url=url,
            fetched_at=self._clock(),
            status=response.status_code,
            body_json=body,
            content_sha256=hashlib.sha256(response.content).digest(),
        )
        if self._on_response is not None:
            await self._on_response(result)
        return result

    def _give_up_if_exhausted(self, url: str, failures: int, reason: str) -> None:
        if failures >= self._retry.max_attempts:
            raise KarbonUnavailable(url, failures, redact(reason, self._secrets))

    async def _pause_for_throttle(self, response: httpx.Response, body: Any) -> None:
        """Hold every request of the tenant as long as Karbon asked."""
        delay = self._retry.throttle_delay(response, body)
        KARBON_RETRIES.labels("throttled").inc()
        KARBON_RETRY_AFTER.observe(delay)
        await self._on_request_loop(self._pause_budget, delay)

    async def _sleep_before_retry(self, failures: int, reason: str) -> None:
        """Computed, jittered backoff; the budget slot is not held meanwhile."""
        KARBON_RETRIES.labels(reason).inc()
        await self._on_request_loop(self._note_retry)
        await asyncio.sleep(self._retry.backoff(failures))

    def _auth_error(self, status: int, body: Any) -> KarbonAuthError:
        message = karbon_message(body)
        return KarbonAuthError(status, classify_rejected_key(message), self._redacted(message))

    def _redacted(self, text: str | None) -> str | None:
        return None if text is None else redact(text, self._secrets)


def list_records(body: Any) -> list[dict[str, Any]] | None:
    """The records of a list page's body, or None when the body is not a list page."""
    if not isinstance(body, dict):
        return None
    # The Invoices list schema names its array "values"; the API itself answers "value".
    records = body.get("value", body.get("values"))
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return None
    return records


def _page_from(response: KarbonResponse) -> Page:
    body = response.body_json
    records = list_records(body)
    if records is None:
        raise KarbonProtocolError(f"{response.url} is not a list page: no 'value' array")
    next_link = body.get("@odata.nextLink")
    count = body.get("@odata.count")
    return Page(
        response=response,
        records=records,
        next_link=next_link if isinstance(next_link, str) and next_link else None,
        total_count=count if isinstance(count, int) else None,
    )


def _calling_when_headers_are_sent(
    leaving: Leaving,
) -> Callable[[str, Mapping[str, Any]], Awaitable[None]]:
    """An httpcore trace hook that awaits ``leaving`` just before the request's first bytes
    are written, after any wait for a pooled connection or a new one's handshake: httpcore
    writes them only once it returns."""

    async def trace(event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(".send_request_headers.started"):  # http11. or http2.
            await leaving()

    return trace


def _release_stream(response: httpx.Response) -> None:
    """Drop a read response's stream. httpx 0.28 binds each response and its stream in a
    reference cycle (encode/httpx#3733), so every response, with its body and transport
    objects, waited for the cycle collector; with many tenants syncing, each collection then
    freed a hundred thousand objects at once and stopped the event loop for tenths of a
    second. Without the stream, a response goes as soon as it is no longer used."""
    response.stream = httpx.ByteStream(b"")
