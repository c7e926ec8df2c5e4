"""``python -m app.sandbox --size medium --port 8900``."""

from app.sandbox.cli import main

main()
