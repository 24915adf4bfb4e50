"""`python -m job`: the same as the `anchor` command."""

from job.cli import run

run()
