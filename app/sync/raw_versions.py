"""Raw Karbon responses, each distinct piece kept once per request or record.

A response is kept in pieces, each a version of its own request, and each stored only when it
differs from the last version kept for that request (otherwise that version notes it was read
again). Hashes are taken by PostgreSQL, of the body as it prints a `jsonb`, so equal bodies
match however Karbon spaced or ordered them.

- A list page's records are kept one by one (kind `record`, URL `<stream>/<key>`), and the page
  as Karbon sent it with its records replaced by the ids of their kept versions, written as
  runs of consecutive ids (`id_runs`).
- A detail is kept as what it adds to or changes in its record's latest listed version
  (`{"@base": id, "@set": {...}, "@unset": [...]}`), so a record's JSON is not kept twice.
- A record or page that changed is kept the same way, as changes to its own last version, a
  list of objects in both as a splice (`"@splice": {"TimeEntries": [[first, count], [new
  item]]}`): a timesheet with one entry added keeps that entry, not its week again; a page
  keeps where its ids changed (`"@ids": {"value": [[first, count], [new id]]}` over the ids its
  runs stand for) or its new runs, whichever is shorter, not every run again. Its hash is of
  its whole content, so reading it again matches. It is kept whole when the changes are not
  much smaller, or when `MAX_CHAIN` versions lead down to a whole one.

Each version kept as changes names its base (`base_id`, a foreign key). `read_version` puts
the pieces back together: a version reads back exactly as Karbon sent it (as JSON; the order
of an object's keys is not kept). The prune rewrites a kept version whole before deleting
the version it is made of, so every kept version stays readable.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import json_text
from app.models import RawResponse
from app.sync.karbon.client import KarbonResponse

BASE, SET, UNSET, SPLICE, IDS = "@base", "@set", "@unset", "@splice", "@ids"
"""A version kept as changes to another (no Karbon field starts with @)."""

_SAVE_VERSIONS = text(
    """
WITH hashed AS (
    SELECT r.*,
        sha256(convert_to(r.kind || ' ' || r.url, 'UTF8')) AS request_sha256,
        coalesce(
            decode(r.content_sha256, 'hex'),
            sha256(convert_to(coalesce(r.body::text, ''), 'UTF8'))
        ) AS body_sha256
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        ord integer, stream text, kind text, url text, status integer,
        fetched_at timestamptz, body jsonb, base_id bigint, content_sha256 text,
        response_sha256 text
    )
),
incoming AS (
    SELECT DISTINCT ON (request_sha256, body_sha256) *
    FROM hashed
    ORDER BY request_sha256, body_sha256, ord DESC
),
latest AS (
    SELECT DISTINCT ON (kept.request_sha256) kept.id, kept.request_sha256, kept.body_sha256
    FROM raw_responses AS kept
    WHERE kept.tenant_id = :tenant
      AND kept.request_sha256 IN (SELECT request_sha256 FROM incoming)
    ORDER BY kept.request_sha256, kept.id DESC
),
read_again AS (
    UPDATE raw_responses AS kept
    SET last_fetched_at = greatest(kept.last_fetched_at, i.fetched_at),
        fetch_count = kept.fetch_count + 1,
        response_sha256 = coalesce(decode(i.response_sha256, 'hex'), kept.response_sha256)
    FROM latest AS l
    JOIN incoming AS i
      ON i.request_sha256 = l.request_sha256 AND i.body_sha256 = l.body_sha256
    WHERE kept.id = l.id
    RETURNING kept.id, kept.request_sha256, kept.body_sha256
),
bases_read AS (
    UPDATE raw_responses AS base
    SET last_fetched_at = greatest(base.last_fetched_at, i.fetched_at)
    FROM (
        SELECT base_id, max(fetched_at) AS fetched_at
        FROM incoming WHERE kind = 'detail' AND base_id IS NOT NULL GROUP BY 1
    ) AS i
    WHERE base.id = i.base_id AND base.tenant_id = :tenant
),
changed AS (
    SELECT i.request_sha256, i.body_sha256, l.id AS latest_id
    FROM incoming AS i
    JOIN latest AS l ON l.request_sha256 = i.request_sha256 AND l.body_sha256 <> i.body_sha256
    WHERE CAST(:defer_changed AS boolean) AND i.kind IN ('record', 'page')
),
inserted AS (
    INSERT INTO raw_responses (
        tenant_id, run_id, stream, kind, url, status, fetched_at, last_fetched_at, fetch_count,
        request_sha256, body_sha256, body, base_id, response_sha256
    )
    SELECT :tenant, :run, i.stream, i.kind, i.url, i.status, i.fetched_at, i.fetched_at, 1,
        i.request_sha256, i.body_sha256, i.body, i.base_id, decode(i.response_sha256, 'hex')
    FROM incoming AS i
    WHERE NOT EXISTS (
        SELECT 1 FROM latest AS l
        WHERE l.request_sha256 = i.request_sha256 AND l.body_sha256 = i.body_sha256
    )
      AND NOT EXISTS (
        SELECT 1 FROM changed AS c
        WHERE c.request_sha256 = i.request_sha256 AND c.body_sha256 = i.body_sha256
    )
    ORDER BY i.ord
    RETURNING id, request_sha256, body_sha256
)
SELECT h.ord, v.id, NULL::bigint AS latest_id, NULL AS content_sha256
FROM hashed AS h
JOIN (SELECT * FROM read_again UNION ALL SELECT * FROM inserted) AS v
  ON v.request_sha256 = h.request_sha256 AND v.body_sha256 = h.body_sha256
