"""The metrics module: one home for every metric, each listed in the README, none unbounded."""

import re
from pathlib import Path

from httpx import AsyncClient
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from app import metrics
from app.metrics import RecentRate

README = Path(__file__).resolve().parents[1] / "README.md"
_ROW = re.compile(r"^\| `(reckonry_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)

Listing = dict[str, tuple[str, tuple[str, ...]]]


def _defined() -> Listing:
    """Name as exposed, type and labels of every metric the module defines."""
    found: Listing = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            suffix = "_total" if metric._type == "counter" else ""
            found[metric._name + suffix] = (metric._type, tuple(metric._labelnames))
    return found


def _listed_in_readme() -> Listing:
    section = README.read_text().split("### Metrics", 1)[1].split("\n#", 1)[0]
    return {
        name: (kind, tuple(re.findall(r"`(\w+)`", labels)))
        for name, kind, labels in _ROW.findall(section)
    }


def test_the_readme_lists_every_metric_with_its_type_and_labels() -> None:
    assert _listed_in_readme() == _defined()


def test_every_reckonry_metric_is_defined_in_the_metrics_module() -> None:
    registered = {
        family.name for family in REGISTRY.collect() if family.name.startswith("reckonry_")
    }
    defined = {name.removesuffix("_total") for name in _defined()}
    assert registered == defined


def test_no_label_names_a_tenant_a_run_or_a_url() -> None:
    unbounded = {"tenant", "tenant_id", "run", "run_id", "url", "path", "key", "job_id"}
    for name, (_, labels) in _defined().items():
        assert not unbounded & set(labels), name


def test_recent_rate_counts_the_last_whole_seconds() -> None:
    now = [100.2]
    rate = RecentRate(seconds=10, clock=lambda: now[0])
    for _ in range(20):
        rate.note()
    assert rate.per_second() == 0  # the current second is still filling
    now[0] = 101.5
    rate.note()
    assert rate.per_second() == 2.0
    now[0] = 110.9
    assert rate.per_second() == 2.1  # seconds 100 and 101, within the last ten
    now[0] = 111.0
    assert rate.per_second() == 0.1  # second 100 has left the window
    now[0] = 130.0
    rate.note()
    assert rate.per_second() == 0  # stale buckets are never counted


async def test_the_api_shows_the_worker_metrics_of_its_process(client: AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name in ("reckonry_sync_runs_total", "reckonry_karbon_requests_per_second"):
        assert f"# TYPE {name.removesuffix('_total')}" in text
