"""In a pod the controller hands the broadcast over as JSON in ANCHOR_BROADCAST, and the Job's name as run id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.result import ExitCode
from tests.e2e.conftest import run_anchor
from tests.support.builders import a_broadcast
from tests.support.http import ScriptedServer
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e


def test_broadcast_from_the_environment_renders_and_writes_the_termination_message(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    document = (
        a_broadcast("from-env")
        .feed(f"{feed_server.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="en", stories=1)
        .video(resolution="1280x720", fps=10)
        .output(directory=str(tmp_path / "out"))
        .dict()
    )
    termination = tmp_path / "termination-log"
    env = {
        "ANCHOR_BROADCAST": json.dumps(document),
        "ANCHOR_RUN_ID": "from-env-29412345",
        "ANCHOR_VOICEVOX_URL": engine.url,
        "ANCHOR_TERMINATION_MESSAGE_PATH": str(termination),
    }
    run = run_anchor("render", env=env)
    assert run.code == 0, run.stderr
    assert (tmp_path / "out" / "from-env" / "from-env-29412345" / "manifest.json").is_file()
    written = json.loads(termination.read_text(encoding="utf-8"))
    assert written == run.result
    assert written["status"] == "Succeeded" and written["runId"] == "from-env-29412345"


def test_local_feed_paths_are_refused_in_a_pod(tmp_path: Path) -> None:
    document = a_broadcast("from-env").feed("/var/run/secrets/kubernetes.io/serviceaccount/token").dict()
    run = run_anchor("render", env={"ANCHOR_BROADCAST": json.dumps(document)}, cwd=tmp_path)
    assert run.code == int(ExitCode.CONFIG_ERROR), run.stderr
    assert "local feeds work only outside a cluster" in run.result["message"]


def test_missing_broadcast_is_a_config_error() -> None:
    run = run_anchor("render")
    assert run.code == int(ExitCode.CONFIG_ERROR)
    assert "ANCHOR_BROADCAST" in run.result["message"]
