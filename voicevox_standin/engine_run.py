"""`/opt/voicevox_engine/run` of the CPU mock image: the stand-in behind the real engine's command line.

The controller starts the engine sidecar as `/opt/voicevox_engine/run --host 127.0.0.1 --port 50021
--disable_mutable_api [--use_gpu]`; the mock image answers the same path, flags, port and startup probe, so a pod
written for `voicevox/voicevox_engine` runs unchanged on a node without a GPU or without registry access. Flags of
the real engine that change nothing here are accepted and named once at start; unknown flags fail as they do on
the real engine (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from voicevox_standin.__main__ import serve

# The real engine's flags that take a value / that are switches, accepted and not acted on by the mock.
_VALUED = ("voicevox_dir", "runtime_dir", "cpu_num_threads", "init_processes", "cors_policy_mode",
           "setting_file", "preset_file")  # fmt: skip
_LISTS = ("voicelib_dir", "allow_origin")
_SWITCHES = ("enable_mock", "load_all_models", "output_log_utf8", "disable_mutable_api")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="/opt/voicevox_engine/run",
        description="anchor's CPU mock of the VOICEVOX engine image: the engine's HTTP API and command line, "
        "OpenJTalk speech. Not a VOICEVOX voice.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50021, help="port to listen on (default: 50021)")
    parser.add_argument("--use_gpu", action="store_true", help="accepted; the mock always runs on the CPU")
    for name in _VALUED:
        parser.add_argument(f"--{name}", help="accepted for compatibility; no effect in the mock")
    for name in _LISTS:
        parser.add_argument(f"--{name}", nargs="*", help="accepted for compatibility; no effect in the mock")
    for name in _SWITCHES:
        parser.add_argument(f"--{name}", action="store_true", help="accepted for compatibility; no effect")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ignored = [name for name in (*_VALUED, *_LISTS, *_SWITCHES) if getattr(args, name) not in (None, False)]
    notes = [f"CPU mock: {', '.join('--' + n for n in ignored)} accepted, no effect"] if ignored else []
    if args.use_gpu:
        notes.insert(0, "CPU mock: --use_gpu given, speaking on the CPU (no VOICEVOX core, no GPU)")
    # The real engine listens wherever --host says; so does its mock (the pod keeps it on 127.0.0.1).
    return serve(args.host, args.port, allow_remote=True, notes=notes)


if __name__ == "__main__":
    sys.exit(main())
