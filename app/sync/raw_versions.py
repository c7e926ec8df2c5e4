"""Raw Karbon responses, each distinct body kept once per request or record.

A response whose body equals the last version kept for the same request (kind and URL) is not
stored again: that version notes it was read again. Hashes are taken by PostgreSQL, of the
body as it prints a `jsonb`, so equal bodies match however Karbon spaced or ordered them.

A list page's records are kept one by one (kind `record`, URL `<stream>/<key>`), each once per
distinct content, and then the page as Karbon sent it with each record replaced by the id of
that record's kept version. So a record that changed adds its own JSON and a page of ids, not
the page's other records again; the page reads back exactly by putting each version in its
place (until retention prunes a superseded version).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import json_text
from app.sync.karbon.client import KarbonResponse

_SAVE_VERSIONS = text(
    """
WITH incoming AS (
    SELECT DISTINCT ON (request_sha256, body_sha256) *
    FROM (
        SELECT r.*,
            sha256(convert_to(r.kind || ' ' || r.url, 'UTF8')) AS request_sha256,
            sha256(convert_to(coalesce(r.body::text, ''), 'UTF8')) AS body_sha256
        FROM (
            SELECT r.ord, r.stream, r.kind, r.url, r.status, r.fetched_at,
                CASE WHEN r.key_field IS NULL THEN r.body
                ELSE jsonb_set(r.body, '{value}', (
                    SELECT coalesce(jsonb_agg((
                        SELECT max(version.id) FROM raw_responses AS version
                        WHERE version.tenant_id = :tenant
                          AND version.request_sha256 = sha256(convert_to(
                              'record ' || r.stream || '/' || (record ->> r.key_field), 'UTF8'
                          ))
                    ) ORDER BY position), '[]'::jsonb)
                    FROM jsonb_array_elements(r.body -> 'value') WITH ORDINALITY
                        AS listed(record, position)
                )) END AS body
            FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
                ord integer, stream text, kind text, url text, status integer,
                fetched_at timestamptz, body jsonb, key_field text
            )
        ) AS r
    ) AS hashed
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
        fetch_count = kept.fetch_count + 1
    FROM latest AS l
    JOIN incoming AS i
      ON i.request_sha256 = l.request_sha256 AND i.body_sha256 = l.body_sha256
    WHERE kept.id = l.id
    RETURNING kept.id
)
INSERT INTO raw_responses (
    tenant_id, run_id, stream, kind, url, status, fetched_at, last_fetched_at, fetch_count,
    request_sha256, body_sha256, body
)
SELECT :tenant, :run, i.stream, i.kind, i.url, i.status, i.fetched_at, i.fetched_at, 1,
    i.request_sha256, i.body_sha256, i.body
FROM incoming AS i
WHERE NOT EXISTS (
    SELECT 1 FROM latest AS l
    WHERE l.request_sha256 = i.request_sha256 AND l.body_sha256 = i.body_sha256
)
ORDER BY i.ord
"""
)


async def save_versions(
    session: AsyncSession,
    tenant_id: UUID,
    run_id: UUID | None,
    stream: str,
    responses: Sequence[tuple[str, KarbonResponse]],
    key_field: str | None = None,
) -> None:
    """Keep each response (with its kind, `page` or `detail`) unless its request's last kept
    version has the same body; with `key_field`, a page's records are kept one by one."""
    if not responses:
        return
    rows: list[dict[str, Any]] = []
    for kind, response in responses:
        row = {
            "stream": stream,
            "kind": kind,
            "url": response.url,
            "status": response.status,
            "fetched_at": response.fetched_at,
            "body": response.body_json,
            "key_field": None,
        }
        records = _listed_records(response.body_json, key_field) if kind == "page" else None
        if records is not None and key_field is not None:
            rows.extend(
                {**row, "kind": "record", "url": f"{stream}/{record[key_field]}", "body": record}
                for record in records
            )
            row["key_field"] = key_field
        rows.append(row)
    # Records first: a page refers to its records' kept versions.
    records = [row for row in rows if row["kind"] == "record"]
    for batch in (records, [row for row in rows if row["kind"] != "record"]):
        if batch:
            await session.execute(
                _SAVE_VERSIONS,
                {"tenant": tenant_id, "run": run_id, "rows": json_text(_numbered(batch))},
            )


def _numbered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "ord": position} for position, row in enumerate(rows)]


def _listed_records(body: Any, key_field: str | None) -> list[dict[str, Any]] | None:
    """A list page's records when every one carries its key, else None (kept whole)."""
    if key_field is None or not isinstance(body, dict):
        return None
    records = body.get("value")
    if not isinstance(records, list):
        return None
    if not all(isinstance(r, dict) and isinstance(r.get(key_field), str) for r in records):
        return None
    return records


_PRUNE_BATCH = text(
    """
WITH doomed AS (
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
        OR EXISTS (
            SELECT 1 FROM sync_runs AS complete
            WHERE complete.tenant_id = r.tenant_id
              AND complete.state = 'succeeded'
              AND complete.kind IN ('initial', 'full')
              AND complete.started_at > r.last_fetched_at
        )
      )
      AND NOT EXISTS (
        SELECT 1 FROM sync_runs AS active
        WHERE active.tenant_id = r.tenant_id AND active.state IN ('queued', 'running')
      )
    ORDER BY r.last_fetched_at
    LIMIT :batch
    FOR UPDATE OF r SKIP LOCKED
),
pruned AS (
    DELETE FROM raw_responses AS r USING doomed
    WHERE r.id = doomed.id
    RETURNING r.tenant_id, coalesce(pg_column_size(r.body), 0) AS bytes
)
SELECT tenant_id, count(*) AS rows, sum(bytes) AS bytes FROM pruned GROUP BY tenant_id
"""
)
"""One batch of superseded versions last read before `cutoff`: a newer version of the same
request exists, or a later complete run re-read every record (so the normalized rows hold
newer JSON of all it carried). Firms syncing now are left for the next batch, and rows
another transaction holds are skipped, so a prune never waits on a sync nor a sync on it."""


@dataclass(frozen=True)
class Pruned:
    tenant_id: UUID
    rows: int
    bytes: int


async def prune_superseded(
    session: AsyncSession, *, cutoff: datetime, batch_size: int
) -> list[Pruned]:
    """Delete one batch of superseded versions; what was pruned, per firm."""
    result = await session.execute(_PRUNE_BATCH, {"cutoff": cutoff, "batch": batch_size})
    return [Pruned(row.tenant_id, int(row.rows), int(row.bytes)) for row in result]
