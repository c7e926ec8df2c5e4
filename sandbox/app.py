"""The Karbon sandbox HTTP app: ``create_sandbox_app(sandbox) -> FastAPI``.

Karbon endpoints (GET only; two headers, ``AccessKey`` and ``Authorization: Bearer``)::

    /v3/Users                 /v3/Users/{Id}
    /v3/Contacts
    /v3/Organizations         /v3/Organizations/{key}   ($expand=BusinessCards,ClientTeam,Contacts)
    /v3/WorkItems             /v3/WorkItems/{key}
    /v3/Timesheets            ($expand=TimeEntries)
    /v3/Invoices              /v3/Invoices/{key}        ($expand=LineItems,Payments,Data)

Every other path under the app answers 404 the way Karbon does; any method but GET answers 405
and is counted as a non-GET attempt. A request is answered in this order: method check,
AccessKey (401 "JWT not present." / "JWT is invalid."), Bearer token (401 "Authorization has been
denied for this request. The Bearer token is not valid for this AccessKey."), endpoints the
tenant's API application was not granted (403, see ``Sandbox.deny``), rate limit (429
with ``Retry-After``), injected faults, then the endpoint itself after the configured latency.
Responses are gzip-compressed when the client accepts it (``SandboxConfig.gzip``).

Admin endpoints (no Karbon auth, never counted, rate limited, delayed or faulted)::

    GET    /_sandbox/health
    GET    /_sandbox/tenants                         tenants with their AccessKey, Bearer token
                                                     and record counts
    GET    /_sandbox/tenants/{name}/counters[?log=true]
                                                     requests (total, by "METHOD /path/template",
                                                     by status), rate_limited_429,
                                                     unauthorized_401, non_get_attempts,
                                                     faults_injected, max_requests_in_window
                                                     {"1s","10s","60s"}; log=true adds the
                                                     last 20,000 requests (t, route, status)
    GET    /_sandbox/counters                        every tenant's counters, plus
                                                     "unattributed" (no valid AccessKey)
    POST   /_sandbox/counters/reset                  reset all counters and rate-limit windows
    POST   /_sandbox/tenants/{name}/counters/reset   reset one tenant's
    POST   /_sandbox/tenants/{name}/advance          body {"days": N}: advance the firm N days;
                                                     answers the counts of what changed
    POST   /_sandbox/tenants/{name}/faults           body {"faults": ["500", "drop", "ok", ...]}:
                                                     queue faults for the next requests
    PUT    /_sandbox/tenants/{name}/permissions      body {"denied": ["Invoices", ...]}: those
                                                     endpoints answer 403 ([] grants all)
    GET    /_sandbox/config                          the configuration
    PATCH  /_sandbox/config                          partial, nested update, e.g.
                                                     {"max_page_size": 5,
                                                      "faults": {"error_500_rate": 0.1}}

Counted route names are the path templates ``/v3/Users``, ``/v3/Users/{Id}``, ``/v3/Contacts``,
``/v3/Organizations``, ``/v3/Organizations/{key}``, ``/v3/WorkItems``, ``/v3/WorkItems/{key}``,
``/v3/Timesheets``, ``/v3/Invoices``, ``/v3/Invoices/{key}`` prefixed by the method
(``"GET /v3/Users"``); anything else counts as ``"<METHOD> <unmatched>"`` with the raw path in
``unmatched_paths``.

Choices where the spec is silent (ASP.NET Web API behaviour): paths match case-insensitively;
``@odata.count`` is present (the list schemas require it) unless ``SandboxConfig.odata_count`` is
off; ``$top`` is the page size and
``@odata.nextLink`` repeats the request's URL with ``$skip`` advanced, so a client that follows it
with ``$top=100`` visits every record once; 404 bodies use the spec's "4004" examples.
"""

from __future__ import annotations

import asyncio
import gzip
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from fastapi import Body, FastAPI, HTTPException, Query
from starlette.types import Receive, Scope, Send

from sandbox import render
from sandbox.model import Firm
from sandbox.odata import ODataError, QuerySpec, parse_query
from sandbox.state import FAULT_KINDS, Sandbox, Tenant
from sandbox.store import (
    INVOICE_DETAIL,
    LAST_MODIFIED_FILTER,
    ORGANIZATION_DETAIL,
    USER_DETAIL,
    WORK_ITEM_DETAIL,
)

