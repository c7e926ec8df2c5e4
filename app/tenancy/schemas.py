"""Request and response bodies of the tenancy and Karbon endpoints."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints
from pydantic_core import PydanticCustomError

from app.models import ActorKind, ApiScope, AuditKind, Role, SubscriptionStatus, Tenant, User
from app.tenancy.plan import PlanState, TrialState, TrialStatus

Password = Annotated[str, Field(min_length=12, max_length=200, description="12 characters or more")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
FirmName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class SignUp(BaseModel):
    firm_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]
    email: EmailStr
    password: Password


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires; sign in again then")


class Trial(BaseModel):
    """7 days from the first successful Karbon key validation; never restarted."""

    status: TrialStatus
    started_at: datetime | None
    ends_at: datetime | None
    days_left: int | None

    @classmethod
    def from_state(cls, state: TrialState) -> "Trial":
        return cls(
            status=state.status,
            started_at=state.started_at,
            ends_at=state.ends_at,
            days_left=state.days_left,
        )


class Plan(BaseModel):
    """Trialing until the firm pays; past due while Stripe retries a failed payment."""

    status: SubscriptionStatus
    status_since: datetime | None = Field(description="When the plan last changed status")
    current_period_ends_at: datetime | None = Field(
        description="End of the paid period, as Stripe last reported it"
    )
    reports_and_syncs_allowed: bool = Field(
        description="False once the trial has ended and the firm does not pay (reports 402)"
    )

    @classmethod
    def of(cls, tenant: Tenant, state: PlanState) -> "Plan":
        return cls(
            status=state.status,
            status_since=tenant.subscription_status_since,
            current_period_ends_at=tenant.current_period_ends_at,
            reports_and_syncs_allowed=state.allows_reports_and_syncs,
        )


class TenantView(BaseModel):
    id: UUID
    name: str
    subscription_active: bool = Field(description="The firm pays (plan active or past due)")
    trial: Trial
    plan: Plan


class Me(BaseModel):
    user_id: UUID
    email: str
    role: Role
    tenant: TenantView | None = Field(description="None for platform operators")


class Billing(BaseModel):
    plan: Plan
    trial: Trial
    subscribe_url: str | None = Field(
        description="Admins of a firm that does not pay: the Stripe checkout for this firm. "
        "None for members, for paying firms, and when billing is not set up"
    )


class StripeEventReceipt(BaseModel):
    event_id: str
    outcome: Literal["applied", "duplicate", "stale", "ignored", "unknown-firm"] = Field(
        description="`duplicate`: received before, nothing changed. `stale`: older than the "
        "last event applied to the firm. `unknown-firm`: recorded and ignored"
    )


class PlanChange(BaseModel):
    status: SubscriptionStatus


class TrialExtension(BaseModel):
    days: int = Field(ge=1, le=365, description="Added to the trial's end (or to now, once ended)")


class NewMember(BaseModel):
    """The person gets an e-mail with a link to choose their own password."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    role: Literal[Role.ADMIN, Role.MEMBER] = Role.MEMBER


class Member(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    email: str
    role: Role
    is_active: bool
    invitation_pending: bool = Field(
        description="Invited and not yet joined: the person has not chosen a password"
    )
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> "Member":
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            invitation_pending=user.password_hash is None,
            created_at=user.created_at,
        )


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=200)
    new_password: Password


class PasswordResetRequest(BaseModel):
    email: EmailStr


class PasswordResetRequested(BaseModel):
    detail: str = Field(description="The same whether or not the address has an account")


class LinkRedemption(BaseModel):
    """A password reset or an invitation: the token from the e-mailed link, and a password."""

    token: str = Field(min_length=1, max_length=2000)
    password: Password


def _meaningful_scopes(scopes: list[ApiScope]) -> list[ApiScope]:
    """Each scope once, in a stable order; `pay:read` only beside what it widens."""
    if ApiScope.PAY_READ in scopes and ApiScope.REPORTS_READ not in scopes:
        raise PydanticCustomError(
            "scope_without_reports",
            "`pay:read` adds pay to what `reports:read` reads: add `reports:read` too",
        )
    return [scope for scope in ApiScope if scope in scopes]


