"""Bad input through the CLI: each case gives its clear error, the right exit-code class, and publishes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.result import ExitCode
from tests.e2e.conftest import AnchorRun, run_anchor
from tests.support.builders import BroadcastBuilder, a_broadcast
from tests.support.http import Reply, ScriptedServer, scripted_server
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e


def _render(builder: BroadcastBuilder, tmp_path: Path, env: dict[str, str] | None = None) -> AnchorRun:
    path = builder.write(tmp_path / "broadcast.yaml")
    return run_anchor("render", str(path), "--run-id", "r1", "--engine-wait", "2", env=env)


def _good(feed_server: ScriptedServer, tmp_path: Path) -> BroadcastBuilder:
    return (
        a_broadcast("bad-input")
        .feed(f"{feed_server.url}/ja.xml")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(stories=1)
        .video(resolution="1280x720")
        .output(directory=str(tmp_path / "out"))
    )


def _failed(run: AnchorRun, code: ExitCode, *fragments: str) -> None:
    assert run.code == int(code), run.stderr
    result = run.result
    assert result["status"] == "Failed" and result["exitCode"] == int(code)
    for fragment in fragments:
        assert fragment in result["message"], result["message"]
    assert "Traceback" not in run.stderr


def _nothing_published(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The broadcast's state (<broadcast>/.anchor/: the run's checkpoints) is not output; nothing else may be there.
    published = [p for p in out.rglob("*") if p.is_file() and ".anchor" not in p.parts] if out.exists() else []
    assert published == []


def test_unknown_field_is_a_config_error_naming_it(feed_server: ScriptedServer, tmp_path: Path) -> None:
    run = _render(_good(feed_server, tmp_path).video(subtitle=True), tmp_path)
    _failed(run, ExitCode.CONFIG_ERROR, "spec.video.subtitle: unknown field")
    _nothing_published(tmp_path)


def test_wrong_type_is_a_config_error_naming_field_and_value(feed_server: ScriptedServer, tmp_path: Path) -> None:
    run = _render(_good(feed_server, tmp_path).video(fps="fast"), tmp_path)
    _failed(run, ExitCode.CONFIG_ERROR, "spec.video.fps", "'fast'")
    _nothing_published(tmp_path)


def test_bad_style_id_lists_the_engines_styles(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    run = _render(_good(feed_server, tmp_path).voice(styleId=4242, engineUrl=engine.url), tmp_path)
    _failed(run, ExitCode.CONFIG_ERROR, "spec.voice.styleId 4242", "3 (ずんだもん ノーマル)")
    _nothing_published(tmp_path)


def test_every_feed_broken_or_unreachable_is_transient(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    with scripted_server(lambda *_: Reply(404)) as gone:
        dead = gone.url  # nothing listens here once the block ends
    builder = (
        a_broadcast("bad-input")
        .feed(f"{feed_server.url}/broken.xml")
        .feed(f"{dead}/feed.xml")
        .sources(allowedAddresses=["127.0.0.1/32"])
        .voice(engineUrl=engine.url)
        .output(directory=str(tmp_path / "out"))
    )
    run = _render(builder, tmp_path)
    _failed(run, ExitCode.TRANSIENT_ERROR, "no stories to broadcast", "broken.xml", "/feed.xml")
    _nothing_published(tmp_path)


def test_private_feed_address_is_refused_by_default(feed_server: ScriptedServer, tmp_path: Path) -> None:
    builder = _good(feed_server, tmp_path).sources(allowedAddresses=[])
    run = _render(builder, tmp_path)
    _failed(run, ExitCode.TRANSIENT_ERROR, "no stories to broadcast")
    assert "127.0.0.1" in run.result["message"]
    _nothing_published(tmp_path)


def test_engine_down_is_transient(feed_server: ScriptedServer, tmp_path: Path) -> None:
    with scripted_server(lambda *_: Reply(404)) as gone:
        dead = gone.url
    run = _render(_good(feed_server, tmp_path).voice(engineUrl=dead), tmp_path)
    _failed(run, ExitCode.TRANSIENT_ERROR, "VOICEVOX engine at", "not ready")
    _nothing_published(tmp_path)


def test_unwritable_output_directory_is_a_config_error(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    builder = _good(feed_server, tmp_path).voice(engineUrl=engine.url).output(directory=str(blocker / "out"))
    run = _render(builder, tmp_path)
    _failed(run, ExitCode.CONFIG_ERROR, "spec.output.directory")
    assert blocker.read_text() == "not a directory"


def test_bad_run_id_and_bad_yaml_are_config_errors(feed_server: ScriptedServer, tmp_path: Path) -> None:
    path = _good(feed_server, tmp_path).write(tmp_path / "broadcast.yaml")
    run = run_anchor("render", str(path), "--run-id", "../escape")
    _failed(run, ExitCode.CONFIG_ERROR, "run id '../escape' is not allowed")
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [", encoding="utf-8")
    _failed(run_anchor("render", str(broken)), ExitCode.CONFIG_ERROR, "not valid YAML")
    _nothing_published(tmp_path)


def test_the_controller_refuses_bad_settings_before_it_starts() -> None:
    done = run_anchor(
        "controller", "--standalone", "--metrics=", "--liveness=",
        env={"ANCHOR_ENGINE_GPU_IMAGE": "voicevox/voicevox_engine:latest", "ANCHOR_SWEEP_SECONDS": "0"},
    )  # fmt: skip
    assert done.code == 2, done.stderr
    assert "ANCHOR_ENGINE_GPU_IMAGE: 'voicevox/voicevox_engine:latest' must name a versioned tag" in done.stderr
    assert "ANCHOR_SWEEP_SECONDS" in done.stderr
    assert "Traceback" not in done.stderr