JWT_NOT_PRESENT = {"error": {"statusCode": "401", "message": "JWT not present."}}
JWT_INVALID = {"error": {"statusCode": "401", "message": "JWT is invalid."}}
BEARER_INVALID = {
    "error": {
        "statusCode": "401",
        "message": (
            "Authorization has been denied for this request. "
            "The Bearer token is not valid for this AccessKey."
        ),
    }
}

# Karbon's spec gives no 403 body; this follows the shape of its 401.
NOT_GRANTED = {
    "error": {
        "statusCode": "403",
        "message": "This API application does not have permission to access this endpoint.",
    }
}

_ROUTES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^/v3/users/?$", re.I), "/v3/Users", "list:Users"),
    (re.compile(r"^/v3/users/([^/]+)$", re.I), "/v3/Users/{Id}", "user"),
    (re.compile(r"^/v3/contacts/?$", re.I), "/v3/Contacts", "list:Contacts"),
    (re.compile(r"^/v3/organizations/?$", re.I), "/v3/Organizations", "list:Organizations"),
    (re.compile(r"^/v3/organizations/([^/]+)$", re.I), "/v3/Organizations/{key}", "organization"),
    (re.compile(r"^/v3/workitems/?$", re.I), "/v3/WorkItems", "list:WorkItems"),
    (re.compile(r"^/v3/workitems/([^/]+)$", re.I), "/v3/WorkItems/{key}", "work_item"),
    (re.compile(r"^/v3/timesheets/?$", re.I), "/v3/Timesheets", "list:Timesheets"),
    (re.compile(r"^/v3/invoices/?$", re.I), "/v3/Invoices", "list:Invoices"),
    (re.compile(r"^/v3/invoices/([^/]+)$", re.I), "/v3/Invoices/{key}", "invoice"),
]


def _match(path: str) -> tuple[str | None, str | None, str | None]:
    for rx, template, handler in _ROUTES:
        m = rx.match(path)
        if m:
            return template, handler, unquote(m.group(1)) if m.groups() else None
    return None, None, None


@dataclass
class _Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    expanded: bool = False


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, render.dumps({"error": {"code": code, "message": message}}))


class SandboxApp(FastAPI):
    """FastAPI app whose Karbon traffic is answered at the ASGI level (for real socket drops)."""

    sandbox: Sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if not path.startswith("/_sandbox"):
                await _karbon(self.sandbox, scope, path, send)
                return
        await super().__call__(scope, receive, send)


def create_sandbox_app(sandbox: Sandbox) -> FastAPI:
    app = SandboxApp(
        title="Karbon sandbox",
        description=__doc__,
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.sandbox = sandbox
    _admin_routes(app, sandbox)
    return app


# ------------------------------------------------------------------------------------------------
# Karbon requests
# ------------------------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _base_url(scope: Scope, headers: dict[str, str]) -> str:
    scheme = scope.get("scheme", "http")
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}{scope.get('root_path', '')}"


