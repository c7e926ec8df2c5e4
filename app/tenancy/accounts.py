"""A person's own account: tokens, password change and reset, invitations, signing out.

Revocation has two scopes. Raising the user's token generation signs the person out
everywhere at once (a password changed or reset, an invitation accepted), and also spends
every reset or invitation link made before, which is what makes those links single-use. One
token signed out (`POST /auth/logout`) goes on a deny-list until it would have expired anyway,
so the list stays as small as the tokens alive.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.kit.problems import ProblemError
from app.models import User
from app.tenancy import password_work, repository
from app.tenancy.principal_cache import forget_principals
from app.tenancy.schemas import AccessToken
from app.tenancy.security import (
    TOKEN_LIFETIMES,
    TokenClaims,
    TokenPurpose,
    issue_token,
    read_token,
)


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str


def access_token(keys: Sequence[str], user: User) -> AccessToken:
    token = issue_token(keys, user.id, user.token_generation)
    return AccessToken(access_token=token.token, expires_in=token.expires_in)


def _link(app_url: str, page: str, token: str) -> str:
    return f"{app_url.rstrip('/')}/{page}?{urlencode({'token': token})}"


async def _set_password(session: AsyncSession, user: User, password: str) -> None:
    """The new password; every token and link the person had stops working."""
    user.password_hash = await password_work.hashed(password)
    user.token_generation += 1
    await session.flush()
    after_commit(session, forget_principals)


async def change_password(
    session: AsyncSession, keys: Sequence[str], user_id: UUID, current: str, new: str
) -> AccessToken:
    user = await repository.user_for_update(session, user_id)
    assert user is not None
    if not await password_work.verified(user.password_hash, current):
        raise ProblemError(
            400,
            "wrong-password",
            "The current password is wrong.",
            title="Wrong password",
            errors=[{"field": "current_password", "message": "Wrong password"}],
        )
    await _set_password(session, user, new)
    return access_token(keys, user)


async def sign_out(session: AsyncSession, claims: TokenClaims, now: datetime) -> None:
    await repository.revoke_token(session, claims.token_id, claims.expires_at, now)
    after_commit(session, forget_principals)


async def password_reset_email(
    session: AsyncSession, keys: Sequence[str], app_url: str, email: str
) -> OutgoingEmail | None:
    """The reset link for an active account with this address; None for any other address
    (the caller answers the same either way)."""
    user = await repository.user_by_email(session, email)
    if user is None or not user.is_active or user.password_hash is None:
        return None
    token = issue_token(keys, user.id, user.token_generation, TokenPurpose.PASSWORD_RESET)
    minutes = TOKEN_LIFETIMES[TokenPurpose.PASSWORD_RESET] // 60
    body = (
        "Someone (we hope you) asked to reset the password of your Reckonry account.\n\n"
        f"Choose a new password here within {minutes} minutes; the link works once:\n"
        f"{_link(app_url, 'reset-password', token.token)}\n\n"
        "The page sends the link's token with your new password to "
        "POST /api/v1/auth/password-reset/confirm.\n"
        "If you did not ask, ignore this e-mail: your password stays as it is."
    )
    return OutgoingEmail(user.email, "Reset your Reckonry password", body)


def _link_refused(purpose: TokenPurpose) -> ProblemError:
    what = "reset" if purpose is TokenPurpose.PASSWORD_RESET else "invitation"
    return ProblemError(
        400,
        f"invalid-{what}-link",
        f"This {what} link is invalid, has expired or was already used: "
        + (
            "ask for a new one (POST /api/v1/auth/password-reset)."
            if purpose is TokenPurpose.PASSWORD_RESET
            else "ask an admin of your firm to invite you again."
        ),
        title="Link not usable",
    )


async def _redeem(
    session: AsyncSession, keys: Sequence[str], token: str, purpose: TokenPurpose
) -> User:
    """The link's user, locked; refused unless the link is unexpired and not yet used."""
    claims = read_token(keys, token, purpose)
    user = await repository.user_for_update(session, claims.user_id) if claims else None
    if claims is None or user is None or user.token_generation != claims.generation:
        raise _link_refused(purpose)
    if not user.is_active or (purpose is TokenPurpose.INVITATION) != (user.password_hash is None):
        raise _link_refused(purpose)
    return user


def invitation_email(
    keys: Sequence[str], app_url: str, user: User, firm_name: str
) -> OutgoingEmail:
    token = issue_token(keys, user.id, user.token_generation, TokenPurpose.INVITATION)
    days = TOKEN_LIFETIMES[TokenPurpose.INVITATION] // (24 * 60 * 60)
    body = (
        f"You are invited to {firm_name}'s Reckonry: client profitability from Karbon.\n\n"
        f"Choose your password here within {days} days; the link works once:\n"
        f"{_link(app_url, 'accept-invitation', token.token)}\n\n"
        "The page sends the link's token with your password to "
        "POST /api/v1/invitations/accept."
    )
    return OutgoingEmail(user.email, f"Join {firm_name} on Reckonry", body)


async def set_password_by_link(
    session: AsyncSession, keys: Sequence[str], purpose: TokenPurpose, token: str, password: str
) -> AccessToken:
    """A password reset or an accepted invitation: the link is spent, the person signed in."""
    user = await _redeem(session, keys, token, purpose)
    await _set_password(session, user, password)
    return access_token(keys, user)
