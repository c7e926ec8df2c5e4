"""Running the sandbox on a real socket, in a background thread (for other teams' tests).

    with serve_sandbox_in_thread(sandbox) as base_url:
        httpx.get(f"{base_url}/v3/Users", headers=...)

The server binds before the context is entered (``port=0`` picks a free port), runs uvicorn with
its own event loop on a daemon thread, and shuts down cleanly on exit, also while requests are
still sleeping in an injected timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from sandbox.app import create_sandbox_app
from sandbox.state import Sandbox


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread keeps its own handlers
        pass


@contextlib.contextmanager
def serve_sandbox_in_thread(
    sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``sandbox`` on ``host:port`` for the duration of the ``with``; yields the base URL."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_sandbox_app(sandbox),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        loop="asyncio",
    )
    server = _Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run, name="karbon-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"sandbox server failed to start: {errors[:1]}")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("sandbox server did not start in time")
        time.sleep(0.01)
    shown_host = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown_host}:{actual_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        if thread.is_alive():  # pragma: no cover - a request ignored the graceful timeout
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()
