"""What a test run leaves on the machine if it is killed before its teardown, and how the next run clears it.

A run that ends normally, or on SIGTERM/SIGHUP/SIGINT (tests/conftest.py turns those into an orderly stop), takes
down what it started through its fixtures. A run killed outright (SIGKILL, a lost machine) cannot, and its node's
kubelet and containerd and the kwok control planes run in sessions of their own, so they outlive it. So each run
writes down, as it goes, what it started outside its own process: processes by pid and start time (a reused pid is
never taken for ours), the real node's containerd socket (its shims name it), the directories under which things
were mounted, the address put on a link and the links it made, and the Docker containers and Compose projects it
made (a killed run's Docker daemon, restarted by the next, stops their containers but keeps them). The next run reads
the records of every run that is no longer alive and undoes them, newest first, before it starts anything; never by a
process's name.

Records live under RECORDS (one JSON-lines file per run, named by its pid and start time); a run removes its own
when its session finishes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

RECORDS = Path(os.environ.get("ANCHOR_TEST_RECORDS", "/run/anchor-tests" if os.geteuid() == 0 else "/tmp/anchor-tests"))


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (which may hold spaces): state, parent, ..., start time."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """When the process `pid` started (clock ticks since boot, field 22), None when there is none."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def running(pid: int) -> bool:
    """There is a process `pid` and it has not exited (a zombie waits only for its parent to reap it)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def parent(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if fields else 0


def _alive(pid: int, started: int | None) -> bool:
    return started is not None and start_time(pid) == started


class Run:
    """This run's record file, appended to as things are started."""

    def __init__(self, directory: Path = RECORDS, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self.path = directory / f"{self.pid}-{start_time(self.pid)}.jsonl"

    def note(self, kind: str, **fields: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as records:
            records.write(json.dumps({"kind": kind, **fields}) + "\n")
            records.flush()
            os.fsync(records.fileno())

    def process(self, pid: int, what: str) -> None:
        """A process that runs in a session of its own (a killed run's process group does not include it)."""
        self.note("process", pid=pid, start=start_time(pid), what=what)

    def finish(self) -> list[str]:
        """Undo whatever this run recorded that is still there (its teardown normally took it all down already),
        and drop its records; one line per thing that was left."""
        return undo(self.path) if self.path.exists() else []


_CURRENT: Run | None = None


def current() -> Run:
    global _CURRENT
    if _CURRENT is None or _CURRENT.pid != os.getpid():
        _CURRENT = Run()
    return _CURRENT


def abandoned(directory: Path = RECORDS) -> Iterator[Path]:
    """The record files of runs that are no longer alive."""
    for path in sorted(directory.glob("*.jsonl")):
        pid, _, started = path.stem.partition("-")
        if pid.isdigit() and not _alive(int(pid), int(started) if started.isdigit() else None):
            yield path


def undo(path: Path) -> list[str]:
    """Undo what the record file at `path` names, newest first, and remove it; one line per thing undone."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    done = [line for line in (_undo(record) for record in reversed(records)) if line]
    path.unlink(missing_ok=True)
    return done


def clear_abandoned(directory: Path = RECORDS) -> list[str]:
    """Undo what runs that are no longer alive recorded; one line per thing undone."""
    return [line for path in abandoned(directory) for line in undo(path)]


def _undo(record: dict[str, Any]) -> str | None:
    kind = record["kind"]
    if kind == "process":
        pid, started = int(record["pid"]), record.get("start")
        if not _alive(pid, started):
            return None
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, started)
        return f"killed {record.get('what', 'process')} (pid {pid})"
    if kind == "shims":
        killed = kill_shims(Path(record["socket"]))
        return f"killed {killed} containerd shims and containers of {record['socket']}" if killed else None
    if kind == "mounts":
        unmounted = unmount_under(Path(record["under"]))
        return f"unmounted {unmounted} mounts under {record['under']}" if unmounted else None
    if kind == "address":
        gone = subprocess.run(["ip", "addr", "delete", record["address"], "dev", record["dev"]], capture_output=True)
        return f"removed {record['address']} from {record['dev']}" if gone.returncode == 0 else None
    if kind in ("container", "compose"):
        from tests.support import docker  # it records its containers here, so it is imported only when needed

        if kind == "container":
            gone = docker.docker("rm", "--force", record["id"])
            return f"removed container {record['id'][:12]}" if gone.returncode == 0 else None
        removed = docker.remove_compose_project(record["project"])
        return f"removed {removed} containers, networks and volumes of {record['project']}" if removed else None
    if kind == "link":
        gone = subprocess.run(["ip", "link", "delete", record["name"]], capture_output=True)
        return f"removed link {record['name']}" if gone.returncode == 0 else None
    raise ValueError(f"unknown leftover record {record!r}")


def _wait_gone(pid: int, started: int | None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid, started) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the kernel's process table after SIGKILL, with a deadline


# --- the real node's containers and mounts (tests/support/node.py uses these for its own teardown too) -------------


def processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                yield int(entry.name), (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return [child for child, _ in processes() if parent(child) == pid]


def wait_for_records(pids: list[int], timeout: float, directory: Path = RECORDS) -> None:
    """Until none of the runs `pids` has records left (a run drops them once its teardown is done) or is alive, or
    `timeout` seconds."""
    deadline = time.monotonic() + timeout

    def pending() -> bool:
        for pid in pids:
            started = start_time(pid)
            if started is not None and (directory / f"{pid}-{started}.jsonl").exists() and running(pid):
                return True
        return False

    while pending() and time.monotonic() < deadline:
        time.sleep(0.2)  # polling other processes' teardowns through their record files, with a deadline


def kill_shims(socket_path: Path) -> int:
    """The shims of the containerd on `socket_path` (their command line names that socket) and the containers they
    run: SIGKILL to a container's first process ends its PID namespace. Returns how many were killed."""
    shims = [pid for pid, argv in processes() if "-address" in argv and str(socket_path) in argv]
    children = [pid for pid, _ in processes() if parent(pid) in shims]
    for pid in [*children, *shims]:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid in shims for pid, argv in processes() if "-address" in argv):
        time.sleep(0.1)  # polling for the killed shims to be gone, with a deadline
    return len(shims) + len(children)


def mounts_under(directory: Path) -> list[Path]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(line.split()[4].encode().decode("unicode_escape"))  # octal escapes such as \040 for spaces
        if point.is_relative_to(directory):
            found.append(point)
    return found


def unmount_under(directory: Path) -> int:
    """Unmount everything mounted under `directory`, deepest first (lazily where a plain unmount is refused)."""
    points = sorted(mounts_under(directory), key=lambda m: -len(m.parts))
    for mountpoint in points:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mountpoint)], capture_output=True)
    return len(points)