async def _karbon(sandbox: Sandbox, scope: Scope, path: str, send: Send) -> None:
    method = scope["method"]
    headers = _headers(scope)
    raw_query = scope.get("query_string", b"").decode("latin-1")
    template, handler, key = _match(path)
    route = f"{method} {template or '<unmatched>'}"
    now = sandbox.clock()
    access_key = headers.get("accesskey", "").strip()
    tenant = sandbox.by_access_key(access_key)
    counters = tenant.counters if tenant else sandbox.unattributed
    lock = tenant.lock if tenant else sandbox.lock
    with lock:
        counters.arrive(now, route)
        if template is None:
            counters.unmatched_paths[path] = counters.unmatched_paths.get(path, 0) + 1

    def finish(status: int | str) -> None:
        with lock:
            counters.answer(now, route, status)

    if method != "GET":
        with lock:
            counters.non_get += 1
        reply = _error(
            405, "4005", f"The requested resource does not support http method '{method}'."
        )
        reply.headers["Allow"] = "GET"
        finish(405)
        await _send(send, reply, headers, sandbox)
        return
    if not access_key:
        finish(401)
        await _send(send, _Reply(401, render.dumps(JWT_NOT_PRESENT)), headers, sandbox)
        return
    if tenant is None:
        finish(401)
        await _send(send, _Reply(401, render.dumps(JWT_INVALID)), headers, sandbox)
        return
    auth = headers.get("authorization", "")
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or token.strip().lower() != tenant.bearer_token.lower():
        finish(401)
        await _send(send, _Reply(401, render.dumps(BEARER_INVALID)), headers, sandbox)
        return

    if template is not None and template.split("/")[2] in tenant.denied:
        finish(403)
        await _send(send, _Reply(403, render.dumps(NOT_GRANTED)), headers, sandbox)
        return

    config = sandbox.config
    with tenant.lock:
        wait = None
        if config.rate_limit_enabled:
            wait = tenant.limiter.check(
                now, config.rate_limit_requests, config.rate_limit_window_seconds
            )
        fault = None if wait is not None else _pick_fault(sandbox, tenant)
    if wait is not None:
        finish(429)
        await _send(send, _too_many(wait), headers, sandbox)
        return
    if fault is not None:
        with tenant.lock:
            tenant.counters.fault(fault)
    if fault == "429":
        finish(429)
        await _send(send, _too_many(config.faults.burst_429_retry_after), headers, sandbox)
        return
    if fault in ("500", "503"):
        reply = (
            _error(
                500,
                "5001",
                "Unexpected Internal Error. Please contact Karbon HQ "
                "Technical support with API Request Id of "
                f"{sandbox.rng.randrange(10**19, 10**20)}.",
            )
            if fault == "500"
            else _Reply(
                503,
                render.dumps(
                    {"statusCode": "503", "message": "The service is temporarily unavailable."}
                ),
            )
        )
        await _delay(sandbox, False)
        finish(reply.status)
        await _send(send, reply, headers, sandbox)
        return
    if fault == "drop":
        finish("dropped")
        await _drop(send)
        return

    base = _base_url(scope, headers)
    with tenant.lock:
        try:
            if handler is None:
                reply = _error(
                    404,
                    "4002",
                    f"No HTTP resource was found that matches the request URI '{base}{path}'.",
                )
            else:
                reply = _handle(sandbox, tenant, handler, key, path, raw_query, base)
        except ODataError as exc:
            reply = _error(400, exc.code, exc.message)
    if fault == "timeout":
        await asyncio.sleep(config.faults.timeout_seconds)
    await _delay(sandbox, reply.expanded)
    if fault == "truncate" and reply.status == 200:
        cut = max(1, int(len(reply.body) * sandbox.rng.uniform(0.3, 0.9)))
        reply.body = reply.body[:cut]
    elif fault == "malformed" and reply.status == 200:
        reply.body = reply.body[:-1] + ",}"  # a trailing comma: invalid JSON
    finish(reply.status)
    await _send(send, reply, headers, sandbox)


def _pick_fault(sandbox: Sandbox, tenant: Tenant) -> str | None:
    """The fault for this request: scripted first, then an ongoing 429 burst, then random."""
    if tenant.fault_script:
        f = tenant.fault_script.popleft()
        return None if f == "ok" else f
    if tenant.burst_remaining > 0:
        tenant.burst_remaining -= 1
        return "429"
    fc = sandbox.config.faults
    r = sandbox.rng.random()
    for kind, rate in (
        ("500", fc.error_500_rate),
        ("503", fc.error_503_rate),
        ("429", fc.burst_429_rate),
        ("timeout", fc.timeout_rate),
        ("drop", fc.drop_rate),
        ("truncate", fc.truncate_rate),
        ("malformed", fc.malformed_rate),
    ):
        if r < rate:
            if kind == "429":
                tenant.burst_remaining = max(0, fc.burst_429_length - 1)
            return kind
        r -= rate
    return None


def _too_many(seconds: int) -> _Reply:
    return _Reply(
        429,
        render.dumps(
            {
                "statusCode": "429",
                "message": f"Rate limit is exceeded. Try again in {seconds} seconds.",
            }
        ),
        {"Retry-After": str(seconds)},
    )


async def _delay(sandbox: Sandbox, expanded: bool) -> None:
    seconds = sandbox.config.latency.sample(sandbox.rng, expanded=expanded)
    if seconds > 0:
        await asyncio.sleep(seconds)


