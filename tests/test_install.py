"""The production install path: the built wheel in a fresh virtual environment.

`.ci/install-wheel` is what the Dockerfile runs; this runs it too, then uses the installed
`reckonry` from a directory that holds no project files, as the image does.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from app.embedded import ServiceUrls
from tests.processes import serving
from tests.services import scratch_database

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of a virtual environment holding only the wheel and its pins."""
    if shutil.which("uv") is None:
        pytest.fail("uv is needed to build and install the wheel (pip install uv)")
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run(
        [str(REPO_ROOT / ".ci" / "install-wheel"), str(venv), sys.executable],
        check=True,
        capture_output=True,
    )
    return venv / "bin"


def _clean_environment(workdir: Path, **settings: str) -> dict[str, str]:
    """Nothing from the developer's shell but PATH: no project, no `.env`, no services."""
    return {"PATH": os.environ["PATH"], "HOME": str(workdir), **settings}


def _run_bare(installed: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """An installed program (`reckonry`, `python`) run with nothing of the developer's shell."""
    return subprocess.run(
        [str(installed / args[0]), *args[1:]],
        cwd=workdir,
        env=_clean_environment(workdir),
        capture_output=True,
        text=True,
    )


def test_without_servers_or_embedded_extra_says_what_to_do(installed: Path, tmp_path: Path) -> None:
    result = _run_bare(installed, tmp_path, "reckonry", "migrate")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: DATABASE_URL is not set and the embedded servers are not installed: "
        "set DATABASE_URL and REDIS_URL, or install reckonry[embedded]"
    ]


def _migrate_then_check_ready(installed: Path, workdir: Path, env: dict[str, str]) -> int:
    migrate = subprocess.run(
        [str(installed / "reckonry"), "migrate"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    with serving([str(installed / "reckonry"), "api"], cwd=workdir, env=env) as base:
        return httpx.get(f"{base}/readyz").status_code


async def test_installed_wheel_migrates_and_serves_ready_in_production(
    installed: Path, server_urls: ServiceUrls, tmp_path: Path
) -> None:
    async with scratch_database(server_urls.database_url, migrate=False) as database_url:
        env = _clean_environment(
            tmp_path,
            RECKONRY_ENV="production",
            RECKONRY_SECRET_KEY="install-test-signing-key-" + "x" * 32,
            RECKONRY_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            RECKONRY_REDIS_PREFIX=f"reckonry-install-{uuid.uuid4().hex[:8]}",
            DATABASE_URL=database_url,
            REDIS_URL=server_urls.redis_url,
        )
        status = await asyncio.to_thread(_migrate_then_check_ready, installed, tmp_path, env)
    assert status == 200


def test_installed_wheel_has_no_sandbox_and_says_so(installed: Path, tmp_path: Path) -> None:
    """The Karbon simulator is development-only: not in the wheel, and its commands say why."""
    find_sandbox = "import importlib.util; print(importlib.util.find_spec('sandbox'))"
    spec = _run_bare(installed, tmp_path, "python", "-c", find_sandbox)
    assert spec.stdout.strip() == "None", spec.stdout + spec.stderr
    result = _run_bare(installed, tmp_path, "reckonry", "sandbox", "--size", "tiny")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: the Karbon sandbox is not installed: it comes with a development checkout "
        "(`uv sync`), not with the production package."
    ]
