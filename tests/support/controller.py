"""`anchor controller` as a subprocess for tests and benchmarks: started with the arguments given, its output in a
log file, always stopped by its pid (SIGTERM, then SIGKILL), also when the caller fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import leftovers
from tests.support.processes import stop
from tests.support.tools import REPO

JOB_IMAGE = "registry.test/anchor-job:0.1.0"


@dataclass
class Controller:
    process: subprocess.Popen[bytes]
    log: Path
    health_url: str | None = None
    metrics_url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def exited(self) -> str | None:
        """None while it runs; otherwise its exit status and the end of its log."""
        if self.process.poll() is None:
            return None
        return f"the controller exited with {self.process.returncode}:\n{self.text()[-3000:]}"

    def kill(self) -> None:
        """SIGKILL: a crash at an arbitrary point."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def running_controller(
    args: Sequence[str], env: Mapping[str, str], log: Path, *, stop_timeout: float = 20
) -> Iterator[Controller]:
    """No health or metrics server unless `args` names one: test servers listen only where a test says."""
    defaults = [a for a in ("--liveness=", "--metrics=") if not any(x.startswith(a) for x in args)]
    environment = {**os.environ, "ANCHOR_JOB_IMAGE": JOB_IMAGE, **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "anchor", "controller", *defaults, *args],
            env=environment, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    leftovers.current().process(process.pid, "controller")
    try:
        yield Controller(process, log)
    finally:
        stop(process, stop_timeout)  # SIGTERM first: kopf removes its peering entry
