"""Which mouth and eyes each member shows in every frame: mouths from the sounds the engine timed (口パク), eyes
blinking on a schedule seeded by the broadcast (目パチ).

A vowel shows its own mouth (a i u e o); an unvoiced vowel (A I U E O, as in the -su of です) a small one (u); N,
the glottal stop cl, pauses and the silence around a sentence close it. A consonant shows the mouth of the vowel it
leads into, except m, b and p (and my, by, py), which close the lips. A sound heard from sample s shows from the
frame nearest s, as the pictures change (job/video/timeline.py), so the mouth changes on the frame where the sound
does. A sentence the engine did not time (a reply we could not read) moves the mouth with its loudness instead.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import numpy as np

from job.model import Phoneme, Utterance

VOWEL_MOUTHS = {"a": "a", "i": "i", "u": "u", "e": "e", "o": "o"} | dict.fromkeys("AIUEO", "u")
LIP_CLOSERS = frozenset({"m", "my", "b", "by", "p", "py"})
"""Consonants made with closed lips."""
BLINK_SECONDS = 0.12
"""How long a blink keeps the eyes closed: about 4 frames at 30 fps."""
BLINK_EVERY = (2.0, 5.5)
"""Seconds between blinks, drawn uniformly: people blink every few seconds, on camera a little less."""
DOUBLE_BLINK_CHANCE = 0.15
_LOUD_FRACTION = 0.12
"""Without the engine's timing, a frame whose sound is this loud against the sentence's loudest frame opens the
mouth."""


def shapes(phonemes: Sequence[Phoneme]) -> list[tuple[str, float, float]]:
    """The mouth shape of each sound: (shape, start, end) in seconds from the sentence's start."""
    shaped = []
    for number, sound in enumerate(phonemes):
        if sound.phoneme in VOWEL_MOUTHS:
            shape = VOWEL_MOUTHS[sound.phoneme]
        elif sound.phoneme in LIP_CLOSERS or sound.phoneme in ("N", "cl", "pau", "sil"):
            shape = "closed"
        else:  # a consonant: the lips are already on their way to its vowel
            following = phonemes[number + 1].phoneme if number + 1 < len(phonemes) else ""
            shape = VOWEL_MOUTHS.get(following, "closed")
        shaped.append((shape, sound.start, sound.end))
    return shaped


def mouth_frames(
    member: str,
    utterances: Sequence[Utterance],
    starts: Sequence[int],
    voices: Sequence[np.ndarray],
    sample_rate: int,
    fps: int,
    frames: int,
) -> list[str]:
    """The mouth `member` shows in each of `frames` frames: closed, except while one of their sentences sounds.

    `starts` are the sentences' first samples in the narration track, `voices` their samples (the loudness fallback)."""
    track = ["closed"] * frames

    def frame(sample: int) -> int:
        return min((2 * sample * fps + sample_rate) // (2 * sample_rate), frames)  # nearest, as the timeline's

    for utterance, start, voice in zip(utterances, starts, voices, strict=True):
        if utterance.speaker != member:
            continue
        if utterance.phonemes:
            for shape, begin, end in shapes(utterance.phonemes):
                first, last = frame(start + round(begin * sample_rate)), frame(start + round(end * sample_rate))
                track[first:last] = [shape] * (last - first)
        else:
            _by_loudness(track, voice, frame(start), sample_rate, fps, frames)
    return track


def _by_loudness(track: list[str], voice: np.ndarray, first: int, sample_rate: int, fps: int, frames: int) -> None:
    per_frame = max(sample_rate // fps, 1)
    count = min(len(voice) // per_frame, frames - first)
    if count <= 0:
        return
    blocks = voice[: count * per_frame].astype(np.float64).reshape(count, per_frame)
    level = np.sqrt(np.mean(blocks**2, axis=1))
    loud = level > _LOUD_FRACTION * max(float(level.max()), 1.0)
    for n in range(count):
        track[first + n] = "a" if loud[n] else "closed"


def blinking(seed: str, frames: int, fps: int) -> list[bool]:
    """For each frame, whether the eyes are closed: a blink every few seconds, sometimes two in a row, on a schedule
    that `seed` alone decides (a resumed run draws the same frames)."""
    closed = [False] * frames
    chooser = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))  # noqa: S311
    length = max(1, round(BLINK_SECONDS * fps))
    moment = chooser.uniform(0.5, BLINK_EVERY[1])
    while (first := round(moment * fps)) < frames:
        closed[first : first + length] = [True] * min(length, frames - first)
        if chooser.random() < DOUBLE_BLINK_CHANCE:
            again = first + 2 * length + 1
            closed[again : again + length] = [True] * max(0, min(length, frames - again))
        moment += chooser.uniform(*BLINK_EVERY)
    return closed
