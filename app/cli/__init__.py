"""The `reckonry` command."""

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import Annotated, Any
from uuid import UUID

import typer
import uvicorn
from arq.worker import Worker
from fastapi import FastAPI

from app import __version__, event_loops
from app.api.app import create_app
from app.cli import tables
from app.cli.errors import CliError, UserErrorGroup
from app.cli.firms import delete_firm
from app.cli.reports import ReportName, ReportRequest, firm_report
from app.db import create_engine, create_sessionmaker
from app.embedded import (
    ServiceUrls,
    resolve_database_url,
    resolve_service_urls,
    running_embedded,
    stop_embedded,
)
from app.migrations import upgrade_to_head
from app.models import SubscriptionStatus
from app.observability import configure_logging
from app.secrets import resolve_secrets
from app.settings import Settings, get_settings
from app.sync import connection
from app.sync.rebuild import rebuild_from_raw
from app.tenancy.cli import create_operator, extend_trial, in_unit_of_work, set_plan
from app.worker import create_worker, tune_worker_process


class _ReckonryGroup(UserErrorGroup):
    """Every command ends by stopping the embedded servers it started (if no one else uses them)."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click's Context privately
        started_before = running_embedded()
        try:
            return super().invoke(ctx)
        finally:
            stop_embedded(keep=started_before)


cli = typer.Typer(
    cls=_ReckonryGroup,
    help="Reckonry: per-client profit, cost and unbilled work for firms on Karbon.",
    no_args_is_help=True,
)
logger = logging.getLogger("reckonry")

Host = Annotated[
    str | None,
    typer.Option(help="Interface to listen on  [default: RECKONRY_API_HOST, else 127.0.0.1]"),
]
Port = Annotated[
    int | None,
    typer.Option(
        min=1, max=65535, help="Port to listen on  [default: RECKONRY_API_PORT, else 8000]"
    ),
]

Workers = Annotated[
    int,
    typer.Option(
        min=1,
        help="API processes serving the one port (production: about one per core); each "
        "opens its own database and Redis connections",
    ),
]


SANDBOX_MISSING = (
    "the Karbon sandbox is not installed: it comes with a development checkout (`uv sync`), "
    "not with the production package."
)
# `reckonry sandbox ...` hands every argument, `--help` included, to the simulator's command.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _sandbox(module: str) -> ModuleType:
    """A module of the Karbon simulator (development only), imported when a command needs it."""
    try:
        return importlib.import_module(f"sandbox.{module}")
    except ModuleNotFoundError as error:
        if error.name in ("sandbox", f"sandbox.{module}"):
            raise CliError(SANDBOX_MISSING) from None
        raise


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"reckonry {__version__}")
        raise typer.Exit()


@cli.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Reckonry: per-client profit, cost and unbilled work for firms on Karbon."""


def _settings(host: str | None = None, port: int | None = None) -> Settings:
    """The settings (`--host/--port` win over the environment), with logging configured."""
    listen = {"api_host": host, "api_port": port}
    settings = get_settings().model_copy(update={k: v for k, v in listen.items() if v is not None})
    configure_logging(settings.log_level)
    return settings


def _prepare(host: str | None = None, port: int | None = None) -> tuple[Settings, ServiceUrls]:
    settings = _settings(host, port)
    return settings, resolve_service_urls(settings)


class _Server(uvicorn.Server):
    """Stops on SIGINT/SIGTERM as uvicorn does, then returns instead of raising the signal
    again, so the command can stop the worker and the embedded servers and exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


KEEP_ALIVE_SECONDS = 75
"""Longer than load balancers keep an idle connection (60 s for most), so they close it and
not the server: a request sent as the server closes the connection fails. uvicorn's 5 s also
dropped the connections of people reading a report for a few seconds."""


def _server_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,
        "proxy_headers": True,
        "forwarded_allow_ips": list(settings.trusted_proxies),
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }


def _uvicorn_server(settings: Settings, urls: ServiceUrls) -> uvicorn.Server:
    return _Server(uvicorn.Config(create_app(settings, urls), **_server_options(settings)))


def _announce(settings: Settings, urls: ServiceUrls) -> None:
    base = f"http://{settings.api_host}:{settings.api_port}"
    embedded = []
    if settings.database_url is None:
        embedded.append("PostgreSQL")
    if settings.redis_url is None:
        embedded.append("Redis")
    where = f"embedded {' and '.join(embedded)} under {settings.data_dir}" if embedded else ""
    typer.echo(f"Reckonry API:      {base}")
    typer.echo(f"Interactive docs:  {base}/docs")
    typer.echo(f"OpenAPI spec:      {base}/openapi.json")
    if where:
        typer.echo(f"Data:              {where}")


@cli.command()
def migrate() -> None:
    """Apply database migrations up to the latest revision."""
    upgrade_to_head(resolve_database_url(_settings()))
    typer.echo("Database is at the latest migration.")


@cli.command()
def api(host: Host = None, port: Port = None, workers: Workers = 1) -> None:
    """Serve the JSON API (production: scale out behind a load balancer)."""
    settings, urls = _prepare(host, port)
    _announce(settings, urls)
    if workers == 1:
        _uvicorn_server(settings, urls).run()
        return
    # Each process builds its app from the environment: the servers resolved here (embedded
    # ones included) are handed to them there.
    os.environ.update({"DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url})
    uvicorn.run(
        f"{__name__}:api_process", factory=True, workers=workers, **_server_options(settings)
    )


def api_process() -> FastAPI:
    """The app one process of `reckonry api --workers N` serves."""
    settings = _settings()
    return create_app(settings, resolve_service_urls(settings))


@cli.command()
def worker() -> None:
    """Run a background worker (syncs and schedules)."""
    settings, urls = _prepare()
    tune_worker_process()
    asyncio.set_event_loop(event_loops.new_event_loop())  # arq runs on the current loop
    create_worker(settings, urls).run()


async def _serve_all(settings: Settings, urls: ServiceUrls) -> None:
    server = _uvicorn_server(settings, urls)
    background = create_worker(settings, urls, handle_signals=False, serve_own_metrics=False)
    worker_task = asyncio.create_task(background.async_run())
    try:
        await server.serve()
    finally:
        await _stop_worker(background, worker_task)


async def _stop_worker(background: Worker, worker_task: "asyncio.Task[None]") -> None:
    """Stop an in-process worker, cancelling the jobs it runs (a sync resumes from its
    checkpoint). arq's `close` cancels them and then gathers them without
    `return_exceptions`, so a job still running made it raise CancelledError and the command
    exit 1; they are gathered here first, and arq's close only closes."""
    worker_task.cancel()
    background.handle_sig(signal.SIGUSR1)
    await asyncio.gather(worker_task, *background.tasks.values(), return_exceptions=True)
    background.tasks.clear()
    await background.close()


