"""The only Karbon endpoints Reckonry may call, and the guard that enforces it.

``assert_allowed`` is the single choke point: the HTTP client runs it on every outgoing request
(as an httpx request hook), so a request that is not a GET on one of these paths raises
``ReadOnlyViolation`` before a byte is sent, whatever code path produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

import httpx

from app.sync.karbon.errors import ReadOnlyViolation


@dataclass(frozen=True)
class Resource:
    """A Karbon collection: its list path and, when we may read one record, its detail path."""

    name: str
    list_path: str
    detail_path: str | None = None

    def detail_url_path(self, key: str) -> str:
        """The detail path for ``key``; the key is one opaque, fully escaped path segment."""
        if self.detail_path is None:
            raise ReadOnlyViolation(f"{self.name} has no detail endpoint Reckonry may call")
        if not key or key in (".", ".."):
            raise ReadOnlyViolation(f"invalid {self.name} key {key!r}")
        return self.detail_path.replace("{key}", quote(key, safe=""))


USERS = Resource("Users", "/v3/Users", "/v3/Users/{key}")
CONTACTS = Resource("Contacts", "/v3/Contacts")
ORGANIZATIONS = Resource("Organizations", "/v3/Organizations", "/v3/Organizations/{key}")
WORK_ITEMS = Resource("WorkItems", "/v3/WorkItems", "/v3/WorkItems/{key}")
TIMESHEETS = Resource("Timesheets", "/v3/Timesheets")
INVOICES = Resource("Invoices", "/v3/Invoices", "/v3/Invoices/{key}")

RESOURCES: tuple[Resource, ...] = (USERS, CONTACTS, ORGANIZATIONS, WORK_ITEMS, TIMESHEETS, INVOICES)

ALLOWED_METHODS = frozenset({"GET"})


def _template_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template).replace(re.escape("{key}"), "(?P<key>[^/]+)") + "/?")


_ALLOWED_PATHS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (template, _template_pattern(template))
    for resource in RESOURCES
    for template in (resource.list_path, resource.detail_path)
    if template is not None
)


def endpoint_of(url: httpx.URL, base_url: httpx.URL) -> str:
    """The endpoint `url` calls, as its path template (`/v3/WorkItems/{key}`), or "other"."""
    prefix = base_url.path.rstrip("/")
    path = url.path[len(prefix) :] if url.path.startswith(prefix + "/") else url.path
    for template, pattern in _ALLOWED_PATHS:
        if pattern.fullmatch(path):
            return template
    return "other"


def _path_is_allowed(path: str) -> bool:
    for _, pattern in _ALLOWED_PATHS:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        key = match.groupdict().get("key")
        # An escaped slash or dot-segment could be read by a server as another path.
        return key is None or (unquote(key) not in (".", "..") and "/" not in unquote(key))
    return False


def assert_allowed(method: str, url: httpx.URL, base_url: httpx.URL) -> None:
    """Raise ``ReadOnlyViolation`` unless this is a GET on an allowed path of ``base_url``."""
    if method.upper() not in ALLOWED_METHODS:
        raise ReadOnlyViolation(f"{method.upper()} is not allowed: Reckonry only reads Karbon")
    if (url.scheme, url.host, url.port) != (base_url.scheme, base_url.host, base_url.port):
        raise ReadOnlyViolation(f"{url.scheme}://{url.host} is not the configured Karbon host")
    prefix = base_url.raw_path.decode("ascii").split("?")[0].rstrip("/")
    path = url.raw_path.decode("ascii").split("?")[0]
    if not path.startswith(prefix + "/") or not _path_is_allowed(path[len(prefix) :]):
        raise ReadOnlyViolation(f"{path} is not an endpoint Reckonry may call")