UNION ALL
SELECT h.ord, NULL, c.latest_id, encode(h.body_sha256, 'hex')
FROM hashed AS h
JOIN changed AS c ON c.request_sha256 = h.request_sha256 AND c.body_sha256 = h.body_sha256
"""
)
"""Keeps each row unless its request's last version has the same body; each row's version id.
A row's `content_sha256`, when given, is the hash of what it stands for (a version kept as
changes is addressed by its whole content). With `defer_changed`, a row whose request has a
different last version is not kept but returned with that version's id (`latest_id`) and its
hash, to be kept as changes to it. A detail kept as changes to a version reads that version
too, so retention keeps that version for as long as the detail is read."""

_CHAINS = text(
    """
WITH RECURSIVE chain AS (
    SELECT id, kind, base_id, body FROM raw_responses WHERE id = ANY(:ids)
    UNION
    SELECT kept.id, kept.kind, kept.base_id, kept.body
    FROM raw_responses AS kept JOIN chain ON kept.id = chain.base_id
)
SELECT id, kind, body FROM chain
"""
)
"""The versions asked for and every version each is kept as changes to, down to a whole one."""

MAX_CHAIN = 16
"""A record's version is kept whole, not as changes, once this many versions lead down to a
whole one: reading any version back reads at most this many rows."""
DELTA_AT_MOST = 0.5
"""A version is kept as changes only when they take at most this share of its whole JSON
(PostgreSQL compresses a large whole value, not the small changes)."""


@dataclass(eq=False)
class _Version:
    """One piece of a response on its way to storage."""

    stream: str
    kind: str
    url: str
    response: KarbonResponse
    body: Any
    listed: list["_Version"] | None = None
    """A page's records: its `value` gets their version ids once they are kept."""
    base: bytes | None = None
    """A detail's record: the request whose latest version it is kept as changes to."""
    base_id: int | None = None
    content_sha256: str | None = None
    """The hash of the whole content, when `body` holds changes to `base_id` instead."""
    id: int | None = None

    def row(self, ord: int) -> dict[str, Any]:
        return {
            "ord": ord,
            "stream": self.stream,
            "kind": self.kind,
            "url": self.url,
            "status": self.response.status,
            "fetched_at": self.response.fetched_at,
            "body": self.body,
            "base_id": self.base_id,
            "content_sha256": self.content_sha256,
            "response_sha256": None if self.kind == "record" else _hex(self.response),
        }


def _hex(response: KarbonResponse) -> str | None:
    return None if response.content_sha256 is None else response.content_sha256.hex()


