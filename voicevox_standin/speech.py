"""Japanese speech for the stand-in: OpenJTalk's front end makes VOICEVOX's accent phrases, its HTS back end speaks.

    text ──OpenJTalk front end──► full-context labels ──► AccentPhrase[] (moras, accent, pauses) = AudioQuery
    AudioQuery ──moras back to NJD words──► labels per pause group ──HTS──► 48 kHz ──► silences, resample, WAV

Synthesis reads the query's moras, never the original text (the engine's API does not send it), so edits to
moras, accents, unvoicing, pauses and the interrogative flag are heard. The mora lengths and pitches are plausible
numbers for the query's readers; the HTS voice sets its own, so those two edits are not heard (the engine
manifest says so through `adjust_phoneme_length` / `adjust_mora_pitch` = false).

Text with nothing to say (symbols only: "！？", "…", "※", "（）") gives what the engine gives: a query with no
accent phrases and an empty kana, and from it a WAV of the pre- and post-phoneme silence alone, in whole frames of
256 samples at 24 kHz (18 frames, 0.192 s, by default). That is the engine with its core (voicevox_engine/
tts_pipeline/tts_engine.py: _query_to_decoder_feature adds the two silences, _to_frame rounds them, the decoder
makes 256 samples a frame). The engine started with --enable_mock answers 0 frames instead
(voicevox_engine/dev/tts_engine/mock.py reads only the moras' text to OpenJTalk); anchor's job copes with both.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import re
import sys
import wave
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field


def _import_openjtalk() -> Any:
    """pyopenjtalk-plus prints an ONNX Runtime notice on import (we never use its ONNX reading model); drop that
    notice, pass anything else it prints on, and let import errors raise as usual."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        import pyopenjtalk
    for line in printed.getvalue().splitlines():
        if line.strip() and "ONNX Runtime" not in line:
            print(line, file=sys.stdout)
    return pyopenjtalk


pyopenjtalk = _import_openjtalk()

MAX_TEXT_CHARS = 1000
MAX_AUDIO_SECONDS = 600.0
"""A bound on one synthesis, so a single request cannot hold the engine (or its memory) for long."""
_SECONDS_PER_MORA = 0.15
"""A generous estimate of one mora's length at speedScale 1 with the HTS voice (it averages about 0.11 s)."""
DEFAULT_SAMPLING_RATE = 24000
HTS_RATE = 48000
"""The sampling rate of pyopenjtalk's HTS voice."""
FRAME_RATE = 93.75
"""The real engine's frame rate (24000 / 256), reported in its manifest."""
_HTS_SAMPLES_PER_FRAME = round(HTS_RATE / FRAME_RATE)
_UPSPEAK_SECONDS = 0.15
"""The rising mora the engine adds to a question (voicevox_engine's UPSPEAK_LENGTH)."""
_SEMITONES_PER_LOG_F0 = 12 / math.log(2)
_REFERENCE_LOG_F0 = 5.5
"""A typical VOICEVOX mora pitch (log Hz); pitchScale scales log-F0 around it, as the engine does."""


# -- the query's types (the engine's AudioQuery, AccentPhrase and Mora) ------------------------------------


class Mora(BaseModel):
    """One mora: an optional consonant and a vowel (a i u e o, unvoiced A I U E O, N, cl, or pau for a pause)."""

    text: str
    consonant: str | None = None
    consonant_length: float | None = None
    vowel: str
    vowel_length: float
    pitch: float


class AccentPhrase(BaseModel):
    """Moras spoken as one accent unit; `accent` is the 1-based mora after which the pitch falls."""

    moras: list[Mora]
    accent: int
    pause_mora: Mora | None = None
    is_interrogative: bool = False


