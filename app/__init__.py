"""Reckonry: per-client profit, cost and unbilled work for firms on Karbon."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reckonry")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
