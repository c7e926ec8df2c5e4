"""Bad input: whatever a client sends, the API answers within its OpenAPI document.

Schemathesis generates requests from the served document (examples, the edge cases of every
parameter's schema, random valid and invalid data, and sequences following the document's
links) for every operation, signed in as a firm's admin, as an integrator key with every
scope, as a platform operator and as no one, against the app on a real socket over a real
PostgreSQL and Redis, with a sandbox firm synced so reports have rows. Every response is
checked: no 5xx, and its status, content type, headers and body as the document declares.
The app runs in the proof's process, so a query SQLAlchemy warns of (a cartesian product that
input reached) fails the proof too.
"""

import asyncio
import json
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.exc import SAWarning

from app.api.app import create_app
from app.tenancy.cli import create_operator
from proofs import Outcome, Proof
from proofs._world import (
    Scratch,
    sandbox_of,
    sandbox_served,
    scratch_services,
    served,
    sync_sandbox_firms,
)
from sandbox.state import Sandbox

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")
FAST_PHASES = ("examples", "fuzzing", "stateful")
"""The coverage phase's edge cases of every parameter take minutes; the long run has them."""
LONG_EXAMPLES = 100
LONG_SECONDS_PER_CALLER = 300
"""Fuzzing and sequences stop here even if examples are left (hours on a busy machine)."""
PASSWORD = "correct horse battery staple"
SIGN_OUT = ("/api/v1/auth/logout", "/api/v1/me/password")
"""Operations that end the caller's sign-in: a caller of its own, so the others keep theirs."""


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    exclude_paths: tuple[str, ...] = ()
    include_paths: tuple[str, ...] = ()
    sequences: bool = True
    """Whether its operations have links to follow (the stateful phase)."""


@dataclass
class Run:
    """What schemathesis reported of one caller's run."""

    caller: str
    operations: int
    test_cases: int
    server_errors: int
    outside_spec: int
    failures: list[str]


async def _callers(
    client: httpx.AsyncClient, scratch: Scratch, admin: dict[str, str]
) -> list[Caller]:
    key = await client.post(
        "/api/v1/api-keys",
        headers=admin,
        json={"name": "every scope", "scopes": ["reports:read", "sync:read", "pay:read"]},
    )
    key.raise_for_status()
    settings = scratch.settings.model_copy(
        update={"database_url": scratch.urls.database_url, "redis_url": scratch.urls.redis_url}
    )
    await asyncio.to_thread(create_operator, "ops@proof.example", PASSWORD, settings)
    operator = await client.post(
        "/api/v1/auth/token", data={"username": "ops@proof.example", "password": PASSWORD}
    )
    operator.raise_for_status()
    signing_out = await client.post(
        "/api/v1/signup",
        json={"firm_name": "Signing out", "email": "out@proof.example", "password": PASSWORD},
    )
    signing_out.raise_for_status()
    return [
        Caller("admin", admin, exclude_paths=SIGN_OUT),
        Caller("api key", _bearer(key.json()["key"])),
        Caller("anonymous", {}),
        Caller(
            "signing out",
            _bearer(signing_out.json()["access_token"]),
            include_paths=SIGN_OUT,
            sequences=False,
        ),
        # Last: its links delete firms.
        Caller("operator", _bearer(operator.json()["access_token"]), exclude_paths=SIGN_OUT),
    ]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _schemathesis(base: str, caller: Caller, long: bool, report: Path) -> Run:
    """One schemathesis run as `caller`, read back from its JSON report."""
    phases = [p for p in PHASES if p in FAST_PHASES or long]
    if not caller.sequences:
        phases.remove("stateful")
    arguments = [
        "run",
        f"{base}/openapi.json",
        f"--checks={','.join(CHECKS)}",
        f"--phases={','.join(phases)}",
        f"--max-examples={LONG_EXAMPLES if long else 5}",
        "--workers=1",
        "--seed=17",
        "--no-shrink",
        "--continue-on-failure",
        "--suppress-health-check=all",
        "--request-timeout=30",
        "--report=json",
        f"--report-json-path={report}",
    ]
    if long:
        arguments.append(f"--max-time={LONG_SECONDS_PER_CALLER}")
    for name, value in caller.headers.items():
        arguments.append(f"--header={name}: {value}")
    arguments += [f"--exclude-path={path}" for path in caller.exclude_paths]
    arguments += [f"--include-path={path}" for path in caller.include_paths]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=report.parent,  # where it keeps its replay cache, headers included
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    try:
        written = await asyncio.to_thread(report.read_text)
    except FileNotFoundError:
        return Run(caller.name, 0, 0, 0, 0, [f"schemathesis wrote no report: {text[-2000:]}"])
    return _read_report(caller.name, json.loads(written), text)


