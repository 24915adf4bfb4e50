"""When each sound of a sentence is heard in its WAV, from the AudioQuery it was synthesised from: what the cast's
mouths follow on screen.

The engine turns a query into sound in whole frames of 1/93.75 s (256 samples at 24 kHz), and this module counts
them exactly as it does (voicevox_engine/tts_pipeline/tts_engine.py, `_query_to_decoder_feature`):

    interrogative phrases gain a 0.15 s mora of their last vowel (enable_interrogative_upspeak, on by default)
    moras in order, each phrase's pause mora after it; prePhonemeLength and postPhonemeLength as silence around them
    pause moras last pauseLength when it is given, times pauseLengthScale
    every length divided by speedScale, then rounded to frames half to even, consonant and vowel apart

So a sound starts on the sample where the engine's decoder puts it. The timing travels with the WAV itself, in a
RIFF chunk of its own after the audio ("antp", JSON), so the audio cache and a resumed run keep it without a second
file; players and the `wave` module skip chunks they do not know.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from job.model import Phoneme

FRAME_RATE = 93.75
"""The engine's frames per second (24000 / 256)."""
UPSPEAK_SECONDS = 0.15
"""The length of the mora the engine adds to a question's last phrase."""
MAX_MORAS = 4000
"""More moras than any sentence has (a 400-character sentence has about 600): a reply beyond is not timed."""
CHUNK_ID = b"antp"
_MAX_CHUNK_BYTES = 1 << 20


def phonemes(query: Mapping[str, Any], *, upspeak: bool = True) -> tuple[Phoneme, ...]:
    """The sounds of the synthesis of `query`, timed in seconds from the start of its WAV; () when the query is not
    one the engine could have spoken (a reply from outside: malformed, or out of bounds)."""
    try:
        return _timed(query, upspeak)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return ()


def _timed(query: Mapping[str, Any], upspeak: bool) -> tuple[Phoneme, ...]:
    speed = _length(query["speedScale"])
    if speed <= 0:
        raise ValueError("speedScale must be positive")
    pause = query.get("pauseLength")
    pause_scale = _length(query.get("pauseLengthScale", 1.0))
    moras: list[tuple[str | None, float | None, str, float]] = [("", None, "sil", _length(query["prePhonemeLength"]))]
    for phrase in query["accent_phrases"]:
        spoken = [_mora(m) for m in phrase["moras"]]
        if upspeak and phrase.get("is_interrogative") and spoken and float(phrase["moras"][-1]["pitch"]) > 0:
            spoken.append((None, None, spoken[-1][2], UPSPEAK_SECONDS))
        moras += spoken
        if phrase.get("pause_mora"):
            moras.append(_mora(phrase["pause_mora"]))
        if len(moras) > MAX_MORAS:
            raise ValueError("too many moras")
    moras.append(("", None, "sil", _length(query["postPhonemeLength"])))
    moras = [
        (c, cl, vowel, (_length(pause) if pause is not None else length) * pause_scale if vowel == "pau" else length)
        for c, cl, vowel, length in moras
    ]

    timed: list[Phoneme] = []
    frame = 0
    for consonant, consonant_length, vowel, vowel_length in moras:
        # The engine divides a consonant's length only when it is non-zero, and counts its frames whenever it is
        # given: what is heard is the mora as a whole, consonant first.
        consonant_frames = _frames(consonant_length / speed if consonant_length else 0.0)
        if consonant and consonant_frames:
            timed.append(Phoneme(consonant, frame / FRAME_RATE, (frame + consonant_frames) / FRAME_RATE))
        frame += consonant_frames
        vowel_frames = _frames(vowel_length / speed)
        if vowel_frames:
            timed.append(Phoneme(vowel, frame / FRAME_RATE, (frame + vowel_frames) / FRAME_RATE))
        frame += vowel_frames
    return tuple(timed)


def _mora(mora: Mapping[str, Any]) -> tuple[str | None, float | None, str, float]:
    consonant = mora.get("consonant")
    consonant_length = mora.get("consonant_length")
    return (
        str(consonant) if consonant else None,
        None if consonant_length is None else _length(consonant_length),
        str(mora["vowel"]),
        _length(mora["vowel_length"]),
    )


def _length(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= 60:
        raise ValueError(f"a length of {value!r}")
    return number


def _frames(seconds: float) -> int:
    return round(seconds * FRAME_RATE)  # Python's round is half to even, like numpy's, which the engine uses


# -- the timing inside the WAV ---------------------------------------------------------------------------------


def with_phonemes(wav: bytes, timed: Sequence[Phoneme]) -> bytes:
    """`wav` with its timing in an "antp" chunk at the end (the RIFF size updated); unchanged when not a RIFF WAV."""
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        return wav
    payload = json.dumps([[p.phoneme, p.start, p.end] for p in timed]).encode()  # floats round-trip exactly
    chunk = CHUNK_ID + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    body = wav[: 8 + struct.unpack("<I", wav[4:8])[0]] if len(wav) >= 8 else wav
    body = body + (b"\0" if len(body) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body) - 8 + len(chunk)) + body[8:] + chunk


def phonemes_in(wav: bytes) -> tuple[Phoneme, ...] | None:
    """The timing a WAV carries in its "antp" chunk, or None when it has none (or an unreadable one)."""
    position = 12
    while position + 8 <= len(wav):
        kind, size = wav[position : position + 4], struct.unpack("<I", wav[position + 4 : position + 8])[0]
        if kind == CHUNK_ID:
            if size > _MAX_CHUNK_BYTES:
                return None
            try:
                items = json.loads(wav[position + 8 : position + 8 + size])
                return tuple(Phoneme(str(p), float(s), float(e)) for p, s, e in items)
            except (ValueError, TypeError):
                return None
        position += 8 + size + (size % 2)
    return None
