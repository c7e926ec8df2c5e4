"""Sandbox state: tenants (keys, firm, counters), configuration, rate limiting, fault scripts.

Thread safety: the HTTP server may run on another thread (``serve_sandbox_in_thread``) than the
test that changes config or advances a firm, so every tenant has a lock held while its data or
counters are read or changed, and the config is replaced field by field under the sandbox lock.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sandbox.generator import advance_firm, generate_firm
from sandbox.messy import make_messy
from sandbox.model import Firm
from sandbox.store import TenantData

FAULT_KINDS = ("500", "503", "429", "timeout", "drop", "truncate", "malformed")


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------


@dataclass
class LatencyConfig:
    """Response latency. ``distribution``: none | constant | uniform | lognormal.

    ``median_seconds`` is the constant value, the uniform mid-point or the log-normal median;
    ``sigma`` the log-normal shape (or the uniform half-width); samples are clipped to
    ``[min_seconds, max_seconds]``; responses that ``$expand`` something take
    ``expand_factor`` times longer (Karbon: "$expand adds latency").
    """

    distribution: str = "none"
    median_seconds: float = 0.5
    sigma: float = 0.5
    min_seconds: float = 0.0
    max_seconds: float = 10.0
    expand_factor: float = 1.5

    def sample(self, rng: random.Random, *, expanded: bool = False) -> float:
        if self.distribution == "none":
            return 0.0
        if self.distribution == "constant":
            value = self.median_seconds
        elif self.distribution == "uniform":
            value = rng.uniform(self.median_seconds - self.sigma, self.median_seconds + self.sigma)
        elif self.distribution == "lognormal":
            value = rng.lognormvariate(math.log(max(self.median_seconds, 1e-6)), self.sigma)
        else:
            raise ValueError(f"unknown latency distribution {self.distribution!r}")
        if expanded:
            value *= self.expand_factor
        return min(max(value, self.min_seconds), self.max_seconds)


@dataclass
class FaultConfig:
    """Random fault injection, each rate a probability per authenticated request.

    * ``error_500_rate`` / ``error_503_rate``: answer 500 / 503 instead.
    * ``burst_429_rate``: start a burst: this and the next ``burst_429_length - 1`` requests of
      the tenant get 429 with ``Retry-After: burst_429_retry_after``.
    * ``timeout_rate``: wait ``timeout_seconds`` before answering (exceeds a client's timeout).
    * ``drop_rate``: close the connection without an answer.
    * ``truncate_rate``: answer 200 with the JSON cut short (Content-Length matches).
    * ``malformed_rate``: answer 200 with syntactically invalid JSON.
    """

    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    burst_429_rate: float = 0.0
    burst_429_length: int = 5
    burst_429_retry_after: int = 2
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    malformed_rate: float = 0.0


@dataclass
class SandboxConfig:
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    # The product page promises /v3/Invoices?$expand=LineItems; the spec documents $expand only
    # on the detail. True: the list honours $expand=LineItems. False: the list ignores it (or
    # answers 400 when invoice_list_rejects_expand is also set).
    invoice_list_includes_line_items: bool = False
    invoice_list_rejects_expand: bool = False
    max_page_size: int = 100  # server page size; $top above 100 is still a 400 as on Karbon
    # Lists carry @odata.count, as the list schemas require; False omits it, which code must
    # survive (progress unknown, deletions found by reading the whole list).
    odata_count: bool = True
    rate_limit_enabled: bool = True
    rate_limit_requests: int = 120
    rate_limit_window_seconds: float = 60.0
    # Contacts/Organizations $filter on LastModifiedDateTime is not in the spec: 400 unless set.
    allow_last_modified_filter: bool = False
    gzip: bool = True  # compress when the client sends Accept-Encoding: gzip
    seed: int = 0  # seeds latency and fault sampling

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a (possibly nested, partial) dict of changes; ValueError on unknown keys/types."""
        _apply(self, changes, "")


def _apply(target: Any, changes: dict[str, Any], prefix: str) -> None:
    if not isinstance(changes, dict):
        raise ValueError(f"{prefix or 'config'} must be an object")
    fields = {f.name: f for f in dataclasses.fields(target)}
    staged: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in fields:
            raise ValueError(f"unknown config field {prefix}{key}")
        current = getattr(target, key)
        if isinstance(current, LatencyConfig | FaultConfig):
            copy = dataclasses.replace(current)
            _apply(copy, value, f"{prefix}{key}.")
            staged[key] = copy
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{prefix}{key} must be a boolean")
            staged[key] = value
        elif isinstance(current, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{prefix}{key} must be an integer")
            staged[key] = value
        elif isinstance(current, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{prefix}{key} must be a number")
            staged[key] = float(value)
        else:
            if not isinstance(value, str):
                raise ValueError(f"{prefix}{key} must be a string")
            staged[key] = value
    if (
        isinstance(target, LatencyConfig)
        and "distribution" in staged
        and staged["distribution"] not in ("none", "constant", "uniform", "lognormal")
    ):
        raise ValueError("latency.distribution must be none, constant, uniform or lognormal")
    if "max_page_size" in staged and staged["max_page_size"] < 1:
        raise ValueError("max_page_size must be at least 1")
    for key, value in staged.items():
        setattr(target, key, value)


# ------------------------------------------------------------------------------------------------
# Counters
# ------------------------------------------------------------------------------------------------


class _WindowMax:
    """Exact maximum number of events in any window of ``width`` seconds.

    A window ``(t - width, t]`` holding the most events can always be slid so that it ends at an
    event, so checking the window ending at each arrival is exact.
    """

    __slots__ = ("max", "times", "width")

    def __init__(self, width: float) -> None:
        self.width = width
        self.times: deque[float] = deque()
        self.max = 0

    def add(self, t: float) -> None:
        times = self.times
        times.append(t)
        while times and times[0] <= t - self.width:
            times.popleft()
        if len(times) > self.max:
            self.max = len(times)


@dataclass
class Counters:
    """What one tenant's clients did. All counts are exact integers."""

    requests: int = 0  # every request attributed to the tenant (any method, any answer)
    by_route: dict[str, int] = field(default_factory=dict)  # "GET /v3/Users/{Id}" -> n
    by_status: dict[str, int] = field(default_factory=dict)  # "200" -> n
    rate_limited: int = 0  # 429 answers (rate limit and injected bursts)
    unauthorized: int = 0  # 401 answers
    non_get: int = 0  # attempts with any method but GET
    faults: dict[str, int] = field(default_factory=dict)  # injected fault kind -> n
    unmatched_paths: dict[str, int] = field(default_factory=dict)
    first_request_at: float | None = None
    last_request_at: float | None = None
    log: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=20000))
    _windows: dict[str, _WindowMax] = field(
        default_factory=lambda: {
            "1s": _WindowMax(1.0),
            "10s": _WindowMax(10.0),
            "60s": _WindowMax(60.0),
        }
    )

    def arrive(self, t: float, route: str) -> None:
        self.requests += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1
        if self.first_request_at is None:
            self.first_request_at = t
        self.last_request_at = t
        for w in self._windows.values():
            w.add(t)

    def answer(self, t: float, route: str, status: int | str) -> None:
        key = str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1
        if status == 429:
            self.rate_limited += 1
        elif status == 401:
            self.unauthorized += 1
        self.log.append((t, route, key))

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def snapshot(self, *, with_log: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "by_route": dict(sorted(self.by_route.items())),
            "by_status": dict(sorted(self.by_status.items())),
            "rate_limited_429": self.rate_limited,
            "unauthorized_401": self.unauthorized,
            "non_get_attempts": self.non_get,
            "faults_injected": dict(sorted(self.faults.items())),
            "unmatched_paths": dict(sorted(self.unmatched_paths.items())),
            "max_requests_in_window": {k: w.max for k, w in self._windows.items()},
            "first_request_at": self.first_request_at,
            "last_request_at": self.last_request_at,
        }
        if with_log:
            out["log"] = [{"t": t, "route": r, "status": s} for t, r, s in self.log]
        return out


class RateLimiter:
    """Sliding-window log: at most ``limit`` accepted requests in any ``window`` seconds."""

    def __init__(self) -> None:
        self.accepted: deque[float] = deque()

    def check(self, t: float, limit: int, window: float) -> int | None:
        """Record a request at ``t``; None if accepted, else the seconds to wait (Retry-After)."""
        acc = self.accepted
        while acc and acc[0] <= t - window:
            acc.popleft()
        if len(acc) >= limit:
            return max(1, math.ceil(acc[len(acc) - limit] + window - t))
        acc.append(t)
        return None

    def reset(self) -> None:
        self.accepted.clear()


# ------------------------------------------------------------------------------------------------
# Tenants
# ------------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_access_key(name: str, seed: int = 0) -> str:
    """A JWT-shaped AccessKey (``eyJ...``), stable for a tenant name and seed."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    digest = hashlib.sha256(f"{name}:{seed}".encode()).hexdigest()
    payload = _b64url(
        json.dumps(
            {"iss": "karbon-sandbox", "tenant": name, "sub": digest[:24]}, separators=(",", ":")
        ).encode()
    )
    sig = hmac.new(
        f"karbon-sandbox:{seed}".encode(), f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


def make_bearer_token(name: str, seed: int = 0) -> str:
    """A GUID Bearer token, stable for a tenant name and seed."""
    raw = hashlib.sha256(f"{name}:{seed}:bearer".encode()).digest()[:16]
    return str(uuid.UUID(bytes=raw, version=4))


ENDPOINT_NAMES = ("Users", "Contacts", "Organizations", "WorkItems", "Timesheets", "Invoices")


@dataclass
class Tenant:
    name: str
    access_key: str
    bearer_token: str
    firm: Firm
    counters: Counters = field(default_factory=Counters)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    fault_script: deque[str] = field(default_factory=deque)
    denied: frozenset[str] = frozenset()
    """Endpoints (``Invoices``) this tenant's API application was not granted: 403."""
    burst_remaining: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    data: TenantData = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data = TenantData(self.firm)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "access_key": self.access_key,
            "bearer_token": self.bearer_token,
            "firm": self.firm.name,
            "size": self.firm.size,
            "seed": self.firm.seed,
            "today": self.firm.today.isoformat(),
            "counts": self.firm.counts(),
        }


