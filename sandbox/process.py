"""The sandbox Karbon served by a process of its own, for benchmarks and proofs: its CPU is
not counted as the sync's, and it shares no GIL with it."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def sandbox_command(*arguments: str) -> list[str]:
    """`reckonry sandbox ARGUMENTS` run by this Python."""
    return [sys.executable, "-c", "from app.cli import main; main()", "sandbox", *arguments]


@dataclass(frozen=True)
class ServedSandbox:
    base_url: str
    pid: int


@contextmanager
def served_sandbox(
    command: Sequence[str], port: int, *, start_seconds: float = 300
) -> Iterator[ServedSandbox]:
    """Run `command` (a sandbox serving on 127.0.0.1:`port`) until it answers its health
    check; stop it on leaving (killed if it lingers: a large firm's server may)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base, process, start_seconds)
        yield ServedSandbox(base, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(base: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        answered = answers_ok(f"{base}/_sandbox/health", process, seconds)
    except ExitedEarlyError:
        raise RuntimeError(
            f"the sandbox exited with code {process.returncode} on starting"
        ) from None
    if not answered:
        raise RuntimeError(f"the sandbox did not start within {seconds:.0f} s")


class ExitedEarlyError(Exception):
    """The process being waited for exited first."""


def answers_ok(url: str, process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether GET `url` answers 200 within `seconds`, asked every 0.2 s; `ExitedEarlyError` if
    `process` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ExitedEarlyError
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False
