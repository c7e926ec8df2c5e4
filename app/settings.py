"""Settings, read from environment variables (and an optional `.env` file).

Every setting is documented in the README with its default. `DATABASE_URL` and
`REDIS_URL` are optional: without them the product starts an embedded PostgreSQL
and Redis whose data lives under `RECKONRY_DATA_DIR`.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

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
        default=1.8, gt=0, le=2.0, validation_alias="KARBON_REQUESTS_PER_SECOND"
    )

    secret_key: str | None = Field(
        default=None, min_length=32, validation_alias="RECKONRY_SECRET_KEY"
    )
    encryption_keys: str | None = Field(default=None, validation_alias="RECKONRY_ENCRYPTION_KEYS")

    smtp_host: str | None = Field(default=None, validation_alias="SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, validation_alias="SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=True, validation_alias="SMTP_STARTTLS")
    smtp_from: str = Field(default="Reckonry <no-reply@localhost>", validation_alias="SMTP_FROM")

    @property
    def queue_name(self) -> str:
        """The arq queue of this deployment (namespaced like every Redis key)."""
        return f"{self.redis_key_prefix}:queue"

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
