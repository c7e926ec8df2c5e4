"""``reckonry sandbox``: prints each tenant's keys, then serves (uvicorn stubbed out here)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
import uvicorn
from typer.testing import CliRunner

from sandbox import cli
from sandbox.server import serve_sandbox_in_thread
from sandbox.state import Sandbox, make_access_key, make_bearer_token
from sandbox.tests.conftest import TODAY


def test_sandbox_command_prints_keys_and_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        served.update(kw, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    host = typer.Typer()
    host.command("sandbox")(cli.sandbox_command)  # how app/cli/__init__.py mounts it
    result = CliRunner().invoke(
        host,
        [
            "--size",
            "tiny",
            "--port",
            "8905",
            "--seed",
            "3",
            "--tenants",
            "2",
            "--today",
            "2026-08-19",
            "--latency-median",
            "0.2",
            "--no-rate-limit",
        ],
    )
    assert result.exit_code == 0, result.output
    for name, seed in (("Demo firm 1", 3), ("Demo firm 2", 4)):
        assert make_access_key(name, seed) in result.output
        assert make_bearer_token(name, seed) in result.output
    assert served["port"] == 8905 and served["host"] == "127.0.0.1"
    sandbox = served["app"].sandbox
    assert sandbox.config.latency.median_seconds == 0.2
    assert sandbox.config.latency.distribution == "lognormal"
    assert not sandbox.config.rate_limit_enabled
    assert [t.firm.today.isoformat() for t in sandbox.tenants.values()] == ["2026-08-19"] * 2


def test_unknown_size_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    result = CliRunner().invoke(cli.app, ["serve", "--size", "huge"])
    assert result.exit_code != 0


def test_advance_command_against_a_running_sandbox() -> None:
    sandbox = Sandbox.create(("Firm A", "tiny", 0), ("Firm B", "tiny", 1), today=TODAY)
    with serve_sandbox_in_thread(sandbox) as base:
        result = CliRunner().invoke(cli.app, ["advance", "--days", "10", "--url", base])
        assert result.exit_code == 0, result.output
        assert "Firm A: today is now 2026-08-29" in result.output
        assert "Firm B: today is now 2026-08-29" in result.output
        one = CliRunner().invoke(
            cli.app, ["advance", "--days", "1", "--url", base, "--tenant", "Firm B"]
        )
        assert one.exit_code == 0 and "Firm A" not in one.output
        missing = CliRunner().invoke(cli.app, ["advance", "--url", base, "--tenant", "Nobody"])
        assert missing.exit_code == 1
    assert sandbox.tenant("Firm B").firm.today.isoformat() == "2026-08-30"
