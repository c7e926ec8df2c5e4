"""Password hashes, signed sign-in tokens and integrator API keys."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

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


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret_key: str, payload: str) -> str:
    digest = hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).digest()
    return _b64encode(digest)


@dataclass(frozen=True)
class SessionToken:
    token: str
    expires_in: int


def issue_session_token(
    secret_key: str, user_id: UUID, *, ttl: int = SESSION_TOKEN_TTL_SECONDS
) -> SessionToken:
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl}
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return SessionToken(f"{payload}.{_signature(secret_key, payload)}", ttl)


def read_session_token(secret_key: str, token: str) -> UUID | None:
    """The user id of a valid, unexpired token; None for anything else."""
    payload, _, signature = token.partition(".")
    # Compared as bytes: `compare_digest` refuses str with characters outside ASCII.
    expected = _signature(secret_key, payload).encode()
    if not payload or not hmac.compare_digest(signature.encode(), expected):
        return None
    try:
        claims = json.loads(_b64decode(payload))
        if int(claims["exp"]) <= time.time():
            return None
        return UUID(claims["sub"])
    except (ValueError, KeyError, TypeError):
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
