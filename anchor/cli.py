"""`anchor COMMAND ...`: dispatch to the package that runs COMMAND, which parses its own options.

    anchor render | news | demo | schema    the job program (job/)
    anchor controller | selftest            the Kubernetes operator and its `helm test` (controller/)
    anchor standin-engine                   the CPU stand-in for the VOICEVOX engine (voicevox_standin/)

A command whose package this installation lacks (the controller image has no job/, say) fails with exit 2 and
says which image or extra has it, instead of an ImportError.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from api.result import ExitCode


@dataclass(frozen=True)
class Command:
    package: str
    """The top-level package that runs it: what decides whether this installation has it."""
    entry: str
    """module:function taking the arguments after `anchor` (job) or after the command (the others)."""
    keeps_name: bool
    """Whether the entry wants the command name itself (job/cli.py parses its own sub-commands)."""
    summary: str
    provider: str
    """Where to find it when it is missing: the image and the pip extra."""


_JOB = "the anchor-job image, or `pip install anchor[job]`"
COMMANDS: dict[str, Command] = {
    "render": Command("job", "job.cli:main", True, "render and publish a NewsBroadcast (the job's entry point)", _JOB),
    "news": Command("job", "job.cli:main", True, "print the stories a feed URL or file would give", _JOB),
    "demo": Command("job", "job.cli:main", True, "render the bundled sample on the CPU stand-in engine", _JOB),
    "schema": Command("job", "job.cli:main", True, "print the NewsBroadcast spec's JSON schema", _JOB),
    "controller": Command(
        "controller",
        "controller.main:run",
        False,
        "run the Kubernetes operator (see `anchor controller --help`)",
        "the anchor-controller image, or `pip install anchor[controller]`",
    ),
    "selftest": Command(
        "controller",
        "controller.selftest:main",
        False,
        "check an installation as the controller's ServiceAccount (the chart's `helm test`)",
        "the anchor-controller image, or `pip install anchor[controller]`",
    ),
    "standin-engine": Command(
        "voicevox_standin",
        "voicevox_standin.__main__:main",
        False,
        "run the CPU stand-in for the VOICEVOX engine",
        "the anchor-voicevox-mock image, or `pip install anchor[standin]`",
    ),
}


def installed(command: Command) -> bool:
    return importlib.util.find_spec(command.package) is not None


def usage() -> str:
    lines = ["usage: anchor COMMAND [options]", "", "anchor: a Kubernetes-native AI news anchor.", "", "commands:"]
    for name, command in COMMANDS.items():
        missing = "" if installed(command) else "  (not in this installation)"
        lines.append(f"  {name:<16}{command.summary}{missing}")
    lines += ["", "`anchor COMMAND --help` describes each one."]
    return "\n".join(lines)


def _entry(command: Command) -> Callable[[list[str]], int]:
    module, _, function = command.entry.partition(":")
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else int(ExitCode.CONFIG_ERROR)
    name = args[0]
    command = COMMANDS.get(name)
    if command is None:
        print(f"anchor: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    if not installed(command):
        print(f"anchor: {name!r} is not part of this installation; it comes with {command.provider}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    return _entry(command)(args if command.keeps_name else args[1:])


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
