import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults_need_no_configuration() -> None:
    settings = Settings(_env_file=None)
    assert settings.karbon_requests_per_second == 1.8
    assert settings.karbon_base_url == "https://api.karbonhq.com"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://root@localhost/db", "postgresql://"),
        ("REDIS_URL", "http://localhost:6379", "redis://"),
        ("RECKONRY_API_PORT", "70000", "less than or equal to 65535"),
        ("KARBON_REQUESTS_PER_SECOND", "5", "less than or equal to 2"),
    ],
)
def test_bad_settings_fail_with_a_specific_message(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)