Scopes = Annotated[
    list[ApiScope],
    Field(
        min_length=1,
        description="What the key may read. `reports:read`: the reports and the staff list, "
        "without anyone's pay. `sync:read`: sync status, history and settings. `pay:read` "
        "(with `reports:read`): compensation and per-person hourly cost and cost too, as "
        "admins see them.",
    ),
    AfterValidator(_meaningful_scopes),
]


class NewApiKeyRequest(BaseModel):
    name: Name = Field(description="What the key is for, e.g. the integrator's tool")
    scopes: Scopes


class ApiKeyView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    display_prefix: str = Field(description="The key's first characters, to recognise it")
    scopes: list[ApiScope]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="When the key was last used, to the minute; null if never"
    )


class CreatedApiKey(ApiKeyView):
    key: str = Field(description="The key itself. Shown only now: store it safely.")


_JWT = r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
_GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
JWT_PATTERN = f"^{_JWT}$"
GUID_PATTERN = f"^{_GUID}$"
PASTED_ACCESS_KEY_PATTERN = rf"^\s*{_JWT}\s*$"
"""What `PUT /karbon/credentials` accepts as `access_key`: a JWT, spaces around it allowed."""
_BRACES = r"[\{\}\s]*"
_SCHEME = r"(?:[Bb][Ee][Aa][Rr][Ee][Rr]\s+)?"
PASTED_BEARER_TOKEN_PATTERN = rf"^\s*{_SCHEME}{_BRACES}{_GUID}{_BRACES}\s*$"
"""What it accepts as `bearer_token`: a GUID, with spaces, a `Bearer ` scheme or braces around
it as people paste it. `app.sync.connection` strips those, then checks `GUID_PATTERN`."""


class PastedCredentials(BaseModel):
    """The patterns are checked by the server after the request is read, so a mismatch is the
    specific 422 `invalid-credentials-format` (it also says when the two look swapped)."""

    access_key: str = Field(
        max_length=8192,
        description="Karbon AccessKey: a JWT, three dot-separated parts starting `eyJ`",
        json_schema_extra={"pattern": PASTED_ACCESS_KEY_PATTERN},
    )
    bearer_token: str = Field(
        max_length=200,
        description="Karbon Bearer token: a GUID such as `550e8400-e29b-41d4-a716-446655440000`",
        json_schema_extra={"pattern": PASTED_BEARER_TOKEN_PATTERN},
    )


class SyncError(BaseModel):
    code: str
    message: str
    likely_cause: str | None
    steps: list[str]
    occurred_at: datetime


class Connection(BaseModel):
    connected: bool
    access_key_masked: str | None
    bearer_token_masked: str | None
    validated_at: datetime | None = Field(description="Last successful key check against Karbon")
    connected_at: datetime | None
    disconnected_at: datetime | None
    trial: Trial
    last_error: SyncError | None


class StorageFigures(BaseModel):
    """What a firm's synced data costs to keep, as the storage job last measured it."""

    measured_at: datetime | None = Field(description="When the figures were measured")
    raw_rows: int = Field(description="Raw Karbon responses kept (one per distinct body)")
    raw_bytes: int = Field(description="Bytes of the kept raw bodies, as stored")
    normalized_rows: int = Field(description="Rows of the synced tables")
    normalized_bytes: int = Field(description="Bytes of the synced tables' rows, as stored")
    raw_rows_per_day: int = Field(description="Raw responses stored in the 24 h before measuring")
    raw_bytes_per_day: int = Field(description="Bytes of raw bodies stored in those 24 h")
    last_pruned_at: datetime | None = Field(
        description="When superseded raw responses of the firm were last pruned"
    )
    pruned_rows: int = Field(description="Superseded raw responses pruned, all prunes together")
    pruned_bytes: int = Field(description="Bytes those pruned responses held")


class OpsTenant(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    subscription_active: bool
    trial: Trial
    plan: Plan
    karbon_connected: bool
    last_sync_error_code: str | None
    storage: StorageFigures | None = Field(
        None, description="What the firm's data costs to keep; none until first measured"
    )


class AuditEventView(BaseModel):
    """One change to the firm: who made it, what it changed, when. Never a secret or an amount."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    occurred_at: datetime
    kind: AuditKind
    action: str = Field(description="What was done, e.g. `member.invited`, `api_key.revoked`")
    actor_kind: ActorKind
    actor_id: UUID | None = Field(description="The person's or integrator key's id")
    actor_label: str = Field(description="The person's e-mail or the key's name when it acted")
    subject: str = Field(description="What was changed")
    detail: str