async def _drop(send: Send) -> None:
    """Close the connection without answering: a real socket close under uvicorn; in-process
    (httpx.ASGITransport) the error httpx raises for it."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        return
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


async def _send(send: Send, reply: _Reply, req_headers: dict[str, str], sandbox: Sandbox) -> None:
    body = reply.body.encode()
    headers = [
        (b"content-type", b"application/json; odata.metadata=minimal; charset=utf-8"),
        (b"odata-version", b"4.0"),
    ]
    if (
        sandbox.config.gzip
        and len(body) > 1024
        and "gzip" in req_headers.get("accept-encoding", "").lower()
    ):
        body = gzip.compress(body, compresslevel=1)
        headers.append((b"content-encoding", b"gzip"))
        headers.append((b"vary", b"Accept-Encoding"))
    headers.append((b"content-length", str(len(body)).encode()))
    for k, v in reply.headers.items():
        headers.append((k.lower().encode(), v.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------------
# Endpoints
# ------------------------------------------------------------------------------------------------


def _handle(
    sandbox: Sandbox,
    tenant: Tenant,
    handler: str,
    key: str | None,
    path: str,
    raw_query: str,
    base: str,
) -> _Reply:
    if handler.startswith("list:"):
        return _list(sandbox, tenant, handler[5:], path, raw_query, base)
    assert key is not None
    rendered = tenant.data.details.get((handler, key, raw_query, base))
    if rendered is None:
        reply = _detail(tenant.firm, handler, key, raw_query, base)
        if reply.status != 200:
            return reply
        rendered = tenant.data.details[(handler, key, raw_query, base)] = (
            reply.body,
            reply.expanded,
        )
    return _Reply(200, rendered[0], expanded=rendered[1])


def _detail(firm: Firm, handler: str, key: str, raw_query: str, base: str) -> _Reply:
    if handler == "user":
        _detail_options(raw_query, USER_DETAIL)
        u = firm.users.get(key)
        if u is None:
            return _error(404, "4004", "No User found for provided key")
        return _Reply(200, render.dumps(render.user_detail(u, base)))
    if handler == "organization":
        q = _detail_options(raw_query, ORGANIZATION_DETAIL)
        o = firm.organizations.get(key)
        if o is None:
            return _error(404, "4004", f"No organization exists with a key of {key}.")
        return _Reply(
            200, render.dumps(render.organization_detail(firm, o, base, q)), expanded=bool(q)
        )
    if handler == "work_item":
        _detail_options(raw_query, WORK_ITEM_DETAIL)
        w = firm.work_items.get(key)
        if w is None:
            return _error(404, "4004", "No Work Item found for provided key")
        return _Reply(200, render.dumps(render.work_item_detail(firm, w, base)))
    if handler == "invoice":
        q = _detail_options(raw_query, INVOICE_DETAIL)
        inv = firm.invoices.get(key)
        if inv is None or inv.status == "Draft":  # drafts are never returned
            return _error(404, "4004", f"Invoice with key {key} not found.")
        return _Reply(200, render.dumps(render.invoice_detail(inv, base, q)), expanded=bool(q))
    raise KeyError(handler)


def _detail_options(raw_query: str, spec: QuerySpec) -> list[str]:
    return parse_query(raw_query, spec).expand


def _list(
    sandbox: Sandbox, tenant: Tenant, set_name: str, path: str, raw_query: str, base: str
) -> _Reply:
    data = tenant.data
    es = data.sets[set_name]
    config = sandbox.config
    spec = es.spec
    extra = None
    if set_name in ("Contacts", "Organizations") and config.allow_last_modified_filter:
        extra = LAST_MODIFIED_FILTER
    if set_name == "Invoices" and not config.invoice_list_includes_line_items:
        if config.invoice_list_rejects_expand:
            spec = QuerySpec(
                spec.entity_set,
                spec.dto,
                spec.options - {"$expand"},
                spec.properties,
                spec.filters,
                spec.orderby,
                (),
            )
        q = parse_query(raw_query, spec, extra_filters=extra)
        q.expand = []  # the list ignores $expand=LineItems (the spec documents it on the detail)
    else:
        q = parse_query(raw_query, spec, extra_filters=extra)
    rows = data.matching(set_name, q.orderby, q.filter_text, q.predicate, bool(extra))
    page_size = min(q.top if q.top is not None else config.max_page_size, config.max_page_size)
    page = rows[q.skip : q.skip + page_size]
    variant = q.expand[0] if q.expand else ""
    frags = [data.fragment(set_name, variant, r) for r in page]
    context = f"{base}/v3/$metadata#{es.context_suffix}"
    if q.expand:
        context = f"{base}/v3/$metadata#{set_name}({q.expand[0]}())"
    parts = ['{"@odata.context":', render.dumps(context)]
    if config.odata_count:
        parts += [',"@odata.count":', str(len(rows))]
    next_skip = q.skip + len(page)
    if page and next_skip < len(rows):
        parts += [',"@odata.nextLink":', render.dumps(_next_link(base, path, raw_query, next_skip))]
    parts += [',"value":[', ",".join(frags), "]}"]
    return _Reply(200, "".join(parts), expanded=bool(q.expand))


def _next_link(base: str, path: str, raw_query: str, skip: int) -> str:
    """The request's own URL (options as the client sent them) with ``$skip`` advanced."""
    kept = [p for p in raw_query.split("&") if p and unquote(p.split("=", 1)[0]).lower() != "$skip"]
    kept.append(f"$skip={skip}")
    return f"{base}{path}?{'&'.join(kept)}"