@dataclass
class _Pieces:
    """A call's versions by level: each level refers only to versions of the levels before."""

    records: list[_Version] = field(default_factory=list)
    responses: list[_Version] = field(default_factory=list)


async def save_versions(
    session: AsyncSession,
    tenant_id: UUID,
    run_id: UUID | None,
    stream: str,
    responses: Sequence[tuple[str, KarbonResponse]],
    key_field: str | None = None,
) -> None:
    """Keep each response (with its kind, `page` or `detail`) in pieces, each unless its
    request's last kept version has the same body; `key_field` names a record's key. A record
    or page that changed is kept as what changed since its last version."""
    pieces = _Pieces()
    for kind, response in responses:
        pieces.responses.append(_response(pieces, stream, kind, response, key_field))
    for level in (pieces.records, pieces.responses):
        for version in level:
            if version.listed is not None:  # a page: its records are kept by now
                version.body["value"] = id_runs([record.id for record in version.listed])
        await _as_changes_to_bases(session, tenant_id, level)
        changed = await _save(session, tenant_id, run_id, level, defer_changed=True)
        if changed:
            await _as_changes_to_last_versions(session, changed)
            await _save(session, tenant_id, run_id, [version for version, _ in changed])


_LATEST = text(
    """
SELECT DISTINCT ON (request_sha256) request_sha256, id, response_sha256, base_id
FROM raw_responses
WHERE tenant_id = :tenant AND request_sha256 = ANY(:requests)
ORDER BY request_sha256, id DESC
"""
)

_STILL_LATEST = text(
    """
SELECT kept.id FROM raw_responses AS kept
WHERE kept.id = ANY(:ids) AND NOT EXISTS (
    SELECT 1 FROM raw_responses AS newer
    WHERE newer.tenant_id = kept.tenant_id
      AND newer.request_sha256 = kept.request_sha256
      AND newer.id > kept.id
)
"""
)
"""Of the versions asked for, those still the last of their request."""

_READ_AGAIN = text(
    """
UPDATE raw_responses AS kept
SET last_fetched_at = greatest(kept.last_fetched_at, r.fetched_at),
    fetch_count = kept.fetch_count + r.reads
FROM (
    SELECT id, max(fetched_at) AS fetched_at, max(reads) AS reads
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS x(id bigint, fetched_at timestamptz, reads integer)
    GROUP BY id
) AS r
WHERE kept.id = r.id AND kept.tenant_id = :tenant
"""
)
"""Versions read again, in one statement: as `_SAVE_VERSIONS` notes a body it already holds
(`reads` 1), and a detail's base (`reads` 0: read, not fetched)."""


async def read_again_unchanged(
    session: AsyncSession,
    tenant_id: UUID,
    stream: str,
    kind: str,
    responses: Sequence[KarbonResponse],
    key_field: str | None = None,
) -> list[bool]:
    """Which `responses` (of one `kind`, `page` or `detail`) are the bytes of the last version
    kept for their request, made of versions that are still the last of their own records:
    `save_versions` would keep nothing new for them. Those are only noted read again (the
    same `last_fetched_at` and `fetch_count` as `save_versions` gives them); the others are
    left to `save_versions`."""
    bases = {
        index: request_sha256("record", f"{stream}/{key}")
        for index, response in enumerate(responses)
        if kind == "detail" and (key := _key(response.body_json, key_field)) is not None
    }
    requests = [request_sha256(kind, response.url) for response in responses]
    latest = await _latest(session, tenant_id, [*requests, *bases.values()])
    same = {
        index: latest[request]
        for index, (request, response) in enumerate(zip(requests, responses, strict=True))
        if request in latest
        and response.content_sha256 is not None
        and latest[request].response_sha256 == response.content_sha256
    }
    reads: dict[int, list[tuple[int, int]]] = {}
    if kind == "page":
        reads = await _pages_read(session, {index: int(row.id) for index, row in same.items()})
    else:
        for index, row in same.items():
            base = latest.get(bases[index]) if index in bases else None
            if (None if base is None else int(base.id)) == row.base_id:
                reads[index] = [(int(row.id), 1)] + ([] if base is None else [(int(base.id), 0)])
    rows = [
        {"id": version_id, "fetched_at": responses[index].fetched_at, "reads": count}
        for index, versions in reads.items()
        for version_id, count in versions
    ]
    if rows:
        await session.execute(_READ_AGAIN, {"tenant": tenant_id, "rows": json_text(rows)})
    return [index in reads for index in range(len(responses))]


