"""The keys that sign tokens and the keys that encrypt Karbon credentials at rest.

Production must set `RECKONRY_SECRET_KEYS` (or the single `RECKONRY_SECRET_KEY`) and
`RECKONRY_ENCRYPTION_KEYS`. Elsewhere,
missing ones are generated once and kept in `<data dir>/secrets.json` (mode 0600) so
that a restart can still read what it encrypted.
"""

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from app.settings import Settings, comma_separated


class MissingSecretError(RuntimeError):
    pass


@dataclass(frozen=True)
class Secrets:
    signing_keys: tuple[str, ...]
    """Token signing keys, newest first: the first signs, all of them verify."""
    encryption_keys: tuple[str, ...]
    """Fernet keys, newest first: the first encrypts, all of them decrypt."""


def parse_encryption_keys(value: str) -> tuple[str, ...]:
    keys = comma_separated(value)
    for key in keys:
        try:
            Fernet(key)
        except ValueError as error:
            raise MissingSecretError(
                "RECKONRY_ENCRYPTION_KEYS must be comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes each)"
            ) from error
    if not keys:
        raise MissingSecretError("RECKONRY_ENCRYPTION_KEYS is empty")
    return keys


MIN_SIGNING_KEY_LENGTH = 32


def parse_signing_keys(value: str) -> tuple[str, ...]:
    keys = comma_separated(value)
    if not keys:
        raise MissingSecretError("RECKONRY_SECRET_KEYS is empty")
    if any(len(key) < MIN_SIGNING_KEY_LENGTH for key in keys):
        raise MissingSecretError(
            f"RECKONRY_SECRET_KEYS: each key needs {MIN_SIGNING_KEY_LENGTH} characters or more "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    return keys


def _local_secrets(path: Path) -> dict[str, str]:
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    generated = {
        "secret_key": secrets.token_urlsafe(48),
        "encryption_key": Fernet.generate_key().decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(generated, file)
    return generated


def resolve_secrets(settings: Settings) -> Secrets:
    signing = settings.secret_keys or settings.secret_key
    if settings.environment == "production":
        if not signing or not settings.encryption_keys:
            raise MissingSecretError(
                "production needs RECKONRY_SECRET_KEYS (or RECKONRY_SECRET_KEY) and "
                "RECKONRY_ENCRYPTION_KEYS"
            )
        return Secrets(parse_signing_keys(signing), parse_encryption_keys(settings.encryption_keys))
    local = (
        {}
        if signing and settings.encryption_keys
        else _local_secrets(settings.data_dir / "secrets.json")
    )
    signing = signing or local["secret_key"]
    keys = settings.encryption_keys or local["encryption_key"]
    return Secrets(parse_signing_keys(signing), parse_encryption_keys(keys))
