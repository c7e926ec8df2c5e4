"""``reckonry sandbox``: prints each tenant's keys, then serves (uvicorn stubbed out here)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
import uvicorn
from typer.testing import CliRunner

from app.sandbox import cli
from app.sandbox.state import make_access_key, make_bearer_token


def test_sandbox_command_prints_keys_and_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        served.update(kw, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    host = typer.Typer()
    host.command("sandbox")(cli.sandbox_command)  # how app/cli.py mounts it
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
    result = CliRunner().invoke(cli.app, ["--size", "huge"])
    assert result.exit_code != 0
