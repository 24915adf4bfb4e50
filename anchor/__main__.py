"""`python -m anchor`: the same as the `anchor` command."""

from anchor.cli import run

run()
