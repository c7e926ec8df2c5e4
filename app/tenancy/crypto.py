"""Karbon credentials encrypted at rest with the configured Fernet keys.

`RECKONRY_ENCRYPTION_KEYS` lists keys newest first: the newest encrypts, every listed key
decrypts. To rotate, prepend a new key, run `reencrypt_credentials` so every row uses it,
then drop the old key.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.secrets import Secrets

_VISIBLE_TAIL = 4


class UndecryptableCredentialError(RuntimeError):
    """Stored credentials were encrypted with a key that is no longer configured."""


class CredentialCipher:
    def __init__(self, secrets: Secrets) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in secrets.encryption_keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise UndecryptableCredentialError(
                "Karbon credentials cannot be decrypted with RECKONRY_ENCRYPTION_KEYS"
            ) from error

    def reencrypt(self, ciphertext: str) -> str:
        """The same plaintext under the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise UndecryptableCredentialError(
                "Karbon credentials cannot be decrypted with RECKONRY_ENCRYPTION_KEYS"
            ) from error


def mask(secret: str) -> str:
    """Enough to recognise which key is stored, never enough to use it."""
    return "••••" + secret[-_VISIBLE_TAIL:]
