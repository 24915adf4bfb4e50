"""The timeline as a pure function: sentences on a track of samples, pictures on whole frames."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from job.model import Utterance
from job.video.timeline import LEAD_IN_SECONDS, SEGMENT_GAP_SECONDS, plan_timeline

RATE = 24_000


def test_timeline_pauses_between_segments_and_starts_pictures_on_the_nearest_frame() -> None:
    said = [Utterance(0, "a", Path("a"), 0), Utterance(0, "b", Path("b"), 0), Utterance(1, "c", Path("c"), 0)]
    timeline = plan_timeline(said, [12_345, 24_000, 7_777], RATE, 30, subtitles=True)
    lead, gap = round(LEAD_IN_SECONDS * RATE), round(SEGMENT_GAP_SECONDS * RATE)
    assert timeline.starts == (lead, lead + 12_345, lead + 12_345 + 24_000 + gap)
    speech_end = timeline.starts[-1] + 7_777
    assert timeline.frames == -(-(speech_end + RATE) * 30 // RATE)  # the tail, rounded up to a whole frame
    assert timeline.samples == timeline.frames * RATE // 30
    assert [(s.segment, s.utterance, s.start) for s in timeline.stills] == [
        (0, None, 0),
        (0, 0, round(lead * 30 / RATE)),
        (0, 1, round((lead + 12_345) * 30 / RATE)),
        (1, None, round((lead + 36_345) * 30 / RATE)),
        (1, 2, round(timeline.starts[2] * 30 / RATE)),
        (1, None, round(speech_end * 30 / RATE)),
    ]
    assert all(a.end == b.start for a, b in itertools.pairwise(timeline.stills))
    assert timeline.stills[-1].end == timeline.frames
    plain = plan_timeline(said, [12_345, 24_000, 7_777], RATE, 30, subtitles=False)
    assert [(s.segment, s.utterance, s.start, s.end) for s in plain.stills] == [
        (0, None, 0, timeline.stills[3].start),
        (1, None, timeline.stills[3].start, timeline.frames),
    ]


def test_a_sentence_shorter_than_a_frame_never_shows_but_keeps_its_cue() -> None:
    said = [Utterance(0, "a", Path("a"), 0), Utterance(0, "b", Path("b"), 0), Utterance(0, "c", Path("c"), 0)]
    timeline = plan_timeline(said, [24_000, 100, 24_000], RATE, 30, subtitles=True)
    assert [s.utterance for s in timeline.stills] == [None, 0, 2, None]
    assert len(timeline.cues) == 3 and timeline.cues[1].end - timeline.cues[1].start == pytest.approx(100 / RATE)
