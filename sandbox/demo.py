"""`reckonry demo`: a sandbox firm, synced and costed; the command prints its profitability.

Everything goes through the public API, as a new user would: sign up, connect Karbon (the
in-process sandbox), watch the sync, enter cost assumptions, read the report.
"""

import asyncio
import secrets
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from sandbox.state import Tenant

PASSWORD = "demo-password-123"
Report = dict[str, Any]


async def run_demo(base_url: str, karbon: Tenant, console: Console) -> tuple[str, Report]:
    """Returns the demo login's e-mail and the firm's client-profitability report."""
    email = f"demo-{secrets.token_hex(3)}@example.com"
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        signup = await client.post(
            "/api/v1/signup",
            json={"firm_name": karbon.firm.name, "email": email, "password": PASSWORD},
        )
        signup.raise_for_status()
        client.headers["Authorization"] = f"Bearer {signup.json()['access_token']}"
        connected = await client.put(
            "/api/v1/karbon/credentials",
            json={"access_key": karbon.access_key, "bearer_token": karbon.bearer_token},
        )
        connected.raise_for_status()
        console.print(f"Signed up [bold]{karbon.firm.name}[/] and connected the sandbox Karbon.")
        await _enter_costs(client)
        await _follow_sync(client, console)
        report = await _wait_for_report(client)
    return email, report


async def _enter_costs(client: httpx.AsyncClient) -> None:
    """Cost assumptions may be entered while the first sync runs; staff arrive early."""
    await client.put(
        "/api/v1/cost-settings",
        json={
            "overhead_rate": "0.3",
            "working_weeks_per_year": "46",
            "default_capacity_hours_per_week": "37.5",
            "recognition_policy": "billing",
        },
    )


async def _enter_compensation(client: httpx.AsyncClient) -> None:
    staff = (await client.get("/api/v1/staff")).json()["items"]
    for index, member in enumerate(staff):
        amount = Decimal(55_000 + 12_500 * (index % 6))
        await client.put(
            f"/api/v1/staff/{member['key']}/cost",
            json={"effective_from": "2020-01-01", "annual_amount": str(amount)},
        )


async def _follow_sync(client: httpx.AsyncClient, console: Console) -> None:
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("{task.fields[note]}"), console=console) as progress:
        tasks: dict[str, TaskID] = {}
        while True:
            status = (await client.get("/api/v1/sync")).json()
            run = status["current"] or status["last"]
            if run is not None:
                _show(progress, tasks, run)
            if status["current"] is None and status["last"] is not None:
                break
            await asyncio.sleep(1)
    await _enter_compensation(client)


def _show(progress: Progress, tasks: dict[str, TaskID], run: dict[str, Any]) -> None:
    for stream in run["streams"]:
        name = stream["name"]
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=None, note="")
        done = stream["pages_done"]
        total = stream["pages_total"] or (done if stream["state"] == "done" else None)
        note = f"{stream['records']} records, {stream['requests']} requests"
        progress.update(tasks[name], completed=done, total=total, note=note)


async def _wait_for_report(client: httpx.AsyncClient) -> Report:
    """The refresh after the last change of compensation lands a moment later."""
    staff = (await client.get("/api/v1/staff")).json()["items"]
    for _ in range(120):
        report: Report = (
            await client.get(
                "/api/v1/reports/client-profitability", params={"sort": "profit", "limit": 25}
            )
        ).json()
        missing = [w for w in report.get("warnings", []) if w["kind"] == "missing_compensation"]
        if report.get("as_of") and (not missing or not staff):
            return report
        await asyncio.sleep(1)
    return report
