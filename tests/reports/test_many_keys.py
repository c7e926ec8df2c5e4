"""A large change set: every list of keys a refresh or a report sends to the database goes as
one array, so more keys than a statement's 32,767 bind parameters still work."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.reports import changes, completeness, kept_sums, repository
from app.reports.repository import FactFilter
from app.reports.schemas import GroupBy

MORE_THAN_PARAMETERS = 40_000


def _keys(prefix: str) -> frozenset[str]:
    return frozenset(f"{prefix}-{n}" for n in range(MORE_THAN_PARAMETERS))


async def test_refresh_and_report_statements_take_any_number_of_keys(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant_id = uuid.uuid4()  # no rows: each statement must run, and finds nothing
    work_items, entries, invoices = _keys("wi"), _keys("te"), _keys("inv")
    async with sessions() as session:
        assert await changes._clients_before(session, tenant_id, work_items, entries) == set()
        assert (
            await changes._clients_now(session, tenant_id, work_items, entries, invoices) == set()
        )
        assert await changes._invoices_naming(session, tenant_id, work_items) == frozenset()
        found = await session.scalars(completeness._clients_of_records(tenant_id, sorted(entries)))
        assert list(found) == []
        assert await kept_sums.staff_of_clients(session, tenant_id, work_items) == set()
        await kept_sums.clear_clients(session, tenant_id, work_items, ["missing_capacity"])
        assert await repository.client_names(session, tenant_id, sorted(work_items)) == {}
        assert await repository.work_item_titles(session, tenant_id, sorted(work_items)) == {}
        assert await repository.staff_names(session, tenant_id, sorted(work_items)) == {}
        where = FactFilter(clients=work_items)
        assert await repository.sum_facts(session, tenant_id, where, GroupBy.CLIENT) == []
        await session.rollback()
