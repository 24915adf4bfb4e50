"""The job program's commands (anchor/cli.py hands them over): render a NewsBroadcast, debug a feed, the demo.

    anchor render BROADCAST.yaml   the job: the same YAML a user `kubectl apply`s
    anchor news SOURCE             the stories the news stage would take from a feed URL or file
    anchor demo                    the bundled sample on the CPU stand-in engine, no cluster, no S3
    anchor schema                  the NewsBroadcast spec's JSON schema

Exit codes and the result line are documented in api/result.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from api.load import SpecError, load_broadcast, parse_broadcast
from api.result import TERMINATION_MESSAGE_LIMIT, ExitCode, RunResult
from api.v1alpha1 import NewsBroadcast, spec_json_schema
from job.model import ConfigError, JobError, TransientError

if TYPE_CHECKING:  # the job's modules pull in the media stack; the controller image has only the CLI's core
    from job.progress import Reporter

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return int(ExitCode.CONFIG_ERROR)
    code: int = args.handler(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anchor", description="anchor: a Kubernetes-native AI news anchor.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    render = commands.add_parser("render", help="render and publish a NewsBroadcast (the job's entry point)")
    render.add_argument(
        "broadcast",
        type=Path,
        nargs="?",
        help="NewsBroadcast YAML (as applied with kubectl); default: the JSON in ANCHOR_BROADCAST",
    )
    _render_options(render)
    render.set_defaults(handler=_cmd_render)

    news = commands.add_parser("news", help="print the stories a feed URL or file would give")
    news.add_argument("source", help="feed URL (http/https) or a local file")
    news.add_argument("--max-items", type=int, default=10, help="most stories to show (default 10)")
    news.add_argument("--max-age-hours", type=int, default=None, help="skip older stories (default: keep all)")
    news.add_argument(
        "--allow-private",
        action="store_true",
        help="allow loopback/private addresses (e.g. a feed on localhost)",
    )
    news.add_argument("--json", action="store_true", help="print JSON instead of text")
    news.set_defaults(handler=_cmd_news)

    demo = commands.add_parser("demo", help="render the bundled sample on the CPU stand-in engine")
    demo.add_argument("--language", choices=("ja", "en"), default="ja", help="which sample (default ja)")
    _render_options(demo)
    demo.set_defaults(handler=_cmd_demo)

    schema = commands.add_parser("schema", help="print the NewsBroadcast spec's JSON schema")
    schema.set_defaults(handler=lambda _args: _print_schema())
    return parser


def _render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", help="run id (default: ANCHOR_RUN_ID, else from the scheduled/current time)")
    parser.add_argument("--out", type=Path, help="local output directory (overrides spec.output.directory)")
    parser.add_argument("--engine-url", help="VOICEVOX engine URL (overrides spec.voice.engineUrl)")
    parser.add_argument(
        "--engine-wait",
        type=float,
        default=120.0,
        help="seconds to wait for the engine to be ready (default 120)",
    )


# -- render ----------------------------------------------------------------------------------------------


def _cmd_render(args: argparse.Namespace) -> int:
    from job.progress import Reporter

    env = dict(os.environ)
    reporter = Reporter(env=env)
    try:
        if args.broadcast is not None:
            broadcast, base_dir = load_broadcast(args.broadcast), args.broadcast.resolve().parent
        elif "ANCHOR_BROADCAST" in env:
            broadcast, base_dir = _broadcast_from_env(env["ANCHOR_BROADCAST"]), None
        else:
            raise SpecError("no broadcast: give a NewsBroadcast YAML file or set ANCHOR_BROADCAST")
    except SpecError as exc:
        return _finish(reporter, _failed("unknown", "unknown", ExitCode.CONFIG_ERROR, str(exc)), env)
    return render_broadcast(broadcast, args, env, base_dir=base_dir, reporter=reporter)


def _broadcast_from_env(text: str) -> NewsBroadcast:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"ANCHOR_BROADCAST is not JSON: {exc}") from None
    return parse_broadcast(document, "ANCHOR_BROADCAST")


def render_broadcast(
    broadcast: NewsBroadcast,
    args: argparse.Namespace,
    env: Mapping[str, str],
    *,
    base_dir: Path | None,
    reporter: Reporter,
) -> int:
    # The pipeline imports the media stack; keep `anchor news` and `anchor schema` light by importing late.
    from job.pipeline import RunContext, run_broadcast, run_identity

    broadcast = _with_output(broadcast, args.out)  # --engine-url travels in RunContext, so a failure can name it
    reporter.context.update(broadcast=broadcast.name)
    run_id = args.run_id or "unknown"
    try:
        run_id, aired_at = run_identity(broadcast.spec.time_zone, env, run_id=args.run_id)
        reporter.context.update(run=run_id)
        context = RunContext(
            run_id, aired_at, base_dir, env, engine_ready_timeout=args.engine_wait, engine_url=args.engine_url
        )
        with _stopped_by_sigterm():
            result = run_broadcast(broadcast, context, reporter)
    except ConfigError as exc:
        result = _failed(broadcast.name, run_id, ExitCode.CONFIG_ERROR, str(exc), reporter.warnings)
    except TransientError as exc:
        result = _failed(broadcast.name, run_id, ExitCode.TRANSIENT_ERROR, str(exc), reporter.warnings)
    except KeyboardInterrupt:
        result = _failed(broadcast.name, run_id, ExitCode.TRANSIENT_ERROR, "interrupted", reporter.warnings)
    except Terminated:
        message = (
            "stopped by SIGTERM: the pod is being deleted (drain, eviction, spot reclaim); a run stopped before its "
            "manifest is not published, and the Job runs it again"
        )
        result = _failed(broadcast.name, run_id, ExitCode.TRANSIENT_ERROR, message, reporter.warnings)
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if env.get("ANCHOR_DEBUG"):
            traceback.print_exc()
        message = f"internal error ({type(exc).__name__}: {exc}); set ANCHOR_DEBUG=1 for a traceback"
        result = _failed(broadcast.name, run_id, ExitCode.INTERNAL_ERROR, message, reporter.warnings)
    return _finish(reporter, result, env)


class Terminated(BaseException):
    """SIGTERM arrived during the run. A BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """Stop the run at once on SIGTERM. In a pod the job is PID 1, for which the kernel ignores a signal that has no
    handler: without this, a drained or reclaimed pod would carry on until the grace period's SIGKILL."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _with_output(broadcast: NewsBroadcast, out: Path | None) -> NewsBroadcast:
    if out is None:
        return broadcast
    spec = broadcast.spec
    spec = spec.model_copy(update={"output": spec.output.model_copy(update={"directory": str(out)})})
    return broadcast.model_copy(update={"spec": spec})


_REASONS = {
    ExitCode.CONFIG_ERROR: "ConfigError",
    ExitCode.TRANSIENT_ERROR: "TransientError",
    ExitCode.INTERNAL_ERROR: "InternalError",
}


def _failed(broadcast: str, run_id: str, code: ExitCode, message: str, warnings: Sequence[str] = ()) -> RunResult:
    return RunResult(
        status="Failed",
        broadcast=broadcast,
        run_id=run_id,
        exit_code=int(code),
        reason=_REASONS[code],
        message=message,
        warnings=list(warnings)[:50],
    )


def _finish(reporter: Reporter, result: RunResult, env: Mapping[str, str]) -> int:
    """Report the result: an event, the termination message for Kubernetes, and the last line of stdout."""
    result = RunResult.model_validate_json(reporter.redact(result.to_json()))
    if result.status == "Failed":
        reporter.event("run.failed", result.message or "", level="error", reason=result.reason)
    else:
        reporter.event("run.succeeded", f"video: {result.video_url}", video=result.video)
    reporter.close()
    compact = result.compact_json(TERMINATION_MESSAGE_LIMIT)
    path = Path(env["ANCHOR_TERMINATION_MESSAGE_PATH"]) if "ANCHOR_TERMINATION_MESSAGE_PATH" in env else None
    if path is None and DEFAULT_TERMINATION_LOG.exists():
        path = DEFAULT_TERMINATION_LOG
    if path is not None:
        try:
            path.write_text(compact, encoding="utf-8")
        except OSError as exc:
            reporter.event("result.unwritten", f"cannot write the result to {path}: {exc}", level="warning")
    sys.stdout.write(compact + "\n")
    sys.stdout.flush()
    return result.exit_code


# -- demo ------------------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from job.progress import Reporter

    env = dict(os.environ)
    reporter = Reporter(env=env)
    sample = resources.files("job") / "sample" / f"broadcast-{args.language}.yaml"
    with resources.as_file(sample) as path:
        broadcast = load_broadcast(path)
        if args.engine_url:
            return render_broadcast(broadcast, args, env, base_dir=path.parent, reporter=reporter)
        try:
            from voicevox_standin.cache import from_env
            from voicevox_standin.server import start_standin
        except ImportError:  # the job image runs against a real engine and carries no stand-in
            print(
                "anchor demo: this installation has no stand-in engine (`pip install anchor[standin]`); "
                "give --engine-url of a running VOICEVOX engine",
                file=sys.stderr,
            )
            return int(ExitCode.CONFIG_ERROR)
        with start_standin(cache=from_env(env)) as engine:
            reporter.event("demo.engine", f"CPU stand-in engine (OpenJTalk voice) at {engine.url}", url=engine.url)
            args.engine_url = engine.url
            return render_broadcast(broadcast, args, env, base_dir=path.parent, reporter=reporter)


# -- news ------------------------------------------------------------------------------------------------


def _cmd_news(args: argparse.Namespace) -> int:
    from job.news.reader import read_feed

    now = datetime.now(UTC)
    max_age = timedelta(hours=args.max_age_hours) if args.max_age_hours else None
    try:
        report = read_feed(
            args.source,
            max_items=max(1, min(args.max_items, 100)),
            max_age=max_age,
            now=now,
            base_dir=Path.cwd(),
            allow_private=args.allow_private,
        )
    except JobError as exc:
        print(f"anchor news: {exc}", file=sys.stderr)
        return 1
    if report.error:
        print(f"anchor news: rejected: {report.error}", file=sys.stderr)
        return 1
    if not report.stories:
        print(f"anchor news: {report.url}: the feed has no usable stories", file=sys.stderr)
        return 1
    if args.json:
        stories = [
            {
                "title": s.title,
                "link": s.link,
                "source": s.source,
                "published": s.published.isoformat() if s.published else None,
                "text": s.summary,
                "image": s.image or None,
            }
            for s in report.stories
        ]
        print(json.dumps(stories, ensure_ascii=False, indent=2))
        return 0
    for n, story in enumerate(report.stories, 1):
        when = story.published.isoformat(timespec="minutes") if story.published else "undated"
        picture = f"\n   picture: {story.image}" if story.image else ""
        print(f"{n}. {story.title}\n   {story.source} · {when}\n   {story.link}{picture}\n   {story.summary}\n")
    return 0


def _print_schema() -> int:
    print(json.dumps(spec_json_schema(), ensure_ascii=False, indent=2))
    return 0