# ------------------------------------------------------------------------------------------------
# Admin API
# ------------------------------------------------------------------------------------------------


def _admin_routes(app: FastAPI, sandbox: Sandbox) -> None:
    def tenant_or_404(name: str) -> Tenant:
        try:
            return sandbox.tenant(name)
        except KeyError:
            raise HTTPException(404, f"no tenant named {name!r}") from None

    @app.get("/_sandbox/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "tenants": len(sandbox.tenants)}

    @app.get("/_sandbox/tenants")
    def tenants() -> list[dict[str, Any]]:
        out = []
        for t in sandbox.tenants.values():
            with t.lock:
                out.append(t.describe())
        return out

    @app.get("/_sandbox/tenants/{name}/counters")
    def tenant_counters(name: str, log: bool = Query(False)) -> dict[str, Any]:
        tenant_or_404(name)
        return sandbox.counters(name, with_log=log)

    @app.get("/_sandbox/counters")
    def all_counters() -> dict[str, Any]:
        with sandbox.lock:
            unattributed = sandbox.unattributed.snapshot()
        return {
            "tenants": {n: sandbox.counters(n) for n in sandbox.tenants},
            "unattributed": unattributed,
        }

    @app.post("/_sandbox/counters/reset")
    def reset_all() -> dict[str, str]:
        sandbox.reset_counters()
        return {"status": "reset"}

    @app.post("/_sandbox/tenants/{name}/counters/reset")
    def reset_one(name: str) -> dict[str, str]:
        tenant_or_404(name)
        sandbox.reset_counters(name)
        return {"status": "reset"}

    @app.post("/_sandbox/tenants/{name}/advance")
    def advance(name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        tenant = tenant_or_404(name)
        days = body.get("days")
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise HTTPException(422, "days must be a non-negative integer")
        changes = sandbox.advance(name, days)
        return {"today": tenant.firm.today.isoformat(), "changes": changes}

    @app.post("/_sandbox/tenants/{name}/faults")
    def faults(name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        tenant = tenant_or_404(name)
        items = body.get("faults")
        if not isinstance(items, list):
            raise HTTPException(422, f"faults must be a list of {', '.join(FAULT_KINDS)} or ok")
        try:
            sandbox.inject_faults(name, items)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"queued": list(tenant.fault_script)}

    @app.put("/_sandbox/tenants/{name}/permissions")
    def permissions(name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        tenant = tenant_or_404(name)
        denied = body.get("denied")
        if not isinstance(denied, list) or not all(isinstance(e, str) for e in denied):
            raise HTTPException(422, "denied must be a list of endpoint names such as Invoices")
        try:
            sandbox.deny(name, denied)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"denied": sorted(tenant.denied)}

    @app.get("/_sandbox/config")
    def get_config() -> dict[str, Any]:
        return sandbox.config.to_dict()

    @app.patch("/_sandbox/config")
    def patch_config(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:
            return sandbox.update_config(body).to_dict()
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
