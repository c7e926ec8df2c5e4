"""The `reckonry` command."""

import asyncio
import logging

import typer
import uvicorn

from app.api.app import create_app
from app.embedded import ServiceUrls, resolve_service_urls
from app.migrations import upgrade_to_head
from app.observability import configure_logging
from app.sandbox.cli import sandbox_advance_command, sandbox_command
from app.settings import Settings, get_settings
from app.tenancy.cli import create_operator, reencrypt_credentials
from app.worker import create_worker

cli = typer.Typer(
    help="Reckonry: per-client profit, cost and unbilled work for firms on Karbon.",
    no_args_is_help=True,
)
logger = logging.getLogger("reckonry")


def _prepare() -> tuple[Settings, ServiceUrls]:
    settings = get_settings()
    configure_logging(settings.log_level)
    return settings, resolve_service_urls(settings)


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
    create_worker(settings, urls).run()


async def _serve_all(settings: Settings, urls: ServiceUrls) -> None:
    server = _uvicorn_server(settings, urls)
    background = create_worker(settings, urls, handle_signals=False)
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
    asyncio.run(_serve_all(settings, urls))


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


cli.command("sandbox")(sandbox_command)
cli.command("sandbox-advance")(sandbox_advance_command)


def main() -> None:
    cli()
