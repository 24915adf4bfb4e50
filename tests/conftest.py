"""Fixtures shared by every test layer: the real MinIO server (built once per machine by scripts/test-tools.sh).

How a run spreads over pytest-xdist's workers (`make test` runs four): each directory whose tests share one expensive
server for the session (the real node and its control plane, the operator's control plane, the Compose stacks) is
one work unit, run by one worker and started first, since they are the longest and spend most of their time waiting
on servers; every other module is its own unit, so module fixtures are made once.

And what makes a run safe to stop: SIGTERM and SIGHUP (a CI timeout, a closed terminal) stop it the way Ctrl-C does,
so every fixture's teardown runs and takes down what it started; what a run killed outright left behind is cleared
by the next run before it starts anything (tests/support/leftovers.py).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Generator, Iterator
from contextlib import suppress
from types import FrameType

import pytest

from tests.support import leftovers
from tests.support.minio_server import MinioServer, running_minio
from tests.support.tools import cache_dir
from voicevox_standin.cache import VARIABLE as STANDIN_CACHE

# The stand-in engines of the end-to-end tests and `anchor demo` answer a sentence spoken before from this
# machine's cache instead of OpenJTalk (the same sample sentences are spoken by many tests, in four workers).
os.environ.setdefault(STANDIN_CACHE, str(cache_dir().parent / "standin-speech"))

SESSION_GROUPS = ("tests/node", "tests/operator", "tests/compose")
"""Directories run whole by one worker, longest first: their tests share one expensive server for the session."""
LONGEST_MODULES = (
    "tests/e2e/test_demo.py",
    "tests/e2e/test_resume.py",
    "tests/e2e/test_page_browser.py",
    "tests/e2e/test_render_local.py",
    "tests/e2e/test_listing_local.py",
    "tests/e2e/test_llm_script.py",
    "tests/e2e/test_dialogue.py",
)
"""The modules that took longest in `make test` (`--durations`), longest first: handed out right after the session
groups, so that what is left for the end of a run is small enough to even out among the workers."""
WORKERS_TEARDOWN_SECONDS = 180
"""How long a stopped run's xdist controller waits for its workers' teardowns (a real node takes some 30 s)."""


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs together: a directory of SESSION_GROUPS, else a module."""
    path = nodeid.split("::", 1)[0]
    return next((directory for directory in SESSION_GROUPS if path.startswith(directory + "/")), path)


def _rank(nodeid: str) -> int:
    """Longest first, so the workers finish together: the session groups (they mostly wait on servers), then the
    longest modules, then the other modules that render or serve, and the unit tests' many small modules last."""
    unit = work_unit(nodeid)
    if unit in SESSION_GROUPS:
        return SESSION_GROUPS.index(unit)
    if unit in LONGEST_MODULES:
        return len(SESSION_GROUPS) + LONGEST_MODULES.index(unit)
    return len(SESSION_GROUPS) + len(LONGEST_MODULES) + (1 if unit.startswith("tests/unit/") else 0)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _rank(item.nodeid))  # stable: the rest keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's scope scheduler with our work units (`make test` runs `--dist loadscope --no-loadscope-reorder`, so
    the units go out in collection order)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)  # type: ignore[arg-type]


def _stop_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    global _STOPPED
    _STOPPED = True
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)  # a second signal must not cut the teardown short
    print(f"\nanchor tests: stopped by {signal.Signals(signum).name}; tearing down what they started", file=sys.stderr)
    if _WORKERS:  # xdist's controller: its workers are its children; each tears down its own fixtures
        for pid in leftovers.children(os.getpid()):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


_STOPPED = False
_WORKERS = False


def pytest_sessionstart(session: pytest.Session) -> None:
    global _WORKERS
    _WORKERS = session.config.pluginmanager.has_plugin("dsession")
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # workers start after the controller has done this
        for line in leftovers.clear_abandoned():
            print(f"leftovers of a killed test run: {line}")
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    signal.signal(signal.SIGHUP, _stop_like_ctrl_c)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Around pytest's and xdist's own: a stopped controller first lets its workers finish their teardowns (xdist
    gives them 10 s; a real node takes some 30), which it sees by their records going. Then, after every fixture's
    teardown, a backstop for what this run recorded and did not stop, and in the controller for what a worker that
    was cut short left."""
    if _WORKERS and _STOPPED:
        leftovers.wait_for_records(leftovers.children(os.getpid()), WORKERS_TEARDOWN_SECONDS)
    try:
        return (yield)
    finally:
        for line in leftovers.current().finish():
            print(f"left running by this run's teardown, now stopped: {line}")
        if not os.environ.get("PYTEST_XDIST_WORKER"):
            for line in leftovers.clear_abandoned():
                print(f"left by a worker that did not finish its teardown, now undone: {line}")


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with running_minio(tmp_path_factory.mktemp("minio")) as server:
        yield server
