"""`anchor demo` (what `make demo` runs): the bundled Japanese sample on the in-process stand-in engine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from job.video.layout import Layout
from job.video.subtitles import parse_vtt
from tests.e2e.conftest import run_anchor
from tests.support.media import FFMPEG, decoded_seconds, probe

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
    # A speaking anchor: during a sentence the anchor's face changes from frame to frame (mouth and eyes).
    cues = parse_vtt((run_dir / "subtitles.vtt").read_text(encoding="utf-8"))
    cue = max(cues, key=lambda c: c.end - c.start)
    left, top, right, bottom = Layout(1920, 1080, ("right",)).cast_box("right")
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-ss", f"{cue.start:.3f}", "-t", "2", "-i", str(run_dir / "video.mp4"), "-vf",
         f"crop={right - left}:{bottom - top}:{left}:{top},format=gray", "-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    frames = np.frombuffer(raw, np.uint8).reshape(-1, bottom - top, right - left).astype(np.int16)
    changes = np.abs(np.diff(frames, axis=0)).max(axis=(1, 2)) > 40
    assert changes.sum() >= 8, f"the anchor's face changed in {changes.sum()} of {len(changes)} frames"
