"""`python -m metagen`."""

from metagen.client import main

main()
