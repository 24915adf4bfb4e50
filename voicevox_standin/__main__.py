"""`python -m voicevox_standin [--host 127.0.0.1] [--port 50021] [--allow-remote]`: the stand-in as a server.

It logs one line per request to stderr and stops cleanly on SIGTERM or SIGINT (Ctrl-C). Clients wait for it by
polling GET /version, which answers as soon as it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from voicevox_standin.cache import from_env
from voicevox_standin.server import VERSION, start_standin

EXIT_BAD_ADDRESS = 2


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="anchor standin-engine",
        description="anchor's CPU stand-in for the VOICEVOX engine (OpenJTalk speech behind the VOICEVOX API).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=50021, help="port to listen on; 0 picks a free one (default: 50021)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host such as 0.0.0.0 (the stand-in has no authentication)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    return serve(args.host, args.port, allow_remote=args.allow_remote)


def serve(host: str, port: int, *, allow_remote: bool, notes: Sequence[str] = ()) -> int:
    """Serve until SIGTERM or SIGINT; exit 2 when the address is refused or cannot be bound."""
    # The handlers first: the server answers as soon as it starts, and a SIGTERM from a client that saw it answer
    # must stop it cleanly, not kill it.
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    try:
        engine = start_standin(host, port, allow_remote=allow_remote, log_requests=True, cache=from_env())
    except ValueError as exc:
        print(f"voicevox_standin: {exc}", file=sys.stderr)
        return EXIT_BAD_ADDRESS
    except OSError as exc:
        print(f"voicevox_standin: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_ADDRESS
    with engine:
        for note in notes:
            print(f"voicevox_standin: {note}", file=sys.stderr, flush=True)
        print(
            f"voicevox_standin {VERSION} listening on {engine.url} (an OpenJTalk voice, not a VOICEVOX one)",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):  # a timeout keeps the main thread responsive to signals on every platform
            pass
    print("voicevox_standin: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
