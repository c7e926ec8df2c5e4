"""In-memory reference aggregation of facts: a filter and a grouping key, summing measures.

This is the specification the SQL reports are checked against: ``SUM`` of every measure
``GROUP BY`` the same key over the same rows must give the same ``Measures``.
"""

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import date
from typing import TypeVar

from app.domain.attribution import Directory
from app.domain.facts import Fact
from app.domain.figures import Measures
from app.domain.values import Client

K = TypeVar("K", bound=Hashable)
FactFilter = Callable[[Fact], bool]


def aggregate(
    facts: Iterable[Fact], key: Callable[[Fact], K], where: FactFilter | None = None
) -> dict[K, Measures]:
    groups: dict[K, Measures] = defaultdict(Measures)
    for fact in facts:
        if where is None or where(fact):
            group = key(fact)
            groups[group] = groups[group] + fact.measures
    return dict(groups)


def firm_total(facts: Iterable[Fact], where: FactFilter | None = None) -> Measures:
    return aggregate(facts, lambda _: None, where).get(None, Measures())


def in_window(start: date, end: date) -> FactFilter:
    """Rule 11: facts dated within ``[start, end]``, both inclusive."""
    return lambda fact: start <= fact.fact_date <= end


def by_client(fact: Fact) -> str | None:
    return fact.client_key


def by_work_item(fact: Fact) -> str | None:
    return fact.work_item_key


def by_staff(fact: Fact) -> str | None:
    return fact.staff_key


def by_fee_type(fact: Fact) -> str | None:
    return fact.fee_type


def by_work_type(fact: Fact) -> str | None:
    return fact.work_type


def by_month(fact: Fact) -> date:
    return fact.fact_date.replace(day=1)


def by_owner(directory: Directory) -> Callable[[Fact], str | None]:
    return _by_client_attribute(directory, lambda client: client.owner_email)


def by_manager(directory: Directory) -> Callable[[Fact], str | None]:
    return _by_client_attribute(directory, lambda client: client.manager_email)


def _by_client_attribute(
    directory: Directory, attribute: Callable[[Client], str | None]
) -> Callable[[Fact], str | None]:
    clients: Mapping[str, Client] = directory.clients

    def key(fact: Fact) -> str | None:
        client = clients.get(fact.client_key) if fact.client_key else None
        return attribute(client) if client is not None else None

    return key
