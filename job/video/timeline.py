"""The timeline of a broadcast: where every sentence sits in the narration track (in audio samples) and which
picture is on screen in every frame, and the narration track itself.

The timeline is laid out in audio samples and only then mapped to frames, so picture and sound cannot drift
apart, and the video is exactly as long as the audio.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from job.model import Cue, TransientError, Utterance
from job.video.subtitles import cue_text

LEAD_IN_SECONDS = 0.3
"""Silence before the first sentence, so a player's first frame is not mid-word."""
SEGMENT_GAP_SECONDS = 0.6
"""Silence between segments (intro, each story, outro): the pause a newsreader makes between items."""
MUSIC_GAP_SECONDS = 1.8
"""The same over a music bed: long enough for the bed to come back up between items (job/video/mix.py dips it
0.3 s before a voice and brings it back over 0.5 s after)."""
TAIL_SECONDS = 1.0
"""Silence after the last sentence, with the sign-off card still on screen."""


@dataclass(frozen=True)
class Still:
    """One picture held on screen from frame `start` up to, not including, frame `end`.

    The picture is the slide of script segment `segment`, with the subtitle of utterance `utterance` burned in,
    or the bare slide when `utterance` is None (the pauses between segments, the lead-in and the tail).
    """

    segment: int
    utterance: int | None
    start: int
    end: int

    @property
    def picture(self) -> tuple[int, int | None]:
        return self.segment, self.utterance


@dataclass(frozen=True)
class Timeline:
    """Where every sentence and picture sits: sentences in audio samples, pictures in whole frames."""

    fps: int
    sample_rate: int
    starts: tuple[int, ...]
    """First sample of each utterance in the narration track."""
    samples: int
    """Length of the narration track: the video's length, to well within one sample."""
    frames: int
    cues: tuple[Cue, ...]
    stills: tuple[Still, ...]

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def speech(self, utterances: Sequence[Utterance], lengths: Sequence[int]) -> list[tuple[float, float]]:
        """Where someone speaks, in seconds: one span per segment, from its first sentence's start to its last's end
        (a music bed stays down across the pauses between sentences, and comes up between segments)."""
        spans: list[tuple[float, float]] = []
        for index, utterance in enumerate(utterances):
            start, end = self.starts[index] / self.sample_rate, (self.starts[index] + lengths[index]) / self.sample_rate
            if index and utterance.segment == utterances[index - 1].segment:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        return spans


def plan_timeline(
    utterances: Sequence[Utterance],
    lengths: Sequence[int],
    sample_rate: int,
    fps: int,
    *,
    subtitles: bool,
    named: bool = False,
    gap_seconds: float = SEGMENT_GAP_SECONDS,
) -> Timeline:
    """Lay the utterances (`lengths` in samples) on one track with pauses, and the pictures on frames; with `named`
    (a dialogue), each cue says who speaks.

    A picture changes at the frame nearest to the sample where its sentence starts; the track is padded so that
    it ends exactly on the last frame's end.
    """
    if not utterances:
        raise ValueError("a broadcast needs at least one utterance")
    gap = round(gap_seconds * sample_rate)
    position = round(LEAD_IN_SECONDS * sample_rate)
    starts: list[int] = []
    for index, utterance in enumerate(utterances):
        if index and utterance.segment != utterances[index - 1].segment:
            position += gap
        starts.append(position)
        position += lengths[index]
    speech_end = position
    frames = max(1, -(-(speech_end + round(TAIL_SECONDS * sample_rate)) * fps // sample_rate))  # ceil, exactly

    def frame(sample: int) -> int:
        return (2 * sample * fps + sample_rate) // (2 * sample_rate)  # nearest frame, in integers

    marks: list[tuple[int, int, int | None]] = []
    for index, utterance in enumerate(utterances):
        if index == 0:
            marks.append((0, utterance.segment, None))
        elif utterance.segment != utterances[index - 1].segment:
            marks.append((frame(starts[index - 1] + lengths[index - 1]), utterance.segment, None))
        if subtitles:
            marks.append((frame(starts[index]), utterance.segment, index))
    if subtitles:
        marks.append((frame(speech_end), utterances[-1].segment, None))
    cues = tuple(
        Cue(start / sample_rate, (start + length) / sample_rate, cue_text(u.text), u.speaker if named else "")
        for u, start, length in zip(utterances, starts, lengths, strict=True)
    )
    return Timeline(
        fps=fps,
        sample_rate=sample_rate,
        starts=tuple(starts),
        samples=round(frames * sample_rate / fps),
        frames=frames,
        cues=cues,
        stills=_stills(marks, frames),
    )


def _stills(marks: Sequence[tuple[int, int, int | None]], frames: int) -> tuple[Still, ...]:
    stills: list[Still] = []
    for number, (start, segment, utterance) in enumerate(marks):
        end = marks[number + 1][0] if number + 1 < len(marks) else frames
        end = min(end, frames)
        if end <= start:
            continue  # a sentence shorter than half a frame: its picture never shows
        if stills and stills[-1].picture == (segment, utterance) and stills[-1].end == start:
            stills[-1] = Still(segment, utterance, stills[-1].start, end)
        else:
            stills.append(Still(segment, utterance, start, end))
    return tuple(stills)


# -- audio ----------------------------------------------------------------------------------------------------


def read_voice(utterance: Utterance, sample_rate: int) -> np.ndarray:
    """One utterance's samples as mono int16, checked against the narration's sample rate."""
    try:
        with wave.open(str(utterance.wav), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise TransientError(f"the voice of {utterance.text[:40]!r} ({utterance.wav}) is unreadable: {exc}") from None
    if rate != sample_rate or width != 2 or channels not in (1, 2):
        raise TransientError(
            f"the voice of {utterance.text[:40]!r} is {rate} Hz, {8 * width}-bit, {channels} channel(s); "
            f"expected {sample_rate} Hz 16-bit mono like the rest of the narration"
        )
    samples = np.frombuffer(data, dtype="<i2")
    if channels == 2:
        samples = samples.reshape(-1, 2).mean(axis=1).astype("<i2")
    return samples


def write_audio(voices: Sequence[np.ndarray], timeline: Timeline, path: Path) -> Path:
    """The narration track: every utterance at its start sample, silence elsewhere, padded to the video's end."""
    track = np.zeros(timeline.samples, dtype="<i2")
    for start, voice in zip(timeline.starts, voices, strict=True):
        track[start : start + len(voice)] = voice[: max(0, timeline.samples - start)]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(timeline.sample_rate)
        wav.writeframes(track.tobytes())
    return path
