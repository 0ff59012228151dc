"""`python -m aggregator` is the same as the `aggregator` command."""

from .cli import run

run()
