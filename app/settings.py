"""Settings, read from environment variables (and an optional `.env` file).

Every setting is documented in the README with its default. `DATABASE_URL` and
`REDIS_URL` are optional: without them the product starts an embedded PostgreSQL
and Redis whose data lives under `RECKONRY_DATA_DIR`.
"""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

KARBON_REQUESTS_PER_SECOND = 1.8
"""Karbon's published ceiling is 2/s per tenant; this leaves room for clocks and networks."""

# Browser origins allowed outside production when RECKONRY_CORS_ORIGINS is unset: the usual
# ports of local frontend dev servers (Vite, Create React App/Next.js, webpack/Vue CLI).
DEVELOPMENT_CORS_ORIGINS = (
    "http://localhost:5173",
    "http://127.0.0.1:5173",
    "http://localhost:3000",
    "http://127.0.0.1:3000",
    "http://localhost:8080",
    "http://127.0.0.1:8080",
)


def _check_origin(origin: str) -> None:
    """A browser origin is `scheme://host[:port]`: nothing after the host and port."""
    parts = urlsplit(origin)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as error:
        raise ValueError(f"RECKONRY_CORS_ORIGINS: {origin!r} has an invalid port") from error
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
        or origin.endswith(("?", "#"))
    ):
        raise ValueError(
            f"RECKONRY_CORS_ORIGINS: {origin!r} is not an origin; write each one as "
            "scheme://host[:port] (http or https, no path, no trailing slash), or * alone"
        )


def comma_separated(value: str) -> tuple[str, ...]:
    """A comma-separated setting's items, spaces and empty items dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


class Settings(BaseSettings):
    # An empty variable (`SMTP_HOST=`, as compose passes an unset one) means unset.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    data_dir: Path = Field(default=Path(".data"), validation_alias="RECKONRY_DATA_DIR")

    environment: Literal["development", "production", "test"] = Field(
        default="development", validation_alias="RECKONRY_ENV"
    )
    api_host: str = Field(default="127.0.0.1", validation_alias="RECKONRY_API_HOST")
    api_port: int = Field(default=8000, ge=1, le=65535, validation_alias="RECKONRY_API_PORT")
    worker_metrics_port: int = Field(
        default=9100, ge=0, le=65535, validation_alias="RECKONRY_WORKER_METRICS_PORT"
    )
    """A worker serves its Prometheus metrics here, on `api_host`; 0 serves none."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="RECKONRY_LOG_LEVEL"
    )
    redis_key_prefix: str = Field(
        default="reckonry", min_length=1, validation_alias="RECKONRY_REDIS_PREFIX"
    )

    karbon_base_url: str = Field(
        default="https://api.karbonhq.com", validation_alias="KARBON_BASE_URL"
    )
    karbon_requests_per_second: float = Field(
        default=KARBON_REQUESTS_PER_SECOND,
        gt=0,
        le=2.0,
        validation_alias="KARBON_REQUESTS_PER_SECOND",
    )

    raw_retention_days: int = Field(
        default=90, ge=1, le=36500, validation_alias="RECKONRY_RAW_RETENTION_DAYS"
    )
    raw_prune_batch_size: int = Field(
        default=500, ge=1, le=100_000, validation_alias="RECKONRY_RAW_PRUNE_BATCH_SIZE"
    )

    secret_key: str | None = Field(
        default=None, min_length=32, validation_alias="RECKONRY_SECRET_KEY"
    )
    """One signing key; `secret_keys` wins when both are set."""
    secret_keys: str | None = Field(default=None, validation_alias="RECKONRY_SECRET_KEYS")
    """Signing keys, comma-separated, newest first: the first signs, all of them verify."""
    encryption_keys: str | None = Field(default=None, validation_alias="RECKONRY_ENCRYPTION_KEYS")

    app_url: str = Field(default="http://127.0.0.1:8000", validation_alias="RECKONRY_APP_URL")
    """Where people open the links of e-mails (password reset, invitations)."""
    stripe_payment_link: str | None = Field(
        default=None, validation_alias="RECKONRY_STRIPE_PAYMENT_LINK"
    )
    """The Stripe Payment Link admins subscribe through; unset, billing offers no link."""
    stripe_webhook_secret: str | None = Field(
        default=None, validation_alias="RECKONRY_STRIPE_WEBHOOK_SECRET"
    )
    """The signing secret (`whsec_...`) of the Stripe webhook endpoint."""

    smtp_host: str | None = Field(default=None, validation_alias="SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, validation_alias="SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=True, validation_alias="SMTP_STARTTLS")
    smtp_from: str = Field(default="Reckonry <no-reply@localhost>", validation_alias="SMTP_FROM")

    cors_origins: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None, validation_alias="RECKONRY_CORS_ORIGINS"
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("127.0.0.1",), validation_alias="RECKONRY_TRUSTED_PROXIES"
    )
    """Peers whose X-Forwarded-For/-Proto the API believes: addresses or networks."""

    @property
    def allowed_cors_origins(self) -> tuple[str, ...]:
        """RECKONRY_CORS_ORIGINS, or by default none in production and local dev servers else."""
        if self.cors_origins is not None:
            return self.cors_origins
        return () if self.environment == "production" else DEVELOPMENT_CORS_ORIGINS

    @property
    def queue_name(self) -> str:
        """The arq queue of this deployment (namespaced like every Redis key)."""
        return f"{self.redis_key_prefix}:queue"

    def job_id(self, *parts: object) -> str:
        """A job id in this deployment's namespace. arq names every Redis key of a job
        (`arq:job:<id>`, `arq:in-progress:<id>`, ...) after its id, so deployments sharing a
        Redis never take or refuse each other's jobs."""
        return ":".join(str(part) for part in (self.redis_key_prefix, *parts))

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """A client's address decides its sign-in limits: only proxies named here may say
        it is another, or any client could spread its guesses over invented addresses."""
        if value == ("*",):
            return value
        for peer in value:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(
                    f"RECKONRY_TRUSTED_PROXIES: {peer!r} is not an IP address or network "
                    "(e.g. 10.0.0.5 or 10.0.0.0/8); give * alone to trust every peer"
                ) from None
        return value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return comma_separated(value)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_only(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None or value == ("*",):
            return value
        if "*" in value:
            raise ValueError("RECKONRY_CORS_ORIGINS: * allows every origin; give it alone")
        for origin in value:
            _check_origin(origin)
        return value

    @field_validator("app_url", "stripe_payment_link")
    @classmethod
    def _web_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = {"app_url": "RECKONRY_APP_URL"}.get(
            info.field_name or "", "RECKONRY_STRIPE_PAYMENT_LINK"
        )
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{name} must be an http:// or https:// address, got {value!r}")
        return value

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("whsec_"):
            raise ValueError(
                "RECKONRY_STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret, "
                "which starts with whsec_ (Stripe dashboard, Developers, Webhooks)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(
            ("postgresql://", "postgresql+asyncpg://", "postgres://")
        ):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return value or None


@lru_cache
def get_settings() -> Settings:
    return Settings()