async def _latest(
    session: AsyncSession, tenant_id: UUID, requests: list[bytes]
) -> dict[bytes, Any]:
    rows = await session.execute(_LATEST, {"tenant": tenant_id, "requests": requests})
    return {bytes(row.request_sha256): row for row in rows}


async def _pages_read(
    session: AsyncSession, pages: dict[int, int]
) -> dict[int, list[tuple[int, int]]]:
    """Each page whose listed record versions are all still the last of their records, with
    the versions it is read as: itself and those records."""
    try:
        kept = await whole_versions(session, pages.values())
    except PrunedVersionError:
        return {}
    listed = {index: listed_ids(kept[page_id][0]) or [] for index, page_id in pages.items()}
    asked = sorted({version_id for ids in listed.values() for version_id in ids})
    latest = (
        set((await session.execute(_STILL_LATEST, {"ids": asked})).scalars()) if asked else set()
    )
    return {
        index: [(pages[index], 1)] + [(version_id, 1) for version_id in ids]
        for index, ids in listed.items()
        if latest.issuperset(ids)
    }


def _key(body: Any, key_field: str | None) -> str | None:
    key = body.get(key_field) if key_field is not None and _is_object(body) else None
    return key if isinstance(key, str) else None


def request_sha256(kind: str, url: str) -> bytes:
    """A request's identity, as PostgreSQL computes it when saving."""
    return hashlib.sha256(f"{kind} {url}".encode()).digest()


def _response(
    pieces: _Pieces, stream: str, kind: str, response: KarbonResponse, key_field: str | None
) -> _Version:
    body = response.body_json
    version = _Version(stream, kind, response.url, response, body)
    records = _keyed(body.get("value"), key_field) if kind == "page" and _is_object(body) else None
    if records is not None and key_field is not None:
        version.body = dict(body)
        version.listed = [_record(pieces, stream, key_field, r, response) for r in records]
    elif _is_object(body):
        key = body.get(key_field) if key_field is not None and kind == "detail" else None
        if isinstance(key, str):
            version.base = request_sha256("record", f"{stream}/{key}")
    return version


def _record(
    pieces: _Pieces, stream: str, key_field: str, record: dict[str, Any], response: KarbonResponse
) -> _Version:
    version = _Version(stream, "record", f"{stream}/{record[key_field]}", response, record)
    pieces.records.append(version)
    return version


def _keyed(items: Any, key_field: str | None) -> list[dict[str, Any]] | None:
    """A list of records when every one carries its key, else None (kept whole)."""
    if key_field is None or not isinstance(items, list):
        return None
    if not all(isinstance(r, dict) and isinstance(r.get(key_field), str) for r in items):
        return None
    return items


def _is_object(body: Any) -> bool:
    return isinstance(body, dict)


_Changed = list[tuple[_Version, int]]
"""Versions whose request's last kept version differs, with that version's id."""


async def _save(
    session: AsyncSession,
    tenant_id: UUID,
    run_id: UUID | None,
    versions: list[_Version],
    *,
    defer_changed: bool = False,
) -> _Changed:
    """Keep `versions`; with `defer_changed`, those whose request's last version differs are
    not kept but returned, each with the hash of its content set."""
    if not versions:
        return []
    rows = [version.row(ord) for ord, version in enumerate(versions)]
    result = await session.execute(
        _SAVE_VERSIONS,
        {
            "tenant": tenant_id,
            "run": run_id,
            "rows": json_text(rows),
            "defer_changed": defer_changed,
        },
    )
    changed: _Changed = []
    for ord, version_id, latest_id, content_sha256 in result:
        if version_id is not None:
            versions[ord].id = int(version_id)
        else:
            versions[ord].content_sha256 = content_sha256
            changed.append((versions[ord], int(latest_id)))
    return changed