class AudioQuery(BaseModel):
    """The engine's synthesis query; the bounds keep one request from asking for hours of audio or a crash."""

    accent_phrases: list[AccentPhrase]
    speedScale: Annotated[float, Field(ge=0.1, le=10.0)]
    pitchScale: Annotated[float, Field(ge=-1.0, le=1.0)]
    intonationScale: float
    volumeScale: Annotated[float, Field(ge=0.0, le=10.0)]
    prePhonemeLength: Annotated[float, Field(ge=0.0, le=10.0)]
    postPhonemeLength: Annotated[float, Field(ge=0.0, le=10.0)]
    pauseLength: Annotated[float, Field(ge=0.0, le=10.0)] | None = None
    pauseLengthScale: Annotated[float, Field(ge=0.0, le=10.0)] = 1.0
    outputSamplingRate: Annotated[int, Field(ge=8000, le=192000)]
    outputStereo: bool
    kana: str | None = None


# -- phonemes ------------------------------------------------------------------------------------------------

_MORA_VOWELS = frozenset({"a", "i", "u", "e", "o", "A", "I", "U", "E", "O", "N", "cl"})
_UNVOICED = frozenset({"A", "I", "U", "E", "O"})
_PAUSES = frozenset({"sil", "pau"})

# Katakana for each consonant row and the vowels a i u e o ("" where OpenJTalk never makes that pair).
_KANA_ROWS: dict[str, tuple[str, str, str, str, str]] = {
    "": ("ア", "イ", "ウ", "エ", "オ"),
    "k": ("カ", "キ", "ク", "ケ", "コ"),
    "g": ("ガ", "ギ", "グ", "ゲ", "ゴ"),
    "s": ("サ", "スィ", "ス", "セ", "ソ"),
    "z": ("ザ", "ズィ", "ズ", "ゼ", "ゾ"),
    "t": ("タ", "ティ", "トゥ", "テ", "ト"),
    "d": ("ダ", "ディ", "ドゥ", "デ", "ド"),
    "n": ("ナ", "ニ", "ヌ", "ネ", "ノ"),
    "h": ("ハ", "ヒ", "ホゥ", "ヘ", "ホ"),
    "b": ("バ", "ビ", "ブ", "ベ", "ボ"),
    "p": ("パ", "ピ", "プ", "ペ", "ポ"),
    "m": ("マ", "ミ", "ム", "メ", "モ"),
    "y": ("ヤ", "", "ユ", "イェ", "ヨ"),
    "r": ("ラ", "リ", "ル", "レ", "ロ"),
    "w": ("ワ", "ウィ", "", "ウェ", "ウォ"),
    "f": ("ファ", "フィ", "フ", "フェ", "フォ"),
    "v": ("ヴァ", "ヴィ", "ヴ", "ヴェ", "ヴォ"),
    "ts": ("ツァ", "ツィ", "ツ", "ツェ", "ツォ"),
    "ch": ("チャ", "チ", "チュ", "チェ", "チョ"),
    "sh": ("シャ", "シ", "シュ", "シェ", "ショ"),
    "j": ("ジャ", "ジ", "ジュ", "ジェ", "ジョ"),
    "ky": ("キャ", "", "キュ", "キェ", "キョ"),
    "gy": ("ギャ", "", "ギュ", "ギェ", "ギョ"),
    "ny": ("ニャ", "", "ニュ", "ニェ", "ニョ"),
    "hy": ("ヒャ", "", "ヒュ", "ヒェ", "ヒョ"),
    "by": ("ビャ", "", "ビュ", "ビェ", "ビョ"),
    "py": ("ピャ", "", "ピュ", "ピェ", "ピョ"),
    "my": ("ミャ", "", "ミュ", "ミェ", "ミョ"),
    "ry": ("リャ", "", "リュ", "リェ", "リョ"),
    "ty": ("テャ", "", "テュ", "テェ", "テョ"),
    "dy": ("デャ", "", "デュ", "デェ", "デョ"),
    "kw": ("クァ", "クィ", "", "クェ", "クォ"),
    "gw": ("グァ", "グィ", "", "グェ", "グォ"),
}
_KANA: dict[tuple[str, str], str] = {
    (consonant, vowel): kana
    for consonant, row in _KANA_ROWS.items()
    for vowel, kana in zip("aiueo", row, strict=True)
    if kana
} | {("", "N"): "ン", ("", "cl"): "ッ"}

