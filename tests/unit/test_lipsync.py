"""Mouths from the engine's timing and eyes that blink on a seeded schedule: which state shows in which frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from job.model import Phoneme, Utterance
from job.video.cast.lipsync import BLINK_EVERY, BLINK_SECONDS, blinking, mouth_frames, shapes

RATE, FPS = 24_000, 30


def test_vowels_show_their_mouth_lip_consonants_close_it_others_lead_into_their_vowel() -> None:
    sounds = [("sil", 0.0, 0.1), ("k", 0.1, 0.15), ("a", 0.15, 0.25), ("m", 0.25, 0.3), ("i", 0.3, 0.4)]
    sounds += [("s", 0.4, 0.45), ("U", 0.45, 0.5), ("N", 0.5, 0.6), ("pau", 0.6, 0.9), ("o", 0.9, 1.0)]
    sounds += [("cl", 1.0, 1.1), ("e", 1.1, 1.2)]
    shaped = [shape for shape, _, _ in shapes([Phoneme(*s) for s in sounds])]
    assert shaped == ["closed", "a", "a", "closed", "i", "u", "u", "closed", "closed", "o", "closed", "e"]


def _utterance(speaker: str, sounds: list[tuple[str, float, float]]) -> Utterance:
    return Utterance(0, "x", Path("unused.wav"), sounds[-1][2], speaker, tuple(Phoneme(*s) for s in sounds))


def test_a_sound_shows_from_the_frame_nearest_its_first_sample_and_only_on_its_speakers_face() -> None:
    first = _utterance("めたん", [("sil", 0.0, 0.096), ("a", 0.096, 0.3), ("pau", 0.3, 0.5), ("o", 0.5, 0.62)])
    second = _utterance("ずんだもん", [("i", 0.0, 0.2)])
    starts = [RATE, 3 * RATE]  # the first sentence from 1 s, the second from 3 s
    voices = [np.zeros(RATE, np.int16), np.zeros(RATE, np.int16)]
    metan = mouth_frames("めたん", [first, second], starts, voices, RATE, FPS, 150)
    a_from, a_to = round(1.096 * FPS), round(1.3 * FPS)  # frames 33 and 39
    assert metan[a_from - 1] == "closed" and metan[a_from:a_to] == ["a"] * (a_to - a_from)
    assert metan[round(1.4 * FPS)] == "closed", "a pause closes the mouth"
    assert metan[round(1.55 * FPS)] == "o"
    assert set(metan[round(2.9 * FPS) :]) == {"closed"}, "the other member's words do not move this mouth"
    zunda = mouth_frames("ずんだもん", [first, second], starts, voices, RATE, FPS, 150)
    assert zunda[3 * FPS : 3 * FPS + 6] == ["i"] * 6 and set(zunda[: 3 * FPS]) == {"closed"}


def test_without_the_engines_timing_the_mouth_follows_the_loudness() -> None:
    untimed = Utterance(0, "x", Path("unused.wav"), 1.0, "a")
    voice = np.zeros(RATE, np.int16)
    voice[RATE // 2 :] = (8000 * np.sin(np.arange(RATE // 2) * 0.3)).astype(np.int16)
    frames = mouth_frames("a", [untimed], [0], [voice], RATE, FPS, 40)
    assert set(frames[: FPS // 2 - 1]) == {"closed"} and set(frames[FPS // 2 + 1 : FPS]) == {"a"}


def test_blinks_come_every_few_seconds_and_the_seed_alone_decides_when() -> None:
    frames = 120 * FPS
    closed = blinking("アンカーニュース|2026-11-24T07:00:00+09:00|めたん", frames, FPS)
    assert closed == blinking("アンカーニュース|2026-11-24T07:00:00+09:00|めたん", frames, FPS)
    assert closed != blinking("アンカーニュース|2026-11-24T07:00:00+09:00|ずんだもん", frames, FPS)
    onsets = [n for n in range(1, frames) if closed[n] and not closed[n - 1]]
    runs = [next(m for m in range(n, frames) if not closed[m]) - n for n in onsets]
    assert set(runs) == {round(BLINK_SECONDS * FPS)}
    gaps = np.diff(onsets) / FPS
    assert 120 / BLINK_EVERY[1] <= len(onsets) <= 2 * 120 / BLINK_EVERY[0]
    assert gaps.max() <= BLINK_EVERY[1] + 0.1 and gaps.min() > 0
    assert sum(closed) < 0.1 * frames, "eyes are open almost all the time"