def id_runs(ids: Sequence[int | None]) -> list[list[int]]:
    """Version ids as runs of consecutive ids, `[first, count]`: a page's records are saved in
    order, so a page re-read with one record changed or one more on top is two or three runs,
    not a hundred ids again."""
    runs: list[list[int]] = []
    for version_id in ids:
        assert version_id is not None, "a record is kept before its page"
        if runs and runs[-1][0] + runs[-1][1] == version_id:
            runs[-1][1] += 1
        else:
            runs.append([version_id, 1])
    return runs


def listed_ids(page: Any) -> list[int] | None:
    """The version ids a kept page lists (as runs, or one by one as pages were once kept);
    None when the page was kept whole."""
    listed = page.get("value") if _is_object(page) else None
    ids = _ids_of_runs(listed)
    if ids is None and isinstance(listed, list) and all(isinstance(i, int) for i in listed):
        return listed
    return ids


def _ids_of_runs(runs: Any) -> list[int] | None:
    """The ids that `id_runs` made `runs` of; None when `runs` is not such runs."""
    if not isinstance(runs, list):
        return None
    if not all(isinstance(run, list) and len(run) == 2 for run in runs):
        return None
    return [first + n for first, count in runs for n in range(count)]


async def _as_changes_to_last_versions(session: AsyncSession, changed: _Changed) -> None:
    """Each changed record becomes what it changes in its last kept version, unless that
    chain is long already or the changes are not much smaller than the record."""
    kept = await whole_versions(session, {latest_id for _, latest_id in changed})
    for version, latest_id in changed:
        base, depth = kept[latest_id]
        if depth + 1 < MAX_CHAIN and _is_object(version.body) and _is_object(base):
            ids_of = "value" if version.kind == "page" else None
            delta = changes(version.body, latest_id, base, ids_of=ids_of)
            if len(canonical_json(delta)) <= DELTA_AT_MOST * len(canonical_json(version.body)):
                version.body, version.base_id = delta, latest_id


async def _as_changes_to_bases(
    session: AsyncSession, tenant_id: UUID, versions: list[_Version]
) -> None:
    """Each detail whose record has a kept version becomes what it changes in that version."""
    details = [version for version in versions if version.base is not None]
    if not details:
        return
    requests = list({version.base for version in details})
    rows = await session.execute(_LATEST, {"tenant": tenant_id, "requests": requests})
    latest = {bytes(row.request_sha256): int(row.id) for row in rows}
    kept = await whole_versions(session, set(latest.values()))
    for version in details:
        base_id = latest.get(version.base) if version.base is not None else None
        if base_id is not None and _is_object(kept[base_id][0]):
            version.body = changes(version.body, base_id, kept[base_id][0])
            version.base_id = base_id


def changes(
    body: dict[str, Any], base_id: int, base: dict[str, Any], *, ids_of: str | None = None
) -> dict[str, Any]:
    """`body` as what it sets and removes in the version `base_id` (whose body is `base`); a
    list of objects in both is kept as a splice of the base's items and new ones, and the id
    runs of `ids_of` (a page's) as a splice of the ids they stand for when that is shorter."""
    delta: dict[str, Any] = {BASE: base_id, SET: {}, UNSET: [n for n in base if n not in body]}
    spliced: dict[str, list[list[Any]]] = {}
    for name, value in body.items():
        if _same(base, name, value):
            continue
        ids = _id_splice(base.get(name), value) if name == ids_of else None
        if ids is not None and len(canonical_json(ids)) < len(canonical_json(value)):
            delta[IDS] = {name: ids}  # else a block of new ids: its runs are shorter
        elif (splice := _splice(base.get(name), value)) is not None:
            spliced[name] = splice
        else:
            delta[SET][name] = value
    if spliced:
        delta[SPLICE] = spliced
    return delta