# Plausible phoneme lengths (seconds) in place of VOICEVOX's duration model: stops and sonorants are short,
# fricatives long, devoiced vowels short; the last mora before a pause is drawn out.
_CONSONANT_SECONDS: dict[str, float] = dict.fromkeys(
    ("k", "g", "t", "d", "p", "b", "ky", "gy", "py", "by", "ty", "dy", "kw", "gw"), 0.065
) | dict.fromkeys(("s", "sh", "z", "j", "ts", "ch", "h", "hy", "f", "v"), 0.085)
_SONORANT_SECONDS = 0.045
_VOWEL_SECONDS = {"N": 0.085, "cl": 0.08} | dict.fromkeys(_UNVOICED, 0.06)
_PLAIN_VOWEL_SECONDS = 0.1
_FINAL_LENGTHENING = 1.4
_PAUSE_SECONDS = 0.35
# Pitch (log Hz, as VOICEVOX reports it): low and high tones of the Tokyo accent, a gentle declination per phrase
# within a breath group, and a rise on the last mora of a question.
_LOW_PITCH = 5.45
_HIGH_PITCH = 5.75
_DECLINATION = 0.03
_QUESTION_RISE = 0.3


def _katakana(consonant: str | None, vowel: str) -> str | None:
    return _KANA.get((consonant or "", vowel.lower() if vowel in _UNVOICED else vowel))


def mora_text(consonant: str | None, vowel: str) -> str:
    """The katakana VOICEVOX shows for a mora (long vowels as their vowel: トーキョー is ト オ キョ オ)."""
    return _katakana(consonant, vowel) or (consonant or "") + vowel


# -- text → accent phrases -------------------------------------------------------------------------------

# The fields of an HTS full-context label we need: the phoneme (p3), the mora's accent-phrase fields
# (F: mora count _ accent position # interrogative flag ... @ phrase index) and the breath group (I: ... @ index).
_LABEL = re.compile(
    r"^[^-]*-(?P<phoneme>[^+]+)\+"
    r".*/F:(?P<moras>[^_]+)_(?P<accent>[^#]+)#(?P<question>[^_]+)_[^@]*@(?P<phrase>[^_]+)_"
    r".*/I:[^-]*-[^@]*@(?P<group>[^+]+)\+"
)


@dataclass(frozen=True)
class _Phone:
    phoneme: str
    accent: int | None
    question: bool
    phrase: tuple[str, str]
    """(breath group, accent phrase) indices: phones sharing it belong to one accent phrase."""

    @property
    def is_pause(self) -> bool:
        return self.phoneme in _PAUSES


def _phone(label: str) -> _Phone:
    match = _LABEL.match(label)
    if match is None:
        raise ValueError(f"OpenJTalk label without the expected fields: {label[:80]}")
    accent = match["accent"]
    return _Phone(
        phoneme=match["phoneme"],
        accent=int(accent) if accent.isdigit() else None,
        question=match["question"] == "1",
        phrase=(match["group"], match["phrase"]),
    )


def _mora_pairs(phones: Iterable[_Phone]) -> list[tuple[str | None, str]]:
    """(consonant, vowel) per mora: a mora ends at a vowel, N or cl; what comes before it is its consonant."""
    pairs: list[tuple[str | None, str]] = []
    consonant: str | None = None
    for phone in phones:
        if phone.phoneme in _MORA_VOWELS:
            pairs.append((consonant, phone.phoneme))
            consonant = None
        elif phone.phoneme != "xx":  # OpenJTalk's "unknown" phoneme: nothing to say
            consonant = phone.phoneme
    return pairs


