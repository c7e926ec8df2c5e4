"""Cost assumptions as the domain sees them, and changes that schedule a report refresh."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.costs import repository
from app.costs.schemas import (
    CompensationBody,
    CompensationView,
    CostSettingsBody,
    CostSettingsView,
    StaffCostView,
    StaffView,
)
from app.domain import Capacity, StaffMember, capacity_of, hourly_cost, recognition_policy
from app.domain import CompensationPeriod as DomainCompensationPeriod
from app.domain import CostSettings as DomainCostSettings
from app.kit.presentation import exact_ratio, hours, money, two_places
from app.models import CompensationPeriod, CostSettings, Staff

DEFAULTS = DomainCostSettings()


def to_domain_settings(stored: CostSettings | None) -> DomainCostSettings:
    if stored is None:
        return DEFAULTS
    return DomainCostSettings(
        overhead_rate=stored.overhead_rate,
        working_weeks_per_year=stored.working_weeks_per_year,
        default_capacity_hours_per_week=stored.default_capacity_hours_per_week,
        recognition=recognition_policy(stored.recognition_policy),
    )


def to_domain_periods(
    periods: Sequence[CompensationPeriod],
) -> tuple[DomainCompensationPeriod, ...]:
    return tuple(
        DomainCompensationPeriod(p.staff_key, p.effective_from, p.annual_amount) for p in periods
    )


async def domain_settings(session: AsyncSession, tenant_id: UUID) -> DomainCostSettings:
    return to_domain_settings(await repository.cost_settings(session, tenant_id))


def settings_view(stored: CostSettings | None) -> CostSettingsView:
    settings = to_domain_settings(stored)
    return CostSettingsView(
        overhead_rate=exact_ratio(settings.overhead_rate),
        working_weeks_per_year=two_places(settings.working_weeks_per_year),
        default_capacity_hours_per_week=two_places(settings.default_capacity_hours_per_week),
        recognition_policy=settings.recognition.name,
        is_default=stored is None,
    )


async def save_settings(
    session: AsyncSession, tenant_id: UUID, body: CostSettingsBody
) -> CostSettings:
    stored = await repository.cost_settings_to_change(session, tenant_id)
    stored.overhead_rate = body.overhead_rate
    stored.working_weeks_per_year = body.working_weeks_per_year
    stored.default_capacity_hours_per_week = body.default_capacity_hours_per_week
    stored.recognition_policy = body.recognition_policy
    stored.updated_at = datetime.now(UTC)
    await session.flush()
    return stored


async def add_compensation(
    session: AsyncSession, tenant_id: UUID, staff_key: str, body: CompensationBody
) -> None:
    period = CompensationPeriod(
        tenant_id=tenant_id,
        staff_key=staff_key,
        effective_from=body.effective_from,
        annual_amount=body.annual_amount,
    )
    await repository.put_compensation_period(session, period)


async def staff_views(
    session: AsyncSession, tenant_id: UUID, members: Sequence[Staff]
) -> list[StaffView]:
    """The members as everyone in the firm sees them: capacity, no pay."""
    settings = await domain_settings(session, tenant_id)
    return [_staff_view(member, settings) for member in members]


async def staff_cost_views(
    session: AsyncSession,
    tenant_id: UUID,
    members: Sequence[Staff],
    currency: str | None,
) -> list[StaffCostView]:
    """The members with their compensation and today's hourly cost: for those who see pay."""
    settings = await domain_settings(session, tenant_id)
    periods = await repository.compensation_periods(
        session, tenant_id, [member.user_key for member in members]
    )
    by_staff: dict[str, list[CompensationPeriod]] = defaultdict(list)
    for period in periods:
        by_staff[period.staff_key].append(period)
    return [
        _staff_cost_view(member, by_staff[member.user_key], settings, currency)
        for member in members
    ]


def _capacity(member: Staff, settings: DomainCostSettings) -> Capacity:
    return capacity_of(
        StaffMember(member.user_key, member.name, member.capacity_minutes_per_week),
        settings.default_capacity_hours_per_week,
    )


def _staff_view(member: Staff, settings: DomainCostSettings) -> StaffView:
    capacity = _capacity(member, settings)
    return StaffView(
        key=member.user_key,
        name=member.name,
        email=member.email,
        capacity_minutes_per_week=member.capacity_minutes_per_week,
        capacity_hours_per_week=hours(capacity.minutes_per_week),
        capacity_defaulted=capacity.defaulted,
    )


def _staff_cost_view(
    member: Staff,
    periods: list[CompensationPeriod],
    settings: DomainCostSettings,
    currency: str | None,
) -> StaffCostView:
    current = _in_force_today(periods)
    cost = None
    if current is not None:
        cost = hourly_cost(
            current.annual_amount,
            settings.overhead_rate,
            _capacity(member, settings).minutes_per_week,
            settings.working_weeks_per_year,
        )
    return StaffCostView(
        **_staff_view(member, settings).model_dump(),
        compensation=[
            CompensationView(
                effective_from=p.effective_from,
                annual_amount=money(p.annual_amount),
                currency=currency,
            )
            for p in periods
        ],
        hourly_cost=money(cost) if cost is not None else None,
        currency=currency,
    )


def _in_force_today(periods: list[CompensationPeriod]) -> CompensationPeriod | None:
    today = datetime.now(UTC).date()
    started = [p for p in periods if p.effective_from <= today]
    return max(started, key=lambda p: p.effective_from) if started else None
