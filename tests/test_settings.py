import logging
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.mail import send_email
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
        ("RECKONRY_WORKER_METRICS_PORT", "-1", "greater than or equal to 0"),
        ("RECKONRY_WORKER_METRICS_PORT", "70000", "less than or equal to 65535"),
        ("KARBON_REQUESTS_PER_SECOND", "5", "less than or equal to 2"),
        ("RECKONRY_CORS_ORIGINS", "http://localhost:5173/", "'http://localhost:5173/' is not an"),
        ("RECKONRY_CORS_ORIGINS", "https://a.example,localhost:3000", "'localhost:3000' is not"),
        ("RECKONRY_CORS_ORIGINS", "https://a.example/app", "no path"),
        ("RECKONRY_CORS_ORIGINS", "ftp://a.example", "http or https"),
        ("RECKONRY_CORS_ORIGINS", "http://a.example:99999", "invalid port"),
        ("RECKONRY_CORS_ORIGINS", "*,https://a.example", "give it alone"),
    ],
)
def test_bad_settings_fail_with_a_specific_message(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)


def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_HOST", "")
    monkeypatch.setenv("SMTP_PORT", "")
    monkeypatch.setenv("SMTP_FROM", "")
    settings = Settings(_env_file=None)
    assert settings.smtp_host is None
    assert settings.smtp_port == 587
    assert settings.smtp_from == "Reckonry <no-reply@localhost>"


async def test_alert_e_mail_with_empty_smtp_host_is_logged_not_sent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SMTP_HOST", "")
    with caplog.at_level(logging.WARNING, logger="app.mail"):
        await send_email(Settings(_env_file=None), ["admin@firm.test"], "Karbon keys", "body")
    assert [record.getMessage() for record in caplog.records] == [
        "e-mail not sent: SMTP_HOST is not set"
    ]


def test_cors_origins_default_to_local_dev_servers_outside_production() -> None:
    assert "http://localhost:5173" in Settings(_env_file=None).allowed_cors_origins
    production = Settings(_env_file=None, RECKONRY_ENV="production")
    assert production.allowed_cors_origins == ()


def test_cors_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECKONRY_CORS_ORIGINS", " https://app.firm.example ,http://localhost:4200")
    assert Settings(_env_file=None).allowed_cors_origins == (
        "https://app.firm.example",
        "http://localhost:4200",
    )


def test_env_example_lists_every_documented_variable_with_its_default() -> None:
    root = Path(__file__).resolve().parent.parent
    table = root.joinpath("README.md").read_text().split("## Configuration", 1)[1]
    documented = set(re.findall(r"^\| `([A-Z_]+)`(?:, `([A-Z_]+)`)?", table, re.MULTILINE))
    names = {name for row in documented for name in row if name}
    example = root / ".env.example"
    listed = set(re.findall(r"^([A-Z_]+)=", example.read_text(), re.MULTILINE))
    assert names and names <= listed
    assert Settings(_env_file=example) == Settings(_env_file=None)


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = Settings(_env_file=None, RECKONRY_TRUSTED_PROXIES=" 10.0.0.5, 10.1.0.0/16 ")
    assert settings.trusted_proxies == ("10.0.0.5", "10.1.0.0/16")
    assert Settings(_env_file=None).trusted_proxies == ("127.0.0.1",)
    refused = re.escape("'lb.internal' is not an IP address or network")
    with pytest.raises(ValidationError, match=refused):
        Settings(_env_file=None, RECKONRY_TRUSTED_PROXIES="10.0.0.5,lb.internal")


def test_the_api_believes_forwarded_headers_from_trusted_proxies_only() -> None:
    from app.cli import _uvicorn_server
    from app.embedded import ServiceUrls

    urls = ServiceUrls(database_url="postgresql://x@127.0.0.1/x", redis_url="redis://127.0.0.1")
    settings = Settings(_env_file=None, RECKONRY_TRUSTED_PROXIES="10.1.0.0/16")
    assert _uvicorn_server(settings, urls).config.forwarded_allow_ips == ["10.1.0.0/16"]


def test_the_api_keeps_idle_connections_longer_than_load_balancers_do() -> None:
    """A balancer (60 s idle for most) must be the one to close an idle connection: when the
    server closes first, a request sent at that moment fails."""
    from app.cli import _uvicorn_server
    from app.embedded import ServiceUrls

    urls = ServiceUrls(database_url="postgresql://x@127.0.0.1/x", redis_url="redis://127.0.0.1")
    assert _uvicorn_server(Settings(_env_file=None), urls).config.timeout_keep_alive > 60