def _splice(old: Any, new: Any) -> list[list[Any]] | None:
    """`new` as runs of `old`'s items (`[first, count]`) and new items (`[item]`), when both are
    lists of objects and some items are the same; else None."""
    if not (_objects(old) and _objects(new)):
        return None
    return _spliced_by_key([canonical_json(item) for item in old], new, canonical_json)


def _id_splice(old: Any, new: Any) -> list[list[Any]] | None:
    """`new` id runs as a splice of the ids `old`'s runs stand for and new ids; None unless
    both are id runs."""
    old_ids, new_ids = _ids_of_runs(old), _ids_of_runs(new)
    if old_ids is None or new_ids is None:
        return None
    return _spliced_by_key(old_ids, new_ids, lambda version_id: version_id)


Item = TypeVar("Item")
Key = TypeVar("Key")


def _spliced_by_key(
    old_keys: list[Key], new: list[Item], key_of: Callable[[Item], Key]
) -> list[list[Any]] | None:
    """`new` as runs of old items (`[first, count]`, by position in `old_keys`) and new items
    (`[item]`); None when no item is an old one."""
    first_at: dict[Key, int] = {}
    for position, key in enumerate(old_keys):
        first_at.setdefault(key, position)
    splice: list[list[Any]] = []
    for item in new:
        key = key_of(item)
        last = splice[-1] if splice else None
        if last is not None and len(last) == 2 and _continues(old_keys, last, key):
            last[1] += 1
        elif key in first_at:
            splice.append([first_at[key], 1])
        else:
            splice.append([item])
    return splice if any(len(part) == 2 for part in splice) else None


