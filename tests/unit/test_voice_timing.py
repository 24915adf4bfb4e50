"""The sounds' timing, counted from an AudioQuery as the engine counts them, and carried inside the WAV."""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np

from job.voice.timing import FRAME_RATE, phonemes, phonemes_in, with_phonemes
from tests.support.audio import write_tone


def _mora(
    vowel: str, length: float, consonant: str | None = None, consonant_length: float | None = None
) -> dict[str, Any]:
    return {
        "text": "ア",
        "consonant": consonant,
        "consonant_length": consonant_length,
        "vowel": vowel,
        "vowel_length": length,
        "pitch": 0.0 if vowel in "AIUEO" or vowel in ("pau", "N", "cl") else 5.6,
    }


def _query(**settings: Any) -> dict[str, Any]:
    phrases = [
        {"moras": [_mora("o", 0.11, "k", 0.061), _mora("N", 0.07)], "accent": 1, "pause_mora": _mora("pau", 0.33)},
        {"moras": [_mora("a", 0.093, "m", 0.052), _mora("U", 0.05, "s", 0.08)], "accent": 1, "is_interrogative": True},
    ]
    return {
        "accent_phrases": phrases,
        "speedScale": 1.0,
        "pitchScale": 0.0,
        "intonationScale": 1.0,
        "volumeScale": 1.0,
        "prePhonemeLength": 0.1,
        "postPhonemeLength": 0.1,
        "pauseLength": None,
        "pauseLengthScale": 1.0,
        "outputSamplingRate": 24000,
        "outputStereo": False,
    } | settings


def _frames(seconds: float) -> int:
    return int(np.round(seconds * FRAME_RATE))  # the engine's _to_frame


def test_each_sound_starts_on_the_frame_the_engine_gives_it() -> None:
    timed = phonemes(_query())
    lengths = [0.1, 0.061, 0.11, 0.07, 0.33, 0.052, 0.093, 0.08, 0.05, 0.1]
    expected_names = ["sil", "k", "o", "N", "pau", "m", "a", "s", "U", "sil"]
    assert [p.phoneme for p in timed] == expected_names, "the last mora is unvoiced: no rising mora is added"
    frame = 0
    for sound, length in zip(timed, lengths, strict=True):
        assert sound.start == frame / FRAME_RATE
        frame += _frames(length)
        assert sound.end == frame / FRAME_RATE


def test_speed_pause_length_and_its_scale_apply_as_the_engine_applies_them() -> None:
    quick = phonemes(_query(speedScale=2.0))
    assert quick[2].phoneme == "o"
    assert round(quick[2].start * FRAME_RATE) == _frames(0.1 / 2) + _frames(0.061 / 2)
    assert round((quick[2].end - quick[2].start) * FRAME_RATE) == _frames(0.11 / 2)
    pause = next(p for p in phonemes(_query(pauseLength=0.8, pauseLengthScale=0.5)) if p.phoneme == "pau")
    assert round((pause.end - pause.start) * FRAME_RATE) == _frames(0.4)
    scaled = next(p for p in phonemes(_query(pauseLengthScale=2.0, speedScale=1.25)) if p.phoneme == "pau")
    assert round((scaled.end - scaled.start) * FRAME_RATE) == _frames(0.33 * 2.0 / 1.25)


def test_a_question_ending_on_a_voiced_mora_gains_the_rising_mora() -> None:
    query = _query()
    query["accent_phrases"][1]["moras"][-1] = _mora("a", 0.09, "k", 0.06)
    timed = phonemes(query)
    assert [p.phoneme for p in timed[-3:]] == ["a", "a", "sil"]
    assert round((timed[-2].end - timed[-2].start) * FRAME_RATE) == _frames(0.15)
    assert [p.phoneme for p in phonemes(query, upspeak=False)[-2:]] == ["a", "sil"]


def test_a_reply_the_engine_could_not_have_made_is_not_timed() -> None:
    assert phonemes({"accent_phrases": []}) == ()
    assert phonemes(_query(speedScale=0)) == ()
    assert phonemes(_query(prePhonemeLength="NaN")) == ()
    bad = _query()
    bad["accent_phrases"][0]["moras"][0]["vowel_length"] = 1e9
    assert phonemes(bad) == ()
    flood = _query(accent_phrases=[{"moras": [_mora("a", 0.1)] * 100, "accent": 1}] * 50)
    assert phonemes(flood) == ()


def test_the_timing_travels_inside_the_wav_and_the_audio_is_untouched(tmp_path: object) -> None:
    from pathlib import Path

    wav = write_tone(Path(str(tmp_path)) / "a.wav", 2401, 24000).read_bytes()  # an odd number of bytes of audio
    timed = phonemes(_query())
    carried = with_phonemes(wav, timed)
    assert phonemes_in(carried) == timed
    assert phonemes_in(wav) is None
    with wave.open(io.BytesIO(carried)) as a, wave.open(io.BytesIO(wav)) as b:
        assert a.readframes(a.getnframes()) == b.readframes(b.getnframes())
    assert int.from_bytes(carried[4:8], "little") == len(carried) - 8
    assert with_phonemes(b"not a wav", timed) == b"not a wav"
