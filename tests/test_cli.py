"""The `reckonry` command: version, options, and one-line errors instead of tracebacks."""

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from uuid import uuid4

import httpx
from cryptography.fernet import Fernet

from app.api.app import create_app
from app.embedded import ServiceUrls
from app.settings import Settings
from tests.cli_helpers import command as reckonry_command
from tests.cli_helpers import environment, invoke, run
from tests.processes import serving_process


def test_version_is_the_installed_one_in_the_cli_and_the_openapi_document(
    settings: Settings,
) -> None:
    result = invoke(["--version"], environment())
    assert result.exit_code == 0
    assert result.stdout.strip() == f"reckonry {version('reckonry')}"
    assert create_app(settings).version == version("reckonry")


def test_bad_settings_print_one_line_each_naming_the_variable(tmp_path: Path) -> None:
    env = environment(
        RECKONRY_API_PORT="abc", KARBON_REQUESTS_PER_SECOND="5", RECKONRY_LOG_LEVEL="loud"
    )
    result = run(["migrate"], env, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    for name, hint in (
        ("RECKONRY_API_PORT", "valid integer"),
        ("KARBON_REQUESTS_PER_SECOND", "less than or equal to 2"),
        ("RECKONRY_LOG_LEVEL", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ):
        [line] = [line for line in lines if name in line]
        assert line.startswith("Error: ") and hint in line
        assert f"Fix {name} in the environment or .env" in line


def test_a_secret_setting_is_named_but_not_echoed() -> None:
    result = invoke(["migrate"], environment(RECKONRY_SECRET_KEY="too-short-secret"))
    assert result.exit_code == 2
    assert "RECKONRY_SECRET_KEY" in result.stderr
    assert "too-short-secret" not in result.stderr


def test_a_port_out_of_range_is_refused_before_anything_starts() -> None:
    for command in ("up", "api", "demo"):
        result = invoke([command, "--port", "70000"], environment())
        assert result.exit_code == 2, command
        assert "--port" in result.stderr and "65535" in result.stderr


def test_an_unknown_report_lists_the_valid_ones() -> None:
    result = invoke(["report", "profit", "--tenant", "a@example.com"], environment())
    assert result.exit_code == 2
    for name in ("client-profitability", "monthly", "summary", "unbilled-work", "client"):
        assert name in result.stderr


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = environment(DATABASE_URL="postgresql://postgres@127.0.0.1:1/postgres")
    result = run(["migrate"], env, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: cannot reach the database") and "DATABASE_URL" in (
        result.stderr
    )


def test_rebuild_of_an_unknown_firm_says_so(service_urls: ServiceUrls) -> None:
    env = environment(DATABASE_URL=service_urls.database_url, REDIS_URL=service_urls.redis_url)
    tenant_id = uuid4()
    result = invoke(["rebuild", str(tenant_id)], env)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: no firm has the tenant id {tenant_id}."
    assert invoke(["rebuild", "not-a-uuid"], env).exit_code == 2


def test_a_report_for_an_unknown_e_mail_says_so(service_urls: ServiceUrls) -> None:
    env = environment(DATABASE_URL=service_urls.database_url, REDIS_URL=service_urls.redis_url)
    result = invoke(["report", "summary", "--tenant", "nobody@example.com"], env)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no user signs in with nobody@example.com")


def test_the_command_starts_without_importing_the_sandbox(tmp_path: Path) -> None:
    """The simulator is development-only: the production command must not need it."""
    sandbox_modules = "sorted(m for m in sys.modules if m.partition('.')[0] == 'sandbox')"
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, app.cli; print({sandbox_modules})"],
        env=environment(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_api_serves_from_as_many_processes_as_workers(
    tmp_path: Path, service_urls: ServiceUrls
) -> None:
    env = environment(
        DATABASE_URL=service_urls.database_url,
        REDIS_URL=service_urls.redis_url,
        RECKONRY_ENV="production",
        RECKONRY_SECRET_KEY="workers-test-signing-key-" + "w" * 32,
        RECKONRY_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    api = reckonry_command("api", "--workers", "3")
    # Each process imports the whole app: minutes on a machine as busy as CI's can be.
    with serving_process(api, cwd=tmp_path, env=env, ready_within=240) as (base, pid):
        answers = [httpx.get(f"{base}/readyz", timeout=10) for _ in range(5)]
        serving_pids = _children(pid)
    assert [answer.status_code for answer in answers] == [200] * 5
    assert len(serving_pids) >= 3, serving_pids


def test_workers_must_be_at_least_one() -> None:
    result = invoke(["api", "--workers", "0"], environment())
    assert result.exit_code == 2
    assert "--workers" in result.stderr