def _objects(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _continues(old_keys: list[Key], run: list[Any], key: Key) -> bool:
    following = int(run[0]) + int(run[1])
    return following < len(old_keys) and old_keys[following] == key


def apply_changes(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """The whole body a version kept as `delta` stands for, given its base's whole body."""
    unset = set(delta[UNSET])
    body: dict[str, Any] = {n: v for n, v in base.items() if n not in unset} | delta[SET]
    for name, splice in delta.get(SPLICE, {}).items():
        body[name] = _apply_splice(base[name], splice)
    for name, splice in delta.get(IDS, {}).items():
        ids = _ids_of_runs(base[name])
        if ids is None:
            raise ValueError(f"{name!r} of the base version is not id runs")
        body[name] = id_runs(_apply_splice(ids, splice))
    return body


def _apply_splice(old: list[Any], splice: list[list[Any]]) -> list[Any]:
    return [
        item
        for part in splice
        for item in (old[part[0] : part[0] + part[1]] if len(part) == 2 else part)
    ]


def _same(base: dict[str, Any], name: str, value: Any) -> bool:
    return name in base and canonical_json(base[name]) == canonical_json(value)


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys: `true` and `1`, or `1` and `1.0`, stay different."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        return json.dumps(value, sort_keys=True).encode()


class PrunedVersionError(LookupError):
    """A version, or a piece of it, is no longer kept."""


async def whole_versions(session: AsyncSession, ids: Iterable[int]) -> dict[int, tuple[Any, int]]:
    """Each version's whole body (changes applied to the versions they are made of), and how
    many versions kept as changes lead down from it to a whole one."""
    asked = list(ids)
    if not asked:
        return {}
    stored = {int(row.id): row.body for row in await session.execute(_CHAINS, {"ids": asked})}
    whole: dict[int, tuple[Any, int]] = {}

    def resolve(version_id: int) -> tuple[Any, int]:
        pending: list[int] = []
        at = version_id
        while at not in whole:
            if at not in stored:
                raise PrunedVersionError(f"raw version {at} was pruned")
            body = stored[at]
            if not (_is_object(body) and BASE in body):
                whole[at] = (body, 0)
                break
            pending.append(at)
            at = int(body[BASE])
        for delta_id in reversed(pending):
            base, depth = whole[int(stored[delta_id][BASE])]
            whole[delta_id] = (apply_changes(base, stored[delta_id]), depth + 1)
        return whole[version_id]

    return {version_id: resolve(version_id) for version_id in asked}


async def read_version(session: AsyncSession, version_id: int) -> Any:
    """A kept version's body as Karbon sent it, its pieces put back in place."""
    kind = await _kind(session, version_id)
    body = (await whole_versions(session, [version_id]))[version_id][0]
    ids = listed_ids(body) if kind == "page" else None
    if ids is not None:
        records = await whole_versions(session, ids)
        body = {**body, "value": [records[i][0] for i in ids]}
    return body


async def _kind(session: AsyncSession, version_id: int) -> str:
    query = select(RawResponse.kind).where(RawResponse.id == version_id)
    kind = (await session.execute(query)).scalar_one_or_none()
    if kind is None:
        raise PrunedVersionError(f"raw version {version_id} was pruned")
    return str(kind)


_DOOMED = text(
    """
SELECT r.id
FROM raw_responses AS r
WHERE r.last_fetched_at < :cutoff
  AND (
    EXISTS (
        SELECT 1 FROM raw_responses AS newer
        WHERE newer.tenant_id = r.tenant_id
          AND newer.request_sha256 = r.request_sha256
          AND newer.id > r.id
    )
    OR (r.kind IN ('page', 'record') AND EXISTS (
        SELECT 1 FROM sync_runs AS complete
        WHERE complete.tenant_id = r.tenant_id
          AND complete.state = 'succeeded'
          AND complete.kind IN ('initial', 'full')
          AND complete.started_at > r.last_fetched_at
    ))
  )
  AND NOT EXISTS (
    SELECT 1 FROM sync_runs AS active
    WHERE active.tenant_id = r.tenant_id AND active.state IN ('queued', 'running')
  )
ORDER BY r.last_fetched_at
LIMIT :batch
FOR UPDATE OF r SKIP LOCKED
"""
)
"""One batch of superseded versions last read before `cutoff`: a newer version of the same
request exists, or, for a list page or record, a later complete run read every list without
it (so the record changed or is gone). A detail is superseded only by a newer detail: a
nightly re-reads a share of them, not all. Firms syncing now are left for the next batch, and
rows another transaction holds are skipped, so a prune does not wait on a sync (but for a kept
version made of a doomed one, locked to be rewritten, which a sync begun since may hold)."""

_BASED_ON = text(
    """
SELECT id FROM raw_responses
WHERE base_id = ANY(:doomed) AND NOT (id = ANY(:doomed))
ORDER BY id
FOR UPDATE
"""
)
"""The kept versions made of a doomed one: each is rewritten whole before its base goes."""

_MADE_WHOLE = text(
    """
UPDATE raw_responses AS kept SET body = whole.body, base_id = NULL
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS whole(id bigint, body jsonb)
WHERE kept.id = whole.id
"""
)

_DELETE = text(
    """
WITH pruned AS (
    DELETE FROM raw_responses AS r WHERE r.id = ANY(:doomed)
    RETURNING r.tenant_id, coalesce(pg_column_size(r.body), 0) AS bytes
)
SELECT tenant_id, count(*) AS rows, sum(bytes) AS bytes FROM pruned GROUP BY tenant_id
"""
)


@dataclass(frozen=True)
class Pruned:
    tenant_id: UUID
    rows: int
    bytes: int


async def prune_superseded(
    session: AsyncSession, *, cutoff: datetime, batch_size: int
) -> list[Pruned]:
    """Delete one batch of superseded versions; what was pruned, per firm. A kept version
    made of a pruned one is first rewritten whole, so every kept version stays readable."""
    doomed = list(
        (await session.execute(_DOOMED, {"cutoff": cutoff, "batch": batch_size})).scalars()
    )
    if not doomed:
        return []
    dependents = list((await session.execute(_BASED_ON, {"doomed": doomed})).scalars())
    if dependents:
        whole = await whole_versions(session, dependents)
        rows = [{"id": version_id, "body": whole[version_id][0]} for version_id in dependents]
        await session.execute(_MADE_WHOLE, {"rows": json_text(rows)})
    result = await session.execute(_DELETE, {"doomed": doomed})
    return [Pruned(row.tenant_id, int(row.rows), int(row.bytes)) for row in result]
