"""The audit record: who (a person, an integrator key, an operator, Stripe or the command line)
changed what in a firm, and when.

`record` adds the event to the session of the change itself, so it commits with the change
and a change rolled back leaves no event. The table is append-only (a trigger refuses UPDATE
and DELETE). Callers pass text without secrets or pay amounts: a compensation change names
the person, never the amount; Karbon keys appear only masked.
"""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.pagination import Page, PageParams
from app.models import ActorKind, AuditEvent, AuditKind, Role
from app.tenancy import repository
from app.tenancy.schemas import AuditEventView


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change. Its label (e-mail, key name) is looked up when it is recorded."""

    kind: ActorKind
    id: UUID | None = None

    @classmethod
    def of(cls, role: Role | None, user_id: UUID | None, api_key_id: UUID | None) -> "Actor":
        """The signed-in caller: an operator, a firm's person or an integrator key."""
        if api_key_id is not None:
            return cls(ActorKind.API_KEY, api_key_id)
        return cls(ActorKind.OPERATOR if role == Role.OPERATOR else ActorKind.PERSON, user_id)


STRIPE = Actor(ActorKind.STRIPE)
COMMAND_LINE = Actor(ActorKind.COMMAND_LINE)


async def record(
    session: AsyncSession,
    tenant_id: UUID,
    actor: Actor,
    kind: AuditKind,
    action: str,
    subject: str,
    detail: str = "",
) -> None:
    """Add the event to the change's transaction: it commits, or rolls back, with it."""
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            kind=kind,
            action=action,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=await _label(session, actor),
            subject=subject,
            detail=detail,
        )
    )
    await session.flush()


async def _label(session: AsyncSession, actor: Actor) -> str:
    if actor.kind == ActorKind.STRIPE:
        return "Stripe"
    if actor.kind == ActorKind.COMMAND_LINE:
        return "an operator on the command line"
    assert actor.id is not None
    if actor.kind == ActorKind.API_KEY:
        key = await repository.api_key_by_id(session, actor.id)
        return key_label(key.name, key.display_prefix) if key else "an integrator key"
    user = await repository.user_by_id(session, actor.id)
    return user.email if user else "a removed account"


def key_label(name: str, display_prefix: str) -> str:
    return f"{name!r} ({display_prefix}…)"


async def events(
    session: AsyncSession, tenant_id: UUID, kind: AuditKind | None, params: PageParams
) -> Page[AuditEventView]:
    """The firm's events, newest first."""
    query = repository.audit_events(tenant_id, kind)
    rows, total = await repository.paged(session, query, params)
    return Page[AuditEventView](
        items=[AuditEventView.model_validate(row) for row in rows],
        total=total,
        limit=params.limit,
        offset=params.offset,
    )
