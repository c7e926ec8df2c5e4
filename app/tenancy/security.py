"""Password hashes, signed tokens (sign-in, password reset, invitation) and integrator keys.

Tokens are JWTs (HS256) whose `kid` header names the signing key: the newest of
`RECKONRY_SECRET_KEYS` signs, every listed key verifies, so a key is rotated by putting a new
one first and removing the old one once the tokens it signed have expired.
"""

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_TOKEN_TTL_SECONDS = 12 * 60 * 60
API_KEY_PREFIX = "rk_live_"
_API_KEY_DISPLAY_LENGTH = len(API_KEY_PREFIX) + 6

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both failures take the same time.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        _hasher.verify(password_hash or _UNKNOWN_USER_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


class TokenPurpose(StrEnum):
    """A token's audience: a reset or invitation link never works as a sign-in token."""

    SESSION = "session"
    PASSWORD_RESET = "password-reset"
    INVITATION = "invitation"


TOKEN_LIFETIMES = {
    TokenPurpose.SESSION: SESSION_TOKEN_TTL_SECONDS,
    TokenPurpose.PASSWORD_RESET: 60 * 60,
    TokenPurpose.INVITATION: 7 * 24 * 60 * 60,
}
_ALGORITHM = "HS256"


def key_id(key: str) -> str:
    """Names a signing key in tokens' `kid` header without revealing it."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SignedToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class TokenClaims:
    user_id: UUID
    generation: int
    """The user's token generation when it was made: raising it signs the user out."""
    token_id: str
    expires_at: datetime


def issue_token(
    keys: Sequence[str],
    user_id: UUID,
    generation: int,
    purpose: TokenPurpose = TokenPurpose.SESSION,
    *,
    ttl: int | None = None,
) -> SignedToken:
    """A JWT signed with the newest key (`keys[0]`), named by its `kid`."""
    lifetime = TOKEN_LIFETIMES[purpose] if ttl is None else ttl
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "gen": generation,
        "aud": purpose.value,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + lifetime,
    }
    token = jwt.encode(claims, keys[0], algorithm=_ALGORITHM, headers={"kid": key_id(keys[0])})
    return SignedToken(token, lifetime)


def read_token(
    keys: Sequence[str], token: str, purpose: TokenPurpose = TokenPurpose.SESSION
) -> TokenClaims | None:
    """The claims of a token signed by any of `keys` for `purpose` and unexpired; else None."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((key for key in keys if key_id(key) == kid), None)
        if key is None:
            return None
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=purpose.value,
            options={"require": ["sub", "gen", "aud", "jti", "iat", "exp"]},
        )
        return TokenClaims(
            user_id=UUID(claims["sub"]),
            generation=int(claims["gen"]),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class NewApiKey:
    plaintext: str
    key_hash: str
    display_prefix: str


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_api_key() -> NewApiKey:
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(plaintext, hash_api_key(plaintext), plaintext[:_API_KEY_DISPLAY_LENGTH])
