"""`python -m metagen`."""

from metagen.cli import main

main()
