"""The render's sound: normalised to spec.audio.loudness and measured on the video; a music bed that cannot be used
is one warning and a broadcast without it; the speech spans a bed dips under are one per segment."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from api.v1alpha1 import Audio, Video
from job.model import Utterance
from job.video import render
from job.video.mix import measure
from job.video.timeline import plan_timeline
from tests.unit.test_render import RATE, a_narration, a_script


def test_the_sound_is_at_the_asked_loudness_and_the_manifest_says_what_was_measured(tmp_path: Path) -> None:
    script = a_script()
    narration = a_narration(script, tmp_path / "voice")
    audio = Audio.model_validate({"loudness": {"integratedLufs": -23, "truePeakDbtp": -2}})
    video = Video.model_validate({"resolution": "1280x720", "fps": 5})
    rendering = render.render(script, narration, video, tmp_path / "render", audio=audio)
    heard = measure(rendering.video)
    assert abs(heard.integrated_lufs + 23) <= 1 and heard.true_peak_dbtp <= -2 + 0.5
    assert rendering.loudness["integratedLufs"] == pytest.approx(heard.integrated_lufs, abs=0.05)
    assert (rendering.loudness["targetLufs"], rendering.loudness["music"]) == (-23.0, False)


def test_a_music_bed_that_cannot_be_used_is_a_warning_and_no_music(tmp_path: Path) -> None:
    script = a_script()
    narration = a_narration(script, tmp_path / "voice")
    garbage = tmp_path / "song.mp3"
    garbage.write_bytes(b"\x00not music" * 100)
    audio = Audio.model_validate({"music": {"file": str(garbage), "credit": "Music: nobody"}})
    video = Video.model_validate({"resolution": "1280x720", "fps": 5})
    rendering = render.render(script, narration, video, tmp_path / "render", audio=audio, music=garbage)
    (warning,) = [w for w in rendering.warnings if "spec.audio.music" in w]
    assert "song.mp3" in warning and "without music" in warning
    assert rendering.music_credit == "" and rendering.loudness["music"] is False


def test_a_bed_dips_once_per_segment_across_the_pauses_between_its_sentences() -> None:
    script = a_script()
    utterances = [
        Utterance(n, text, Path("unused.wav"), 1.0)
        for n, segment in enumerate(script.segments)
        for text in segment.sentences
    ]
    lengths = [RATE] * len(utterances)
    timeline = plan_timeline(utterances, lengths, RATE, 30, subtitles=True, gap_seconds=1.8)
    spans = timeline.speech(utterances, lengths)
    assert len(spans) == len(script.segments)
    assert spans[0] == (timeline.starts[0] / RATE, timeline.starts[1] / RATE + 1.0)  # the intro's two sentences
    assert all(b[0] - a[1] == pytest.approx(1.8) for a, b in itertools.pairwise(spans))
