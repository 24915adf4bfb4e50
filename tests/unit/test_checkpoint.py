"""A run's script checkpoint: what a retried pod reads back is the script the first one wrote, speakers included."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from api.v1alpha1 import Script as ScriptSpec
from job.memory import checkpoint
from job.memory.state import LocalState
from job.model import Story
from job.script.dialogue import write_dialogue
from job.script.templates import write_script

STORIES = [
    Story("橋が開通", "https://n.example/1", "NHK", "橋が開通しました。"),
    Story("大雪", "https://n.example/2", "", "雪です。"),
]
AIRED = datetime(2026, 12, 4, 7, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_a_dialogue_comes_back_with_its_cast_and_who_says_each_line(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    script = write_dialogue(STORIES, ScriptSpec(), title="朝", aired_at=AIRED, cast=["めたん", "ずんだもん"])
    assert checkpoint.save_script(state, "run-1", script, "templates")
    assert checkpoint.load_script(state, "run-1") == (script, "templates")


def test_a_checkpoint_from_before_casts_is_the_lead_anchors_monologue(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    script = write_script(STORIES, ScriptSpec(anchorName="アンカー"), title="朝", aired_at=AIRED)
    checkpoint.save_script(state, "run-1", script, "templates")
    (path,) = tmp_path.rglob("script.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    for segment in document["segments"]:
        del segment["speakers"]
    del document["cast"], document["format"]
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    loaded, _ = checkpoint.load_script(state, "run-1") or (None, None)
    assert loaded is not None and loaded.format == "monologue" and loaded.presenters == ("アンカー",)
    assert {loaded.speaker(s, n) for s, seg in enumerate(loaded.segments) for n in range(len(seg.sentences))} == {
        "アンカー"
    }


def test_speakers_that_do_not_match_the_sentences_are_no_checkpoint(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    script = write_dialogue(STORIES, ScriptSpec(), title="朝", aired_at=AIRED, cast=["めたん", "ずんだもん"])
    checkpoint.save_script(state, "run-1", script, "templates")
    (path,) = tmp_path.rglob("script.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    document["segments"][0]["speakers"].pop()
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert checkpoint.load_script(state, "run-1") is None  # the run writes its script anew
