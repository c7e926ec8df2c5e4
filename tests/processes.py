"""Running the product as a separate process: a free port, and serving until /readyz is 200."""

import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sandbox.process import ExitedEarlyError, answers_ok
from sandbox.process import free_port as free_port


def wait_until_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until GET /readyz answers 200; fails with the process's output if it exits first."""
    try:
        ready = answers_ok(f"{base}/readyz", process, timeout)
    except ExitedEarlyError:
        output = process.stdout.read().decode() if process.stdout else ""
        raise AssertionError(f"{process.args} exited early:\n{output}") from None
    assert ready, f"{process.args} did not become ready within {timeout:.0f} s"


@contextmanager
def serving(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Iterator[str]:
    """The API's base URL once `command` (serving on a free port) is ready; stopped after."""
    with serving_process(command, cwd=cwd, env=env, stop_signal=stop_signal) as (base, _):
        yield base


@contextmanager
def serving_process(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stop_signal: signal.Signals = signal.SIGTERM,
    ready_within: float = 60,
) -> Iterator[tuple[str, int]]:
    """`serving`, with the process id of `command`."""
    port = free_port()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, "RECKONRY_API_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, ready_within)
        yield base, process.pid
    finally:
        process.send_signal(stop_signal)
        process.wait(timeout=30)
