"""Symbols in a story's text ("！？", "…", "※", "（）") and a sentence the engine cannot read: `anchor render` on
the stand-in engine publishes subtitles in which every cue has words and real length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from job.model import Cue
from job.video.subtitles import parse_srt, parse_vtt
from tests.e2e.conftest import AnchorRun, render_feed_text
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e

SHORTEST_CUE_SECONDS = 0.05
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>記号テスト</title><link>https://news.example.jp/</link>
<item>
  <title>新駅が開業！？</title>
  <link>https://news.example.jp/station</link>
  <pubDate>Tue, 24 Nov 2026 06:30:00 +0900</pubDate>
  <description>新しい駅が開業しました！？ 「※」。（）。…。駅前は大勢の人でにぎわいました!? 안녕하세요。</description>
</item>
</channel></rss>
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, engine: StandinEngine) -> tuple[AnchorRun, Path]:
    run, folder = render_feed_text(
        tmp_path_factory.mktemp("symbols"), "symbols", FEED, engine, title="記号ニュース", stories=1, fps=10
    )
    assert run.code == 0, run.stderr
    return run, folder


def _cues(run_dir: Path) -> dict[str, list[Cue]]:
    return {
        "srt": parse_srt((run_dir / "subtitles.srt").read_text(encoding="utf-8")),
        "vtt": parse_vtt((run_dir / "subtitles.vtt").read_text(encoding="utf-8")),
    }


def test_every_published_cue_has_words_and_length(rendered: tuple[AnchorRun, Path]) -> None:
    _, run_dir = rendered
    for kind, cues in _cues(run_dir).items():
        assert cues, kind
        for cue in cues:
            assert cue.end - cue.start >= SHORTEST_CUE_SECONDS, (kind, cue)
            assert any(ch.isalnum() for ch in cue.text), (kind, cue)


def test_the_symbols_stay_with_the_sentence_before_them(rendered: tuple[AnchorRun, Path]) -> None:
    _, run_dir = rendered
    texts = [cue.text for cue in _cues(run_dir)["srt"]]
    assert "新駅が開業！？" in texts
    assert any(text.endswith("新しい駅が開業しました！？「※」。（）。…。") for text in texts)  # after the source
    assert "駅前は大勢の人でにぎわいました!?" in texts
    script = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    assert [c["text"] for c in script["cues"]] == texts


def test_a_sentence_the_engine_cannot_read_is_left_out_and_reported(rendered: tuple[AnchorRun, Path]) -> None:
    run, run_dir = rendered
    assert not any("안녕하세요" in cue.text for cue in _cues(run_dir)["vtt"])
    [warning] = [w for w in run.result["warnings"] if "nothing the voice engine could speak" in w]
    assert warning.startswith("1 sentence") and "안녕하세요。" in warning
    [done] = [e for e in run.events if e["event"] == "voice.done"]
    assert done["unspoken"] == 1 and done["spoken"] == len(_cues(run_dir)["srt"])
