"""One pass over a tenant's records: everything the report layer stores after a sync."""

from dataclasses import dataclass
from datetime import date

from app.domain.attribution import Directory
from app.domain.facts import Fact, build_facts
from app.domain.settings import CostSettings
from app.domain.values import TenantRecords
from app.domain.warnings import DataWarning, collect_warnings
from app.domain.wip import FixedFeePosition, WipItem, build_wip, fixed_fee_positions


@dataclass(frozen=True, slots=True)
class Evaluation:
    as_of: date
    facts: tuple[Fact, ...]
    wip: tuple[WipItem, ...]
    fixed_fees: tuple[FixedFeePosition, ...]
    warnings: tuple[DataWarning, ...]


def evaluate(records: TenantRecords, settings: CostSettings, as_of: date) -> Evaluation:
    """``as_of`` is the last completed sync: WIP and its age are measured at that date."""
    directory = Directory(records)
    facts = build_facts(directory, settings)
    return Evaluation(
        as_of=as_of,
        facts=tuple(facts),
        wip=tuple(build_wip(directory, as_of)),
        fixed_fees=tuple(fixed_fee_positions(directory)),
        warnings=tuple(collect_warnings(directory, facts)),
    )
