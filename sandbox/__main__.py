"""``python -m sandbox serve --size medium --port 8900`` / ``... advance --days 7``."""

from sandbox.cli import main

main()
