"""Running `reckonry` in tests: in this process (CliRunner) or as a real subprocess."""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from typer.testing import CliRunner, Result

from app.cli import cli
from app.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent


def invoke(args: list[str], env: Mapping[str, str]) -> Result:
    """`reckonry ARGS` in this process with these settings (read afresh)."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, args, env=dict(env))
    finally:
        get_settings.cache_clear()


def environment(**changes: str | None) -> dict[str, str]:
    """This process's environment with `changes` (None: unset) and no `.env` surprises."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, value in changes.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from app.cli import main; main()", *args]


def run(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120
    )