def _pitches(pairs: Sequence[tuple[str | None, str]], accent: int, declination: float) -> list[float]:
    """Tokyo-accent tones: the first mora low unless the accent is on it, high up to the accent, low after."""
    tones = []
    for position, (_, vowel) in enumerate(pairs, start=1):
        high = position <= accent and (position > 1 or accent == 1)
        pitch = (_HIGH_PITCH if high else _LOW_PITCH) - declination
        tones.append(0.0 if vowel in _UNVOICED else round(pitch, 3))
    return tones


def _accent_phrase(
    phones: list[_Phone], declination: float, *, pause: bool, sentence_end: bool, pitch_offset: float
) -> AccentPhrase | None:
    pairs = _mora_pairs(phones)
    if not pairs:
        return None
    # Flat (heiban) phrases come as accent = mora count, as in VOICEVOX; clip OpenJTalk's occasional overshoot.
    accent = min(max(phones[0].accent or len(pairs), 1), len(pairs))
    question = phones[-1].question
    pitches = _pitches(pairs, accent, declination)
    if question and pitches[-1] > 0:
        pitches[-1] = round(pitches[-1] + _QUESTION_RISE, 3)
    moras = []
    for index, ((consonant, vowel), pitch) in enumerate(zip(pairs, pitches, strict=True)):
        stretch = _FINAL_LENGTHENING if index == len(pairs) - 1 and (pause or sentence_end) else 1.0
        moras.append(
            Mora(
                text=mora_text(consonant, vowel),
                consonant=consonant,
                consonant_length=None if consonant is None else _CONSONANT_SECONDS.get(consonant, _SONORANT_SECONDS),
                vowel=vowel,
                vowel_length=round(_VOWEL_SECONDS.get(vowel, _PLAIN_VOWEL_SECONDS) * stretch, 4),
                pitch=round(pitch + pitch_offset, 3) if pitch > 0 else 0.0,
            )
        )
    pause_mora = Mora(text="、", vowel="pau", vowel_length=_PAUSE_SECONDS, pitch=0.0) if pause else None
    return AccentPhrase(moras=moras, accent=accent, pause_mora=pause_mora, is_interrogative=question)


def accent_phrases(text: str, *, half_tone: float = 0.0) -> list[AccentPhrase]:
    """The accent phrases OpenJTalk finds in `text`; a pause mora ends each breath group but the last.

    `half_tone` is the style's pitch offset, so a higher voice reports higher mora pitches."""
    labels = pyopenjtalk.extract_fullcontext(text, predict_nani=False)
    phones = [_phone(label) for label in labels]
    # Pause groups: the runs of speech between sil/pau labels; within one, phrases by their label indices.
    groups = [list(run) for is_pause, run in groupby(phones, key=lambda p: p.is_pause) if not is_pause]
    pitch_offset = half_tone / _SEMITONES_PER_LOG_F0
    phrases: list[AccentPhrase] = []
    for group_index, group in enumerate(groups):
        runs = [list(run) for _, run in groupby(group, key=lambda p: p.phrase)]
        last_group = group_index == len(groups) - 1
        for run_index, run in enumerate(runs):
            last_run = run_index == len(runs) - 1
            phrase = _accent_phrase(
                run,
                declination=_DECLINATION * run_index,
                pause=last_run and not last_group,
                sentence_end=last_run and last_group,
                pitch_offset=pitch_offset,
            )
            if phrase is not None:
                phrases.append(phrase)
    return phrases


def kana(phrases: Sequence[AccentPhrase]) -> str:
    """AquesTalk-style kana, as the engine writes it: _ before a devoiced mora, ' after the accent, ？ for a
    question, / between phrases, 、 where a pause is."""
    parts = []
    for index, phrase in enumerate(phrases):
        for position, mora in enumerate(phrase.moras, start=1):
            parts.append(("_" if mora.vowel in _UNVOICED else "") + mora.text)
            if position == phrase.accent:
                parts.append("'")
        if phrase.is_interrogative:
            parts.append("？")
        if index < len(phrases) - 1:
            parts.append("/" if phrase.pause_mora is None else "、")
    return "".join(parts)


