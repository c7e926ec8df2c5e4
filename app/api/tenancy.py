"""Sign-up, sign-in, the caller, the firm's members and integrator keys, and operators' view."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.auth import (
    SecretsDep,
    SignedInUser,
    TenantAdmin,
    TenantMember,
    actor_of,
)
from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.api.pagination import PageParamsDep
from app.api.responses import ADMIN, MEMBER, SIGNED_IN, VALIDATION, problems
from app.kit.pagination import Page
from app.mail import send_email
from app.models import AuditKind, Role
from app.settings import Settings
from app.tenancy import accounts, audit, billing, service
from app.tenancy.ratelimit import ResetLimiter, SignInLimiter
from app.tenancy.schemas import (
    AccessToken,
    ApiKeyView,
    AuditEventView,
    Billing,
    CreatedApiKey,
    LinkRedemption,
    Me,
    Member,
    NewApiKeyRequest,
    NewMember,
    PasswordChange,
    PasswordResetRequest,
    PasswordResetRequested,
    SignUp,
    StripeEventReceipt,
)
from app.tenancy.security import TokenPurpose

router = APIRouter(prefix="/api/v1")


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    tags=["account"],
    summary="Create a firm and its first admin",
    description="Returns a sign-in token for the new admin. The 7-day trial does not start "
    "yet: it starts when Karbon first accepts the firm's keys.",
    responses=problems(
        {409: "`email-taken`: the e-mail address already has an account.", **VALIDATION}
    ),
)
async def sign_up(body: SignUp, session: SessionDep, secrets: SecretsDep) -> AccessToken:
    return await service.sign_up(session, secrets.signing_keys, body)


@router.post(
    "/auth/token",
    tags=["account"],
    summary="Sign in with e-mail and password",
    description="OAuth2 password form: `username` is the e-mail address. Send the returned "
    "`access_token` as `Authorization: Bearer <token>`.",
    responses=problems(
        {
            401: "`invalid-credentials`: the e-mail address or the password is wrong.",
            **VALIDATION,
            429: "`too-many-sign-in-attempts`: too many attempts for this account or address; "
            "`Retry-After` says how many seconds to wait.",
            503: "`sign-in-busy`: too many sign-ins at once on this server; retry after "
            "`Retry-After` seconds.",
        }
    ),
)
async def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    secrets: SecretsDep,
) -> AccessToken:
    return await service.sign_in(
        session,
        SignInLimiter(redis, settings.redis_key_prefix),
        secrets.signing_keys,
        email=form.username,
        password=form.password,
        address=request.client.host if request.client else "unknown",
    )


@router.get(
    "/me",
    tags=["account"],
    summary="Who am I: role, firm and trial",
    responses=problems(SIGNED_IN),
)
async def get_me(principal: SignedInUser, session: SessionDep) -> Me:
    assert principal.user_id is not None
    return await service.me(session, principal.user_id, _now())


@router.get(
    "/members",
    tags=["members"],
    summary="The firm's people",
    responses=problems({**MEMBER, **VALIDATION}),
)
async def list_members(
    principal: TenantMember, session: SessionDep, page: PageParamsDep
) -> Page[Member]:
    return await service.members(session, principal.tenant_id, page)


@router.post(
    "/members",
    status_code=status.HTTP_201_CREATED,
    tags=["members"],
    summary="Invite a person to the firm (admins)",
    description="E-mails the person a single-use link, valid 7 days, to choose their own "
    "password (`POST /api/v1/invitations/accept`); until then the member is "
    "`invitation_pending` and cannot sign in. Admins never choose others' passwords.",
    responses=problems(
        {**ADMIN, 409: "`email-taken`: the e-mail address already has an account.", **VALIDATION}
    ),
)
async def invite_member(
    principal: TenantAdmin,
    body: NewMember,
    session: SessionDep,
    settings: SettingsDep,
    secrets: SecretsDep,
    background: BackgroundTasks,
) -> Member:
    member, email = await service.invite_member(
        session,
        secrets.signing_keys,
        settings.app_url,
        actor_of(principal),
        principal.tenant_id,
        body,
    )
    _send_after_response(background, settings, email)
    return member


@router.post(
    "/invitations/accept",
    tags=["account"],
    summary="Join a firm: choose a password with the invitation's token",
    description="The token is the `token` of the e-mailed link; it works once. Returns a "
    "sign-in token.",
    responses=problems(
        {
            400: "`invalid-invitation-link`: the link is invalid, expired or already used.",
            **VALIDATION,
        }
    ),
)
async def accept_invitation(
    body: LinkRedemption, session: SessionDep, secrets: SecretsDep
) -> AccessToken:
    return await accounts.set_password_by_link(
        session, secrets.signing_keys, TokenPurpose.INVITATION, body.token, body.password
    )


@router.post(
    "/me/password",
    tags=["account"],
    summary="Change my password",
    description="Signs out every other session of yours (and this request's token): use the "
    "new token returned.",
    responses=problems(
        {
            400: "`wrong-password`: the current password is wrong.",
            **SIGNED_IN,
            **VALIDATION,
        }
    ),
)
async def change_password(
    principal: SignedInUser, body: PasswordChange, session: SessionDep, secrets: SecretsDep
) -> AccessToken:
    assert principal.user_id is not None
    return await accounts.change_password(
        session, secrets.signing_keys, principal.user_id, body.current_password, body.new_password
    )


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["account"],
    summary="Sign out: this token stops working",
    description="Your other sessions stay signed in.",
    responses=problems(SIGNED_IN),
)
async def log_out(principal: SignedInUser, session: SessionDep) -> Response:
    assert principal.token is not None
    await accounts.sign_out(session, principal.token, _now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_RESET_REQUESTED = (
    "If an account has this address, an e-mail with a link to reset its password is on its "
    "way; the link works once, within an hour."
)


@router.post(
    "/auth/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["account"],
    summary="E-mail me a link to reset my password",
    description="Answers the same whether or not the address has an account. An account gets "
    "at most a few reset e-mails an hour; further requests for it send nothing.",
    responses=problems(
        {
            **VALIDATION,
            429: "`too-many-reset-requests`: too many requests from this address; "
            "`Retry-After` says how many seconds to wait.",
        }
    ),
)
async def request_password_reset(
    body: PasswordResetRequest,
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    secrets: SecretsDep,
    background: BackgroundTasks,
) -> PasswordResetRequested:
    limiter = ResetLimiter(redis, settings.redis_key_prefix)
    await limiter.check_address(request.client.host if request.client else "unknown")
    email = await accounts.password_reset_email(
        session, secrets.signing_keys, settings.app_url, str(body.email)
    )
    if email is not None and await limiter.may_mail(email.to):
        _send_after_response(background, settings, email)
    return PasswordResetRequested(detail=_RESET_REQUESTED)


@router.post(
    "/auth/password-reset/confirm",
    tags=["account"],
    summary="Choose a new password with the reset link's token",
    description="The link works once, within an hour of the request. Signs out every session "
    "of the account and returns a new sign-in token.",
    responses=problems(
        {400: "`invalid-reset-link`: the link is invalid, expired or already used.", **VALIDATION}
    ),
)
async def confirm_password_reset(
    body: LinkRedemption, session: SessionDep, secrets: SecretsDep
) -> AccessToken:
    return await accounts.set_password_by_link(
        session, secrets.signing_keys, TokenPurpose.PASSWORD_RESET, body.token, body.password
    )


def _send_after_response(
    background: BackgroundTasks, settings: Settings, email: accounts.OutgoingEmail
) -> None:
    """Sent once the answer is out: its timing says nothing of whether an address exists."""
    background.add_task(send_email, settings, [email.to], email.subject, email.body)


@router.delete(
    "/members/{member_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["members"],
    summary="Remove a person from the firm (admins)",
    description="The person can no longer sign in.",
    responses=problems(
        {
            **ADMIN,
            404: "`not-found`: no such member in your firm.",
            409: "`cannot-remove-yourself`: ask another admin.",
            **VALIDATION,
        }
    ),
)
async def remove_member(principal: TenantAdmin, member_id: UUID, session: SessionDep) -> Response:
    await service.deactivate_member(session, principal.tenant_id, actor_of(principal), member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    tags=["api keys"],
    summary="Create an integrator key (admins)",
    description="The key is in this response only; it is stored as a hash. It reads what its "
    "`scopes` name and nothing else; it never changes anything.",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def create_api_key(
    principal: TenantAdmin, body: NewApiKeyRequest, session: SessionDep
) -> CreatedApiKey:
    return await service.create_api_key(session, principal.tenant_id, actor_of(principal), body)


@router.get(
    "/api-keys",
    tags=["api keys"],
    summary="The firm's integrator keys, newest first (admins)",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def list_api_keys(
    principal: TenantAdmin, session: SessionDep, page: PageParamsDep
) -> Page[ApiKeyView]:
    return await service.api_keys(session, principal.tenant_id, page)


_KEY_NOT_FOUND = {404: "`not-found`: no such API key in your firm."}


@router.get(
    "/api-keys/{key_id}",
    tags=["api keys"],
    summary="One integrator key (admins)",
    responses=problems({**ADMIN, **_KEY_NOT_FOUND, **VALIDATION}),
)
async def get_api_key(principal: TenantAdmin, key_id: UUID, session: SessionDep) -> ApiKeyView:
    return await service.api_key(session, principal.tenant_id, key_id)


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["api keys"],
    summary="Revoke an integrator key (admins)",
    description="Takes effect on the key's next request. Revoking twice is harmless.",
    responses=problems({**ADMIN, **_KEY_NOT_FOUND, **VALIDATION}),
)
async def revoke_api_key(principal: TenantAdmin, key_id: UUID, session: SessionDep) -> Response:
    await service.revoke_api_key(session, principal.tenant_id, actor_of(principal), key_id, _now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/billing",
    tags=["billing"],
    summary="The firm's plan, and for admins the link to subscribe",
    description="`subscribe_url` is the Stripe checkout carrying this firm's id; paying "
    "there makes the plan `active` within moments of Stripe's webhook.",
    responses=problems(MEMBER),
)
async def get_billing(
    principal: TenantMember, session: SessionDep, settings: SettingsDep
) -> Billing:
    admin_email = None
    if principal.role == Role.ADMIN and principal.user_id is not None:
        admin_email = await service.user_email(session, principal.user_id)
    return await billing.billing(
        session, settings.stripe_payment_link, principal.tenant_id, admin_email, _now()
    )


@router.post(
    "/billing/stripe-webhook",
    tags=["billing"],
    summary="Stripe's signed events (called by Stripe)",
    description="Verifies the `Stripe-Signature` header with the endpoint's secret, then "
    "applies `checkout.session.completed` and `customer.subscription.created`, `.updated` "
    "and `.deleted`. Every event id is recorded: a repeated delivery changes nothing; an "
    "event for an unknown firm is recorded and ignored.",
    responses=problems(
        {
            400: "`invalid-signature`: the signature does not match or is too old. "
            "`invalid-event`: the body is not a Stripe event.",
            503: "`billing-not-configured`: RECKONRY_STRIPE_WEBHOOK_SECRET is not set.",
        }
    ),
)
async def receive_stripe_event(
    request: Request, session: SessionDep, settings: SettingsDep
) -> StripeEventReceipt:
    event = billing.verified_event(
        await request.body(),
        request.headers.get("stripe-signature"),
        settings.stripe_webhook_secret,
    )
    return await billing.apply_event(session, event, _now())


@router.get(
    "/audit",
    tags=["audit"],
    summary="Who changed what in the firm, newest first (admins)",
    description="Compensation, cost settings, Karbon keys, members, integrator keys, the plan "
    "and trial, sync settings and manual syncs: each change names who made it (a person, an "
    "integrator key, an operator, Stripe or the command line). The record cannot be edited; "
    "it holds no secret and no pay amount.",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def list_audit_events(
    principal: TenantAdmin,
    session: SessionDep,
    page: PageParamsDep,
    kind: Annotated[AuditKind | None, Query(description="Only changes of this kind")] = None,
) -> Page[AuditEventView]:
    return await audit.events(session, principal.tenant_id, kind, page)
