from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.secrets import MissingSecretError, resolve_secrets
from app.settings import Settings


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, RECKONRY_ENV="production", RECKONRY_DATA_DIR=tmp_path)
    with pytest.raises(MissingSecretError, match="RECKONRY_SECRET_KEY"):
        resolve_secrets(settings)


def test_local_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, RECKONRY_DATA_DIR=tmp_path)
    first = resolve_secrets(settings)
    second = resolve_secrets(settings)
    assert first == second
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    Fernet(first.encryption_keys[0])  # a usable key


def test_rotation_lists_newest_key_first(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = Settings(
        _env_file=None,
        RECKONRY_DATA_DIR=tmp_path,
        RECKONRY_SECRET_KEY="s" * 40,
        RECKONRY_ENCRYPTION_KEYS=f"{new}, {old}",
    )
    assert resolve_secrets(settings).encryption_keys == (new, old)


def test_malformed_encryption_key_is_named(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        RECKONRY_DATA_DIR=tmp_path,
        RECKONRY_SECRET_KEY="s" * 40,
        RECKONRY_ENCRYPTION_KEYS="not-a-key",
    )
    with pytest.raises(MissingSecretError, match="Fernet keys"):
        resolve_secrets(settings)


def test_signing_keys_list_newest_first_and_a_single_key_still_works(tmp_path: Path) -> None:
    encryption = Fernet.generate_key().decode()
    new, old = "n" * 40, "o" * 40
    listed = Settings(
        _env_file=None,
        RECKONRY_DATA_DIR=tmp_path,
        RECKONRY_SECRET_KEYS=f" {new} ,{old}",
        RECKONRY_SECRET_KEY="ignored-when-the-list-is-set-" + "x" * 10,
        RECKONRY_ENCRYPTION_KEYS=encryption,
    )
    assert resolve_secrets(listed).signing_keys == (new, old)
    single = Settings(
        _env_file=None,
        RECKONRY_DATA_DIR=tmp_path,
        RECKONRY_SECRET_KEY=old,
        RECKONRY_ENCRYPTION_KEYS=encryption,
    )
    assert resolve_secrets(single).signing_keys == (old,)


def test_a_short_signing_key_in_the_list_is_refused(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        RECKONRY_ENV="production",
        RECKONRY_DATA_DIR=tmp_path,
        RECKONRY_SECRET_KEYS=f"{'n' * 40},too-short",
        RECKONRY_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    with pytest.raises(MissingSecretError, match="32 characters"):
        resolve_secrets(settings)