def audio_query(text: str, *, half_tone: float = 0.0) -> AudioQuery:
    """A query with the engine's defaults, ready to synthesise as it is; its mora lengths are those the HTS voice
    speaks, so the query times the sound as the engine's does."""
    phrases = _timed_like_the_voice(accent_phrases(text, half_tone=half_tone), _clamped(half_tone))
    return AudioQuery(
        accent_phrases=phrases,
        speedScale=1.0,
        pitchScale=0.0,
        intonationScale=1.0,
        volumeScale=1.0,
        prePhonemeLength=0.1,
        postPhonemeLength=0.1,
        pauseLength=None,
        pauseLengthScale=1.0,
        outputSamplingRate=DEFAULT_SAMPLING_RATE,
        outputStereo=False,
        kana=kana(phrases),
    )


# -- accent phrases → audio ------------------------------------------------------------------------------


def _word(pron: str, accent: int, moras: int) -> dict[str, Any]:
    """An NJD word for OpenJTalk's label maker: one word per accent phrase, never chained to its neighbour."""
    return {
        "string": pron, "pos": "名詞", "pos_group1": "一般", "pos_group2": "*", "pos_group3": "*",
        "ctype": "*", "cform": "*", "orig": pron, "read": pron, "pron": pron,
        "acc": accent, "mora_size": moras, "chain_rule": "*", "chain_flag": 0,
    }  # fmt: skip


def _question_mark() -> dict[str, Any]:
    return _word("？", 0, 0) | {"pos": "記号"}


def _pronunciation(phrase: AccentPhrase) -> str:
    """The phrase as OpenJTalk pronunciation: katakana from each mora's phonemes, ’ after a devoiced mora."""
    spoken = []
    for mora in phrase.moras:
        spoken.append((_katakana(mora.consonant, mora.vowel) or mora.text) + ("’" if mora.vowel in _UNVOICED else ""))
    return "".join(spoken)


def _pause_groups(phrases: Sequence[AccentPhrase]) -> Iterator[tuple[list[AccentPhrase], Mora | None]]:
    """Phrases up to and including one with a pause mora, and that pause mora (None for the last group)."""
    group: list[AccentPhrase] = []
    for phrase in phrases:
        group.append(phrase)
        if phrase.pause_mora is not None:
            yield group, phrase.pause_mora
            group = []
    if group:
        yield group, None


def _speak(
    phrases: Sequence[AccentPhrase], *, speed: float, half_tone: float, upspeak: bool
) -> npt.NDArray[np.float64]:
    """One pause group through OpenJTalk's label maker and HTS, trimmed of the silence HTS puts around it."""
    words: list[tuple[str, int, int]] = []
    for phrase in phrases:
        if phrase.moras:
            # An edited accent outside the phrase would confuse OpenJTalk; VOICEVOX's range is 1..mora count.
            accent = min(max(phrase.accent, 1), len(phrase.moras))
            words.append((_pronunciation(phrase), accent, len(phrase.moras)))
            if phrase.is_interrogative and upspeak:
                words.append(("？", 0, 0))
    if not words:
        return np.zeros(0)
    return _voiced(tuple(words), speed, half_tone)


@functools.lru_cache(maxsize=256)
def _voiced(words: tuple[tuple[str, int, int], ...], speed: float, half_tone: float) -> npt.NDArray[np.float64]:
    """HTS's sound of these words, kept for a while: a query times its sound by speaking it, and the synthesis of
    that query (at its own speed and pitch) then costs nothing more. Read-only, as it is shared."""
    features = [_question_mark() if text == "？" else _word(text, accent, moras) for text, accent, moras in words]
    samples, _ = pyopenjtalk.synthesize(pyopenjtalk.make_label(features), speed=speed, half_tone=half_tone)
    trimmed = _trim(np.asarray(samples, dtype=np.float64), HTS_RATE)
    trimmed.flags.writeable = False
    return trimmed


def _clamped(half_tone: float) -> float:
    """The pitch shift HTS is given: two octaves either way at most."""
    return max(min(half_tone, 24.0), -24.0)


