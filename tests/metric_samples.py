"""Reading the process's Prometheus metrics in tests. They are process-global and other
tests move them too: assert on what changed across the code under test, not on totals."""

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """A sample's current value; 0 for a labelled series not yet created."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every series of a sample, keyed by its sorted labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for metric in REGISTRY.collect()
        for s in metric.samples
        if s.name == name
    }