class Sandbox:
    """The tenants and configuration one sandbox server answers for."""

    def __init__(
        self,
        tenants: Iterable[Tenant] = (),
        config: SandboxConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SandboxConfig()
        self.clock = clock
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self._by_access_key: dict[str, Tenant] = {}
        self.unattributed = Counters()  # requests no tenant's AccessKey identified
        self.rng = random.Random(self.config.seed)
        for t in tenants:
            self._register(t)

    @classmethod
    def create(
        cls,
        *specs: tuple[str, str, int],
        config: SandboxConfig | None = None,
        today: date | None = None,
        clock: Callable[[], float] = time.monotonic,
        messy: bool = False,
    ) -> Sandbox:
        """``Sandbox.create(("Demo firm", "small", 0), ("Other firm", "tiny", 1))``;
        ``messy``: each firm made messy (see ``sandbox.messy``)."""
        sandbox = cls(config=config, clock=clock)
        for name, size, seed in specs or (("Demo firm", "small", 0),):
            sandbox.add_tenant(name, size=size, seed=seed, today=today, messy=messy)
        return sandbox

    def add_tenant(
        self,
        name: str,
        *,
        firm: Firm | None = None,
        size: str = "small",
        seed: int = 0,
        today: date | None = None,
        access_key: str | None = None,
        bearer_token: str | None = None,
        messy: bool = False,
    ) -> Tenant:
        if firm is None:
            firm = generate_firm(size, seed, today=today)
        if messy:
            firm.mess = make_messy(firm)
        tenant = Tenant(
            name=name,
            access_key=access_key or make_access_key(name, firm.seed),
            bearer_token=bearer_token or make_bearer_token(name, firm.seed),
            firm=firm,
        )
        self._register(tenant)
        return tenant

    def _register(self, tenant: Tenant) -> None:
        with self.lock:
            if tenant.name in self.tenants:
                raise ValueError(f"tenant {tenant.name!r} already exists")
            if tenant.access_key in self._by_access_key:
                raise ValueError("access key already in use")
            self.tenants[tenant.name] = tenant
            self._by_access_key[tenant.access_key] = tenant

    # -- lookups ---------------------------------------------------------------------------------
    def tenant(self, name: str) -> Tenant:
        try:
            return self.tenants[name]
        except KeyError:
            raise KeyError(f"no tenant named {name!r}") from None

    def by_access_key(self, access_key: str | None) -> Tenant | None:
        return self._by_access_key.get(access_key) if access_key else None

    # -- operations used by tests and the admin API -----------------------------------------------
    def advance(self, name: str, days: int) -> dict[str, int]:
        tenant = self.tenant(name)
        with tenant.lock:
            changes = advance_firm(tenant.firm, days)
            tenant.data.invalidate()
        return changes

    def counters(self, name: str, *, with_log: bool = False) -> dict[str, Any]:
        tenant = self.tenant(name)
        with tenant.lock:
            return tenant.counters.snapshot(with_log=with_log)

    def reset_counters(self, name: str | None = None) -> None:
        names = [name] if name else list(self.tenants)
        for n in names:
            tenant = self.tenant(n)
            with tenant.lock:
                tenant.counters = Counters()
                tenant.limiter.reset()
                tenant.burst_remaining = 0
        if name is None:
            with self.lock:
                self.unattributed = Counters()

    def inject_faults(self, name: str, faults: Iterable[str | None]) -> None:
        """Queue faults for the tenant's next requests, in order ("ok"/None: answer normally)."""
        tenant = self.tenant(name)
        items = ["ok" if f is None else f for f in faults]
        bad = [f for f in items if f not in (*FAULT_KINDS, "ok")]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; use {', '.join(FAULT_KINDS)} or ok")
        with tenant.lock:
            tenant.fault_script.extend(items)

    def deny(self, name: str, endpoints: Iterable[str]) -> None:
        """Take endpoints away from the tenant's API application (``["Invoices"]``): their list
        and detail answer 403. An empty list grants everything again."""
        tenant = self.tenant(name)
        wanted = frozenset(endpoints)
        unknown = wanted - set(ENDPOINT_NAMES)
        if unknown:
            known = ", ".join(ENDPOINT_NAMES)
            raise ValueError(f"unknown endpoints {sorted(unknown)}; use {known}")
        with tenant.lock:
            tenant.denied = wanted

    def update_config(self, changes: dict[str, Any] | None = None, **kw: Any) -> SandboxConfig:
        """Change configuration at run time: ``update_config({"faults": {"drop_rate": 0.1}})``
        or ``update_config(max_page_size=5)``."""
        merged = dict(changes or {})
        merged.update(kw)
        with self.lock:
            self.config.update(merged)
            if "seed" in merged:
                self.rng = random.Random(self.config.seed)
        return self.config