def _frames(seconds: float) -> int:
    """Whole engine frames, rounded half to even as the engine's _to_frame rounds."""
    return max(round(seconds * FRAME_RATE), 0)


def _upspeaks(phrase: AccentPhrase, upspeak: bool) -> bool:
    """Whether the engine adds its rising mora to this phrase (an interrogative one ending on a voiced mora)."""
    return upspeak and phrase.is_interrogative and bool(phrase.moras) and phrase.moras[-1].pitch > 0


def _group_frames(group: Sequence[AccentPhrase], speed: float, upspeak: bool) -> int:
    """How many frames the engine gives a pause group's moras: each consonant and vowel rounded on its own, and
    0.15 s more for a question's rising mora."""
    frames = 0
    for phrase in group:
        for mora in phrase.moras:
            frames += _frames((mora.consonant_length or 0.0) / speed) + _frames(mora.vowel_length / speed)
        if _upspeaks(phrase, upspeak):
            frames += _frames(_UPSPEAK_SECONDS / speed)
    return frames


def _fit(samples: npt.NDArray[np.float64], count: int) -> npt.NDArray[np.float64]:
    """Exactly `count` samples: silence added at the end, or the end cut with a 5 ms fade so it does not click."""
    if samples.size >= count:
        fitted = samples[:count].copy()
        fade = min(count, HTS_RATE // 200)
        if fade:
            fitted[count - fade :] *= np.linspace(1.0, 0.0, fade)
        return fitted
    return np.concatenate([samples, np.zeros(count - samples.size)])


def _timed_like_the_voice(phrases: list[AccentPhrase], half_tone: float) -> list[AccentPhrase]:
    """The phrases with each pause group's mora lengths scaled to the length the HTS voice gives the group, in whole
    frames, keeping the plausible proportions between sounds: the real engine's query times its own sound, and so
    does this one's."""
    timed: list[AccentPhrase] = []
    for group, _ in _pause_groups(phrases):
        sound = _speak(group, speed=1.0, half_tone=half_tone, upspeak=True)  # as the query's synthesis will
        upspeak = sum(_frames(_UPSPEAK_SECONDS) for phrase in group if _upspeaks(phrase, True))
        target = max(-(-sound.size // _HTS_SAMPLES_PER_FRAME) - upspeak, 1)
        lengths = [
            length
            for phrase in group
            for mora in phrase.moras
            for length in (mora.consonant_length, mora.vowel_length)
            if length is not None
        ]
        frames = _apportion(lengths, target)
        position = iter(frames)
        for phrase in group:
            moras = []
            for mora in phrase.moras:
                consonant = None if mora.consonant_length is None else next(position) / FRAME_RATE
                moras.append(
                    mora.model_copy(update={"consonant_length": consonant, "vowel_length": next(position) / FRAME_RATE})
                )
            timed.append(phrase.model_copy(update={"moras": moras}))
    return timed


def _apportion(lengths: Sequence[float], frames: int) -> list[int]:
    """`frames` shared among sounds in proportion to `lengths` (largest remainders), each at least one frame when
    there are enough."""
    total = sum(lengths) or 1.0
    shares = [length * frames / total for length in lengths]
    counts = [max(int(share), 1 if frames >= len(lengths) else 0) for share in shares]
    order = sorted(range(len(lengths)), key=lambda n: shares[n] - int(shares[n]), reverse=True)
    step = 0
    while sum(counts) != frames and order:
        n = order[step % len(order)]
        if sum(counts) < frames:
            counts[n] += 1
        elif counts[n] > 1:
            counts[n] -= 1
        step += 1
        if step > 4 * len(order) + frames:
            break
    return counts


def _trim(samples: npt.NDArray[np.float64], rate: int) -> npt.NDArray[np.float64]:
    """Cut the leading and trailing silence, keeping 10 ms around the sound so soft onsets survive."""
    level = np.abs(samples)
    if level.size == 0:
        return samples
    loud = np.flatnonzero(level > max(level.max() * 0.01, 1.0))
    if loud.size == 0:
        return samples[:0]
    margin = rate // 100
    trimmed: npt.NDArray[np.float64] = samples[max(loud[0] - margin, 0) : loud[-1] + margin + 1]
    return trimmed


def _silence(seconds: float) -> npt.NDArray[np.float64]:
    """Silence at the HTS rate in whole engine frames, rounded half to even as the engine's _to_frame rounds."""
    return np.zeros(max(round(seconds * FRAME_RATE), 0) * _HTS_SAMPLES_PER_FRAME)


def _lowpass(samples: npt.NDArray[np.float64], cutoff: float) -> npt.NDArray[np.float64]:
    """A windowed-sinc low-pass filter; `cutoff` is in cycles per sample (below 0.5)."""
    taps = np.arange(-64, 65)
    kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.blackman(taps.size)
    kernel /= kernel.sum()
    filtered: npt.NDArray[np.float64] = np.convolve(samples, kernel, mode="same")
    return filtered


def resample(samples: npt.NDArray[np.float64], source: int, target: int) -> npt.NDArray[np.float64]:
    """Linear-interpolation resampling, low-passed first when going down so the voice does not alias."""
    if source == target or samples.size == 0:
        return samples
    if target < source:
        samples = _lowpass(samples, 0.46 * target / source)
    count = round(samples.size * target / source)
    positions = np.arange(count) * (source / target)
    resampled: npt.NDArray[np.float64] = np.interp(positions, np.arange(samples.size), samples)
    return resampled


def _wav(samples: npt.NDArray[np.float64], rate: int, *, stereo: bool) -> bytes:
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    if stereo:
        pcm = np.repeat(pcm, 2)  # interleaved L R L R: the same voice in both channels
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(2 if stereo else 1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()


def synthesise(query: AudioQuery, *, half_tone: float = 0.0, upspeak: bool = True) -> bytes:
    """The query as a 16-bit PCM WAV at its outputSamplingRate.

    Like the engine, the silences (pre, post and pauses) shrink with speedScale and last whole frames, so a query
    with no moras is exactly the engine's silence around nothing; pitchScale scales log-F0 around a typical pitch;
    `half_tone` is the style's own pitch; `upspeak` lets a question's last phrase rise."""
    speed = query.speedScale
    shift = half_tone + _REFERENCE_LOG_F0 * (2**query.pitchScale - 1) * _SEMITONES_PER_LOG_F0
    pieces = [_silence(query.prePhonemeLength / speed)]
    for group, pause in _pause_groups(query.accent_phrases):
        # Each group lasts the frames the engine would give its moras, so the query times the sound.
        sound = _speak(group, speed=speed, half_tone=_clamped(shift), upspeak=upspeak)
        pieces.append(_fit(sound, _group_frames(group, speed, upspeak) * _HTS_SAMPLES_PER_FRAME))
        if pause is not None:
            seconds = query.pauseLength if query.pauseLength is not None else pause.vowel_length
            pieces.append(_silence(seconds * query.pauseLengthScale / speed))
    pieces.append(_silence(query.postPhonemeLength / speed))
    samples = np.concatenate(pieces) * query.volumeScale
    return _wav(
        resample(samples, HTS_RATE, query.outputSamplingRate), query.outputSamplingRate, stereo=query.outputStereo
    )


def estimated_seconds(query: AudioQuery) -> float:
    """About how long the query's audio will be, before making it."""
    moras = sum(len(p.moras) for p in query.accent_phrases)
    pauses = [p.pause_mora.vowel_length for p in query.accent_phrases if p.pause_mora is not None]
    pause_seconds = sum(query.pauseLength if query.pauseLength is not None else max(s, 0.0) for s in pauses)
    silence = query.prePhonemeLength + query.postPhonemeLength + pause_seconds * query.pauseLengthScale
    return (moras * _SECONDS_PER_MORA + silence) / query.speedScale
