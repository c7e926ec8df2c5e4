"""Reckonry must never write to Karbon: anything but a GET on the allow-list never leaves."""

from __future__ import annotations

import httpx
import pytest
import respx

from app.sync.karbon import (
    CONTACTS,
    INVOICES,
    ORGANIZATIONS,
    TIMESHEETS,
    USERS,
    WORK_ITEMS,
    ReadOnlyViolation,
)
from app.sync.karbon.endpoints import RESOURCES, assert_allowed
from app.sync.streams import STREAMS, Stream
from tests.sync.karbon_fakes import BASE, make_client, run_virtual


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_every_non_get_method_is_refused_before_sending(method: str) -> None:
    async def attempt() -> None:
        async with make_client() as client:
            # The httpx client inside is the only way out; even it cannot send a write.
            await client._http.request(method, "/v3/Users")

    with respx.mock(base_url=BASE, assert_all_called=False) as karbon:
        route = karbon.route().respond(200, json={"value": []})
        with pytest.raises(ReadOnlyViolation):
            run_virtual(attempt())
    assert not route.called
    assert karbon.calls.call_count == 0


@pytest.mark.parametrize(
    "path",
    [
        "/v3/Timesheets/abc",  # exists in Karbon, not on our list
        "/v3/Contacts/abc",  # Contacts list has all we need: no detail call
        "/v3/IndividualTimeEntries",
        "/v3/Users/abc/Roles",
        "/v3/Users/%2E%2E",
        "/v3/Users/a%2Fb",
        "/v2/Users",
        "/v3/users-export",
    ],
)
def test_unlisted_paths_are_refused_before_sending(path: str) -> None:
    async def attempt() -> None:
        async with make_client() as client:
            await client.get(path)

    with respx.mock(base_url=BASE, assert_all_called=False) as karbon:
        karbon.route().respond(200, json={"value": []})
        with pytest.raises(ReadOnlyViolation):
            run_virtual(attempt())
    assert karbon.calls.call_count == 0


def test_other_hosts_are_refused() -> None:
    async def attempt() -> None:
        async with make_client() as client:
            await client.get("https://evil.test/v3/Users")

    with respx.mock(assert_all_called=False) as mock:
        mock.route().respond(200, json={"value": []})
        with pytest.raises(ReadOnlyViolation):
            run_virtual(attempt())
    assert mock.calls.call_count == 0


def test_detail_keys_cannot_escape_their_path_segment() -> None:
    assert USERS.detail_url_path("a/../../Invoices") == "/v3/Users/a%2F..%2F..%2FInvoices"
    with pytest.raises(ReadOnlyViolation):
        USERS.detail_url_path("..")
    with pytest.raises(ReadOnlyViolation):
        CONTACTS.detail_url_path("abc")


@pytest.mark.parametrize(
    "path",
    [
        "/v3/Users",
        "/v3/Users/4LR9qmR5NQ6T",
        "/v3/Contacts",
        "/v3/Organizations",
        "/v3/Organizations/mC82l11VBk",
        "/v3/WorkItems",
        "/v3/WorkItems/2LPSrkzbYrn4",
        "/v3/Timesheets",
        "/v3/Invoices",
        "/v3/Invoices/M2dVbCt4RHk",
    ],
)
def test_exactly_the_documented_reads_are_allowed(path: str) -> None:
    base = httpx.URL(BASE)
    assert_allowed("GET", base.join(path), base)
    with pytest.raises(ReadOnlyViolation):
        assert_allowed("POST", base.join(path), base)


def test_allow_list_covers_the_six_resources_only() -> None:
    names = {r.name for r in (USERS, CONTACTS, ORGANIZATIONS, WORK_ITEMS, TIMESHEETS, INVOICES)}
    assert names == {"Users", "Contacts", "Organizations", "WorkItems", "Timesheets", "Invoices"}


def test_base_url_path_prefix_is_respected() -> None:
    base = httpx.URL("http://localhost:8000/karbon")
    assert_allowed("GET", httpx.URL("http://localhost:8000/karbon/v3/Users"), base)
    with pytest.raises(ReadOnlyViolation):
        assert_allowed("GET", httpx.URL("http://localhost:8000/v3/Users"), base)


@pytest.mark.parametrize("stream", STREAMS, ids=lambda stream: stream.name)
def test_every_stream_reads_a_resource_on_the_reviewed_allow_list(stream: Stream) -> None:
    assert stream.resource in RESOURCES
