"""A test run that is stopped leaves nothing running (tests/conftest.py, tests/support/leftovers.py): SIGTERM tears
down its fixtures as Ctrl-C does; what a run killed outright started in a session of its own is stopped by the next
run, by the pid and start time it recorded, and a process that merely reuses such a pid is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import leftovers
from tests.support.kwok import wait_for
from tests.support.tools import REPO

INNER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from pathlib import Path
    import pytest
    from tests.support import leftovers

    @pytest.fixture(scope="session")
    def server():
        process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(300)"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        leftovers.current().process(process.pid, "a test server")
        Path(os.environ["INNER_PIDS"]).write_text(f"{os.getpid()} {process.pid}")
        yield process
        process.kill()
        process.wait()
        Path(os.environ["INNER_TORN_DOWN"]).write_text("yes")

    def test_runs_until_stopped(server):
        Path(os.environ["INNER_READY"]).write_text("ready")
        time.sleep(120)  # the outer test stops this run long before
    """
)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """An inner pytest run (with our conftest's hooks) whose session fixture started a server in its own session;
    yields the run, its records directory and the server's pid, once its test is running."""
    (tmp_path / "test_inner.py").write_text(INNER)
    records = tmp_path / "records"
    env = {
        **os.environ,
        "ANCHOR_TEST_RECORDS": str(records),
        "INNER_PIDS": str(tmp_path / "pids"),
        "INNER_READY": str(tmp_path / "ready"),
        "INNER_TORN_DOWN": str(tmp_path / "torn-down"),
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.conftest", "-q", "-s"]
    run = subprocess.Popen(
        [*command, "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "ready").exists() or run.poll() is not None, "the inner test to run", 60, 0.05)
        assert run.poll() is None, run.communicate()[0].decode()
        server = int((tmp_path / "pids").read_text().split()[1])
        yield run, records, server
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate(timeout=30)
        with_pid = (tmp_path / "pids").read_text().split() if (tmp_path / "pids").exists() else []
        if len(with_pid) == 2 and leftovers.start_time(int(with_pid[1])) is not None:
            os.kill(int(with_pid[1]), signal.SIGKILL)


def test_sigterm_tears_down_what_the_run_started_and_leaves_no_record(
    started: tuple[subprocess.Popen[bytes], Path, int], tmp_path: Path
) -> None:
    run, records, server = started
    run.send_signal(signal.SIGTERM)
    output = run.communicate(timeout=60)[0].decode()
    assert run.returncode == 2, f"an interrupted run fails: {output}"
    assert "stopped by SIGTERM" in output
    assert (tmp_path / "torn-down").read_text() == "yes", "the session fixture's teardown ran"
    assert not leftovers.running(server)
    assert list(records.glob("*")) == [], "a run that finished its teardown leaves no records"


def test_what_a_killed_run_started_is_stopped_by_the_next_run(
    started: tuple[subprocess.Popen[bytes], Path, int], tmp_path: Path
) -> None:
    run, records, server = started
    run.kill()
    run.communicate(timeout=30)
    assert leftovers.running(server), "a server in a session of its own outlives a run killed outright"
    assert not (tmp_path / "torn-down").exists()
    assert leftovers.clear_abandoned(records) == [f"killed a test server (pid {server})"]
    assert not leftovers.running(server)
    assert list(records.glob("*")) == []


def test_a_live_runs_records_and_a_reused_pid_are_left_alone(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        live = leftovers.Run(tmp_path, pid=os.getpid())
        live.process(sleeper.pid, "ours, while this run lives")
        dead = leftovers.Run(tmp_path, pid=_a_dead_pid())
        started = leftovers.start_time(sleeper.pid)
        assert started is not None
        dead.note("process", pid=sleeper.pid, start=started - 1, what="an older process with the same pid")
        assert list(leftovers.abandoned(tmp_path)) == [dead.path]
        assert leftovers.clear_abandoned(tmp_path) == []
        assert sleeper.poll() is None, "a pid whose start time differs is another process: never killed"
        assert live.path.exists() and not dead.path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_mounts_under_a_killed_runs_directory_are_unmounted(tmp_path: Path) -> None:
    source, workdir = tmp_path / "source", tmp_path / "node"
    (source / "b").mkdir(parents=True)
    (workdir / "a" / "b").mkdir(parents=True)
    try:
        for inner, outer in ((source, workdir / "a"), (source, workdir / "a" / "b")):
            subprocess.run(["mount", "--bind", str(inner), str(outer)], check=True)
        dead = leftovers.Run(tmp_path / "records", pid=_a_dead_pid())
        dead.note("mounts", under=str(workdir))
        assert len(leftovers.mounts_under(workdir)) == 2
        assert leftovers.clear_abandoned(tmp_path / "records") == [f"unmounted 2 mounts under {workdir}"]
        assert leftovers.mounts_under(workdir) == []
    finally:
        leftovers.unmount_under(workdir)


def _a_dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    deadline = time.monotonic() + 5
    while leftovers.start_time(process.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # the reaped child's /proc entry goes at once; a deadline in case the pid is reused
    return process.pid
