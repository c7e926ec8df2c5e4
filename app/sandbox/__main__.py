"""``python -m app.sandbox serve --size medium --port 8900`` / ``... advance --days 7``."""

from app.sandbox.cli import main

main()
