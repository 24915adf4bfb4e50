"""Fixtures shared by every test layer: the real MinIO server (built once per machine by scripts/test-tools.sh).

And what makes a run safe to stop: SIGTERM and SIGHUP (a CI timeout, a closed terminal) stop it the way Ctrl-C does,
so every fixture's teardown runs and takes down what it started; what a run killed outright left behind is cleared
by the next run before it starts anything (tests/support/leftovers.py).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.support import leftovers
from tests.support.minio_server import MinioServer, running_minio


def _stop_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)  # a second signal must not cut the teardown short
    print(f"\nanchor tests: stopped by {signal.Signals(signum).name}; tearing down what they started", file=sys.stderr)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}: tearing down what the tests started")


def pytest_sessionstart(session: pytest.Session) -> None:
    for line in leftovers.clear_abandoned():
        print(f"leftovers of a killed test run: {line}")
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    signal.signal(signal.SIGHUP, _stop_like_ctrl_c)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture's teardown (pytest's own sessionfinish runs it first): a backstop for what this run
    recorded and somehow did not stop, then its record goes."""
    for line in leftovers.current().finish():
        print(f"left running by this run's teardown, now stopped: {line}")


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with running_minio(tmp_path_factory.mktemp("minio")) as server:
        yield server
