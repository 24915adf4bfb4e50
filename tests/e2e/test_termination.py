"""SIGTERM (a drained, evicted or reclaimed pod) stops a run at once as a transient failure, publishing nothing:
the Job's podFailurePolicy ignores the disruption and a new pod runs it again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from api.result import ExitCode
from tests.support.builders import a_broadcast
from tests.support.http import ScriptedServer
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e


def test_sigterm_during_the_run_ends_it_as_transient_and_publishes_nothing(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    path = (
        a_broadcast("terminated")
        .feed(f"{feed_server.url}/ja.xml")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="ja", stories=3)
        .voice(engineUrl=engine.url)
        .output(directory=str(tmp_path / "out"))
        .write(tmp_path / "broadcast.yaml")
    )
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")}
    process = subprocess.Popen(
        [sys.executable, "-m", "anchor", "render", str(path), "--run-id", "run-1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    killer = threading.Timer(300, process.kill)  # a run that ignores SIGTERM must not hang the suite
    killer.start()
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the run's JSON events, as they happen
            if '"event": "voice.done"' in line:
                process.send_signal(signal.SIGTERM)  # mid-run: the render is next
                break
        stdout, _ = process.communicate(timeout=60)
    finally:
        killer.cancel()
    assert process.returncode == int(ExitCode.TRANSIENT_ERROR), stdout
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["status"] == "Failed" and result["message"].startswith("stopped by SIGTERM"), result
    assert not list((tmp_path / "out").glob("**/manifest.json")), "nothing published"