@cli.command()
def up(host: Host = None, port: Port = None) -> None:
    """Migrate, then run the API and a worker together (the all-in-one start)."""
    settings, urls = _prepare(host, port)
    upgrade_to_head(urls.database_url)
    _announce(settings, urls)
    event_loops.run(_serve_all(settings, urls))


@cli.command("create-operator")
def create_operator_command(
    email: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create a platform operator (sees /api/v1/ops/* across firms, no firm's data)."""
    _settings()
    user_id = create_operator(email, password)
    typer.echo(f"Operator {email} created ({user_id}).")


@cli.command("set-plan")
def set_plan_command(
    tenant_id: Annotated[UUID, typer.Argument(help="The firm's tenant id")],
    status: Annotated[SubscriptionStatus, typer.Argument(help="The plan to set")],
) -> None:
    """Set a firm's plan, e.g. `active` for a firm paying by invoice (its data is untouched)."""
    _settings()
    typer.echo(f"Firm {tenant_id} is now {set_plan(tenant_id, status.value)}.")


@cli.command("extend-trial")
def extend_trial_command(
    tenant_id: Annotated[UUID, typer.Argument(help="The firm's tenant id")],
    days: Annotated[int, typer.Option(min=1, max=365, help="Days added to the trial's end")],
) -> None:
    """Extend a firm's trial by some days (from now, if it has already ended)."""
    _settings()
    ends = extend_trial(tenant_id, days)
    typer.echo(f"Firm {tenant_id}'s trial now ends {ends:%Y-%m-%d %H:%M} UTC.")


@cli.command("reencrypt-credentials")
def reencrypt_credentials_command() -> None:
    """Re-encrypt stored Karbon keys with the newest RECKONRY_ENCRYPTION_KEYS key."""
    settings = _settings()
    secrets = resolve_secrets(settings)
    count = asyncio.run(
        in_unit_of_work(
            settings, lambda session: connection.reencrypt_credentials(session, secrets)
        )
    )
    typer.echo(f"Re-encrypted the Karbon keys of {count} firm(s).")


async def _demo(settings: Settings, urls: ServiceUrls, size: str) -> None:
    from rich.console import Console

    sandbox = _sandbox("state").Sandbox.create(("Demo firm", size, 0))
    with _sandbox("server").serve_sandbox_in_thread(sandbox) as karbon_url:
        settings = settings.model_copy(update={"karbon_base_url": karbon_url})
        server = _uvicorn_server(settings, urls)
        background = create_worker(settings, urls, handle_signals=False, serve_own_metrics=False)
        worker_task = asyncio.create_task(background.async_run())
        serving = asyncio.create_task(server.serve())
        shown = asyncio.create_task(_show_demo(settings, urls, server, serving, sandbox, Console()))
        shown.add_done_callback(lambda task: _stop_on_failure(task, server))
        try:
            await serving  # until Ctrl-C or SIGTERM
        finally:
            shown.cancel()
            await _stop_worker(background, worker_task)
        if not shown.cancelled() and shown.exception() is not None:
            raise shown.exception()  # type: ignore[misc]


async def _show_demo(
    settings: Settings,
    urls: ServiceUrls,
    server: uvicorn.Server,
    serving: "asyncio.Task[None]",
    sandbox: Any,
    console: Any,
) -> None:
    demo = _sandbox("demo")
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has only a flag
        await asyncio.sleep(0.1)
    if serving.done():
        return
    base = f"http://{settings.api_host}:{settings.api_port}"
    email, report = await demo.run_demo(base, sandbox.tenant("Demo firm"), console)
    console.print(tables.profitability(report))
    _announce(settings, urls)
    typer.echo(f"Demo login:        {email} / {demo.PASSWORD}")
    typer.echo(f"Report again:      reckonry report summary --tenant {email}")
    typer.echo("Serving until Ctrl-C.")


def _stop_on_failure(task: "asyncio.Task[None]", server: uvicorn.Server) -> None:
    """A demo that fails stops the server, so its error shows instead of a silent wait."""
    if not task.cancelled() and task.exception() is not None:
        server.should_exit = True


def _log_to_file(path: Path) -> None:
    """Log lines would break the progress bars: the demo's logs go to a file instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", encoding="utf-8")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


@cli.command()
def demo(
    size: str = typer.Option("tiny", help="Sandbox firm size: tiny syncs in about two minutes"),
    host: Host = None,
    port: Port = None,
) -> None:
    """Try Reckonry: a sandbox firm synced, costed and reported, then the API keeps running."""
    sizes = _sandbox("generator").SIZES
    if size not in sizes:
        raise typer.BadParameter(f"choose one of {', '.join(sizes)}", param_hint="--size")
    settings = _settings(host, port)
    log_file = settings.data_dir / "demo.log"
    _log_to_file(log_file)
    urls = resolve_service_urls(settings)
    upgrade_to_head(urls.database_url)
    typer.echo(
        f"Starting a sandbox Karbon with a {size} firm; its first sync runs at Karbon's rate "
        f"limit (about two minutes for tiny). Logs go to {log_file}."
    )
    event_loops.run(_demo(settings, urls, size))


def _day(value: datetime | None) -> Any:
    return value.date() if value else None


@cli.command()
def report(
    name: Annotated[ReportName, typer.Argument(help="Which report")],
    tenant: Annotated[str, typer.Option(help="E-mail of a member of the firm")],
    client: Annotated[
        str | None, typer.Option(help="The client's Karbon key (for `client`)")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day (default: 364 days before)"),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (default: the last sync)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Rows to show")] = 50,
) -> None:
    """Print a firm's report as a table: client-profitability, monthly (its monthly series),
    summary, unbilled-work, staff-utilization, or client (one client's breakdown, --client)."""
    from rich.console import Console

    request = ReportRequest(name, tenant, client, _day(start), _day(end), limit)
    database_url = resolve_database_url(_settings())
    Console().print(asyncio.run(firm_report(database_url, request)))


@cli.command()
def rebuild(tenant_id: Annotated[UUID, typer.Argument(help="The firm's tenant id")]) -> None:
    """Re-derive a firm's normalized Karbon tables from the raw JSON they keep (no network)."""
    from app.models import Tenant

    database_url = resolve_database_url(_settings())

    async def run() -> None:
        engine = create_engine(database_url, pool_size=2)
        try:
            sessions = create_sessionmaker(engine)
            async with sessions() as session:
                if await session.get(Tenant, tenant_id) is None:
                    raise CliError(f"no firm has the tenant id {tenant_id}.")
            summary = await rebuild_from_raw(sessions, tenant_id)
        finally:
            await engine.dispose()
        typer.echo(
            f"Rebuilt {summary.records} records from their stored raw JSON "
            f"({summary.rejected} rejected): {summary.by_stream}"
        )

    asyncio.run(run())


@cli.command("delete-firm")
def delete_firm_command(
    tenant_id: Annotated[UUID, typer.Argument(help="The firm's tenant id")],
    confirm: Annotated[
        str, typer.Option(prompt="Type the firm's exact name to delete it and all its data")
    ],
) -> None:
    """Delete a firm and ALL its data (people, Karbon keys, synced data, reports); cancels its
    sync first. Cannot be undone; disconnecting Karbon keeps the data instead."""
    settings, urls = _prepare()
    name = asyncio.run(delete_firm(settings, urls, tenant_id, confirm))
    typer.echo(f"Deleted the firm {name!r} ({tenant_id}) and all its data.")


def _run_sandbox_command(ctx: typer.Context, name: str) -> None:
    command = typer.Typer(add_completion=False)
    command.command()(getattr(_sandbox("cli"), name))
    command(ctx.args, prog_name=ctx.command_path)


@cli.command("sandbox", context_settings=_PASS_THROUGH, add_help_option=False)
def sandbox(ctx: typer.Context) -> None:
    """Serve a Karbon sandbox and print each tenant's AccessKey and Bearer token."""
    _run_sandbox_command(ctx, "sandbox_command")


@cli.command("sandbox-advance", context_settings=_PASS_THROUGH, add_help_option=False)
def sandbox_advance(ctx: typer.Context) -> None:
    """Advance a running sandbox's firm(s) by N days."""
    _run_sandbox_command(ctx, "sandbox_advance_command")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends any command like Ctrl-C does, so its embedded servers are stopped."""
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cli()