def _read_report(caller: str, report: dict[str, Any], output: str) -> Run:
    found = report["failures"]
    server_errors = sum(f["count"] for f in found if f["type"] == "ServerError")
    outside = sum(f["count"] for f in found if f["type"] != "ServerError")
    failures = [
        f"as {caller}: {f['title']} ({f['count']}) in {', '.join(f['operations'])}" for f in found
    ]
    failures += [f"as {caller}: schemathesis error {error}" for error in report["errors"]]
    if failures:
        failures.append(f"as {caller}, schemathesis said:\n{_failure_details(output)}")
    return Run(
        caller,
        operations=report["operations"]["tested"],
        test_cases=report["test_cases"]["generated"],
        server_errors=server_errors,
        outside_spec=outside,
        failures=failures,
    )


def _failure_details(output: str, limit: int = 6000) -> str:
    """The FAILURES part of schemathesis's output: each failure and how to reproduce it."""
    start = output.find("FAILURES")
    end = output.find("WARNINGS", start)
    return output[start : end if end > 0 else None][:limit]


async def _run(long: bool) -> Outcome:
    overrides = {"RECKONRY_STRIPE_WEBHOOK_SECRET": "whsec_proof_" + "s" * 24}
    sandbox = sandbox_of(("Demo firm", 3))
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", SAWarning)
        runs, operations = await _run_callers(long, sandbox, overrides)
    outcome = _outcome(runs, operations)
    # The app runs in this process: a query SQLAlchemy finds suspect (a cartesian product)
    # is a defect bad input reached, even when the answer looked right.
    suspect = sorted({str(w.message) for w in warned if issubclass(w.category, SAWarning)})
    outcome.measure("queries SQLAlchemy warned of", len(suspect), "0", held=not suspect)
    outcome.failures += suspect
    return outcome


async def _run_callers(
    long: bool, sandbox: Sandbox, overrides: dict[str, str]
) -> tuple[list[Run], int]:
    async with scratch_services(**overrides) as scratch:
        (firm,) = await sync_sandbox_firms(scratch, sandbox)
        with sandbox_served(sandbox) as karbon_url:
            # Keys sent to `PUT /karbon/credentials` are checked against a reachable Karbon.
            settings = scratch.settings.model_copy(update={"karbon_base_url": karbon_url})
            app = create_app(settings, scratch.urls)
            async with served(app) as base, httpx.AsyncClient(base_url=base) as client:
                callers = await _callers(client, scratch, firm.admin)
                with tempfile.TemporaryDirectory() as reports:
                    runs = [
                        await _schemathesis(base, caller, long, Path(reports) / f"{n}.json")
                        for n, caller in enumerate(callers)
                    ]
    return runs, _operations(app.openapi())


def _operations(spec: dict[str, Any]) -> int:
    methods = {"get", "put", "post", "patch", "delete"}
    return sum(1 for item in spec["paths"].values() for method in item if method in methods)


def _outcome(runs: list[Run], operations: int) -> Outcome:
    outcome = Outcome()
    for run in runs:
        outcome.measure(
            f"as {run.caller}: operations, test cases", f"{run.operations}, {run.test_cases}"
        )
    outcome.measure("operations in the document", operations)
    outcome.measure("test cases", sum(run.test_cases for run in runs))
    server_errors = sum(run.server_errors for run in runs)
    outside = sum(run.outside_spec for run in runs)
    outcome.measure("5xx answers (unique)", server_errors, "0", held=server_errors == 0)
    outcome.measure("answers outside the document (unique)", outside, "0", held=outside == 0)
    outcome.failures += [failure for run in runs for failure in run.failures]
    return outcome


PROOF = Proof(
    name="bad_input",
    claim="Every operation, called with generated valid and invalid input by every kind of "
    "caller, answers no 5xx and nothing outside the OpenAPI document.",
    run=_run,
)
