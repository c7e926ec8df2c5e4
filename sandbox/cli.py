"""``reckonry sandbox``: serve a simulated Karbon tenant (or several) until Ctrl-C, and move a
running sandbox's firms forward in time.

The main CLI mounts ``app.command("sandbox")(sandbox_command)`` (and, if it wants,
``app.command("sandbox-advance")(sandbox_advance_command)``). Standalone::

    python -m sandbox serve --size medium --port 8900
    python -m sandbox advance --days 7 --url http://127.0.0.1:8900
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import httpx
import typer
import uvicorn

from sandbox.app import create_sandbox_app
from sandbox.generator import SIZES
from sandbox.state import LatencyConfig, Sandbox, SandboxConfig


def sandbox_command(
    size: Annotated[str, typer.Option(help=f"Firm size: {', '.join(SIZES)}.")] = "small",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    host: Annotated[
        str, typer.Option(help="Interface to bind (admin API has no auth).")
    ] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed: same seed, same firm and keys.")] = 0,
    tenants: Annotated[
        int, typer.Option(min=1, help="Number of tenants (seeds seed, seed+1, ...).")
    ] = 1,
    today: Annotated[
        str | None, typer.Option(help="The firm's 'today' (YYYY-MM-DD); default: the current date.")
    ] = None,
    latency: Annotated[
        str, typer.Option(help="Latency distribution: lognormal, constant, uniform or none.")
    ] = "lognormal",
    latency_median: Annotated[float, typer.Option(help="Median latency in seconds.")] = 0.5,
    latency_sigma: Annotated[float, typer.Option(help="Log-normal sigma.")] = 0.5,
    rate_limit: Annotated[
        bool, typer.Option(help="Enforce 120 requests/minute per tenant.")
    ] = True,
    invoice_list_line_items: Annotated[
        bool,
        typer.Option(help="Let /v3/Invoices honour $expand=LineItems (the product page's claim)."),
    ] = False,
    page_size: Annotated[int, typer.Option(min=1, max=100, help="Server page size.")] = 100,
    messy: Annotated[
        bool,
        typer.Option(
            help="Serve what Karbon's spec allows and tidy data never shows: unknown statuses "
            "and line types, null BilledStatus and Client, owners as UserKeys."
        ),
    ] = False,
) -> None:
    """Serve a Karbon sandbox and print each tenant's AccessKey and Bearer token."""
    if size not in SIZES:
        raise typer.BadParameter(f"choose one of {', '.join(SIZES)}", param_hint="--size")
    config = SandboxConfig(
        latency=LatencyConfig(
            distribution=latency, median_seconds=latency_median, sigma=latency_sigma
        ),
        rate_limit_enabled=rate_limit,
        invoice_list_includes_line_items=invoice_list_line_items,
        max_page_size=page_size,
    )
    day = date.fromisoformat(today) if today else None
    typer.echo(f"Generating {tenants} {size} firm(s)...")
    specs = [
        (f"Demo firm {i + 1}" if tenants > 1 else "Demo firm", size, seed + i)
        for i in range(tenants)
    ]
    sandbox = Sandbox.create(*specs, config=config, today=day, messy=messy)
    base = f"http://{host}:{port}"
    typer.echo(
        f"Karbon sandbox on {base}  (admin: {base}/_sandbox/tenants, docs: {base}/_sandbox/docs)"
    )
    for t in sandbox.tenants.values():
        counts = t.firm.counts()
        typer.echo("")
        typer.echo(
            f"  Tenant:        {t.name} - {t.firm.name} ({size}, seed {t.firm.seed}, today "
            f"{t.firm.today})"
        )
        typer.echo(f"  AccessKey:     {t.access_key}")
        typer.echo(f"  Bearer token:  {t.bearer_token}")
        typer.echo(
            f"  Records:       {counts['users']} users, {counts['contacts']} contacts, "
            f"{counts['organizations']} organizations, {counts['work_items']} work items, "
            f"{counts['timesheets']} timesheets, {counts['invoices']} invoices"
        )
    typer.echo("\nCtrl-C to stop.")
    uvicorn.run(
        create_sandbox_app(sandbox),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


def sandbox_advance_command(
    days: Annotated[int, typer.Option(min=0, help="Days to move the firm forward.")] = 1,
    url: Annotated[
        str, typer.Option(help="Base URL of the running sandbox.")
    ] = "http://127.0.0.1:8900",
    tenant: Annotated[
        str | None, typer.Option(help="Tenant name (see /_sandbox/tenants); default: all.")
    ] = None,
) -> None:
    """Advance a running sandbox's firm(s) by N days: new time, invoices approved, sent, paid or
    voided, work completed, clients edited, records deleted."""
    base = url.rstrip("/")
    with httpx.Client(timeout=600) as client:
        names = (
            [tenant]
            if tenant
            else [t["name"] for t in client.get(f"{base}/_sandbox/tenants").json()]
        )
        for name in names:
            r = client.post(f"{base}/_sandbox/tenants/{name}/advance", json={"days": days})
            if r.status_code != 200:
                typer.echo(f"{name}: {r.status_code} {r.text}", err=True)
                raise typer.Exit(1)
            body = r.json()
            changes = ", ".join(f"{k} {v}" for k, v in body["changes"].items()) or "no changes"
            typer.echo(f"{name}: today is now {body['today']}; {changes}")


app = typer.Typer(add_completion=False, help=__doc__)
app.command("serve")(sandbox_command)
app.command("advance")(sandbox_advance_command)


def main() -> None:
    app()
