"""The `reckonry` command."""

import asyncio
import logging
from uuid import UUID

import typer
import uvicorn

from app import event_loops
from app.api.app import create_app
from app.db import create_engine, create_sessionmaker
from app.embedded import EmbeddedServersNotInstalledError, ServiceUrls, resolve_service_urls
from app.migrations import upgrade_to_head
from app.observability import configure_logging
from app.sandbox.cli import sandbox_advance_command, sandbox_command
from app.settings import Settings, get_settings
from app.sync.rebuild import rebuild_from_raw
from app.tenancy.cli import create_operator, reencrypt_credentials
from app.worker import create_worker, tune_worker_process

cli = typer.Typer(
    help="Reckonry: per-client profit, cost and unbilled work for firms on Karbon.",
    no_args_is_help=True,
)
logger = logging.getLogger("reckonry")


def _prepare() -> tuple[Settings, ServiceUrls]:
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        return settings, resolve_service_urls(settings)
    except EmbeddedServersNotInstalledError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(1) from None


def _uvicorn_server(settings: Settings, urls: ServiceUrls) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings, urls),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        proxy_headers=True,
    )
    return uvicorn.Server(config)


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
    _, urls = _prepare()
    upgrade_to_head(urls.database_url)
    typer.echo("Database is at the latest migration.")


@cli.command()
def api() -> None:
    """Serve the JSON API (production: scale out behind a load balancer)."""
    settings, urls = _prepare()
    _announce(settings, urls)
    _uvicorn_server(settings, urls).run()


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
        worker_task.cancel()
        await background.close()


@cli.command()
def up() -> None:
    """Migrate, then run the API and a worker together (the all-in-one start)."""
    settings, urls = _prepare()
    upgrade_to_head(urls.database_url)
    _announce(settings, urls)
    event_loops.run(_serve_all(settings, urls))


@cli.command("create-operator")
def create_operator_command(
    email: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create a platform operator (sees /api/v1/ops/* across firms, no firm's data)."""
    _prepare()
    user_id = create_operator(email, password)
    typer.echo(f"Operator {email} created ({user_id}).")


@cli.command("reencrypt-credentials")
def reencrypt_credentials_command() -> None:
    """Re-encrypt stored Karbon keys with the newest RECKONRY_ENCRYPTION_KEYS key."""
    _prepare()
    count = reencrypt_credentials()
    typer.echo(f"Re-encrypted the Karbon keys of {count} firm(s).")


async def _demo(settings: Settings, urls: ServiceUrls, size: str) -> None:
    from rich.console import Console

    from app.reports.demo import PASSWORD, run_demo
    from app.sandbox.server import serve_sandbox_in_thread
    from app.sandbox.state import Sandbox

    console = Console()
    sandbox = Sandbox.create(("Demo firm", size, 0))
    with serve_sandbox_in_thread(sandbox) as karbon_url:
        settings = settings.model_copy(update={"karbon_base_url": karbon_url})
        server = _uvicorn_server(settings, urls)
        background = create_worker(settings, urls, handle_signals=False, serve_own_metrics=False)
        worker_task = asyncio.create_task(background.async_run())
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
                await asyncio.sleep(0.1)
            base = f"http://{settings.api_host}:{settings.api_port}"
            email = await run_demo(base, sandbox.tenant("Demo firm"), console)
            _announce(settings, urls)
            typer.echo(f"Demo login:        {email} / {PASSWORD}")
            typer.echo(f"Sandbox Karbon:    {karbon_url}")
            typer.echo("Serving until Ctrl-C.")
            await serving
        finally:
            worker_task.cancel()
            await background.close()


@cli.command()
def demo(
    size: str = typer.Option("tiny", help="Sandbox firm size: tiny syncs in about two minutes"),
) -> None:
    """Try Reckonry: a sandbox firm synced, costed and reported, then the API keeps running."""
    settings, urls = _prepare()
    upgrade_to_head(urls.database_url)
    typer.echo(
        f"Starting a sandbox Karbon with a {size} firm; its first sync runs at Karbon's rate "
        "limit (about two minutes for tiny)."
    )
    event_loops.run(_demo(settings, urls, size))


@cli.command()
def report(
    name: str = typer.Argument("client-profitability", help="client-profitability or summary"),
    tenant: str = typer.Option(..., help="E-mail of a user of the firm"),
) -> None:
    """Print a report for a configured firm as a table."""
    from rich.console import Console

    from app.reports.demo import profitability_table, tenant_report

    _, urls = _prepare()
    body = asyncio.run(tenant_report(urls.database_url, tenant, name))
    console = Console()
    if name == "summary":
        console.print_json(data=body)
    else:
        console.print(profitability_table(body))


@cli.command()
def rebuild(tenant_id: str = typer.Argument(..., help="The firm's tenant id")) -> None:
    """Re-derive a firm's normalized Karbon tables from the stored raw responses (no network)."""
    _, urls = _prepare()

    async def run() -> None:
        engine = create_engine(urls.database_url, pool_size=2)
        try:
            summary = await rebuild_from_raw(create_sessionmaker(engine), UUID(tenant_id))
        finally:
            await engine.dispose()
        typer.echo(
            f"Rebuilt {summary.records} records from {summary.pages} stored pages "
            f"({summary.rejected} rejected): {summary.by_stream}"
        )

    asyncio.run(run())


cli.command("sandbox")(sandbox_command)
cli.command("sandbox-advance")(sandbox_advance_command)


def main() -> None:
    cli()
