"""`anchor demo` (what `make demo` runs): the bundled Japanese sample on the in-process stand-in engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_anchor
from tests.support.media import decoded_seconds, probe

pytestmark = pytest.mark.e2e


def test_demo_renders_the_bundled_japanese_sample_at_1080p(tmp_path: Path) -> None:
    run = run_anchor("demo", "--out", str(tmp_path / "out"), "--run-id", "demo")
    assert run.code == 0, run.stderr
    run_dir = tmp_path / "out" / "sample-ja" / "demo"
    info = probe(run_dir / "video.mp4")
    (video,) = info.of("video")
    assert (video.codec, video.width, video.height) == ("h264", 1920, 1080)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["stories"]) == 4
    assert manifest["credits"] == ["VOICEVOX:ずんだもん"]
    assert decoded_seconds(run_dir / "video.mp4", "audio") == pytest.approx(manifest["durationSeconds"], abs=0.2)
    assert any(e["event"] == "demo.engine" for e in run.events)
