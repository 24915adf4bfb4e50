"""The broadcast's sound: the narration, an optional music bed under it, normalised to a loudness target.

The narration track (24 kHz mono, silence between sentences) becomes a 48 kHz stereo 16-bit WAV exactly as long,
which the encoder turns into the video's AAC track; the podcast copies that track, so both get this mix.

The bed is decoded once by ffmpeg (trimmed to the broadcast, looped by us when shorter, with a short dip at each
seam so a loop that is not seamless does not click), measured and set `level_db` below the voice's loudness; a
gain envelope computed with numpy fades it in and out and dips it by `duck_db` under each speech span. The mix is
then normalised by ffmpeg: gain to the integrated loudness target (EBU R128 / BS.1770, ffmpeg's ebur128), and a
look-ahead limiter (alimiter) only where the peaks would pass the true-peak ceiling; each pass measures what it
writes, and a pass that misses the target or the ceiling is corrected and run again (at most four).

Audio is handled as files (ffmpeg's raw float output, memory-mapped) and mixed in chunks, so memory stays small
whatever the broadcast's length; the work files (about 0.8 MB per second of broadcast) sit beside the output.
"""

from __future__ import annotations

import logging
import re
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from job.video import ffmpeg

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
"""The mix's sample rate: AAC's usual rate, and what the encoder is given."""
MAX_MUSIC_BYTES = 50 * 1024 * 1024
"""A music file larger than this is refused before it is read."""
DUCK_BEFORE_SECONDS = 0.3
"""The bed starts dipping this long before a speech span, so it is fully down when the voice starts."""
DUCK_AFTER_SECONDS = 0.5
"""After a speech span the bed takes this long to come back up."""
SEAM_SECONDS = 0.05
"""Where a looped bed restarts, it dips to silence over this long on either side of the seam."""

_BOTH_CHANNELS = (f"aresample={SAMPLE_RATE}", "aformat=channel_layouts=mono", "pan=stereo|c0=c0|c1=c0")
"""The mono narration on both channels at full level (ffmpeg's own upmix would put it 3 dB lower on each)."""
_MUSIC_TIMEOUT_SECONDS = 120
_PASS_TIMEOUT_SECONDS = 300
_SILENT_LUFS = -69.5
"""ebur128 reports -70 LUFS (its absolute gate) when nothing is loud enough to measure: no loudness to match."""
_TOLERANCE_LU = 0.2
"""A pass this close to the target is kept (the promise is ±0.5 LU; AAC encoding moves it by about 0.1)."""
_LIMITER_HEADROOM_DB = 0.5
"""The limiter works on samples; this margin below the ceiling is for the peaks between samples."""
_PASSES = 4
_CHUNK_FRAMES = 1 << 20
_CONTROL_FRAMES = 16


@dataclass(frozen=True)
class Bed:
    """A music bed, already a local file: how loud between stories, how far it dips under speech, its fades."""

    path: Path
    level_db: float = -14.0
    """The bed's loudness between stories relative to the voice's loudness (LU)."""
    duck_db: float = 15.0
    """How far the bed dips under speech."""
    fade_seconds: float = 2.0
    """Fade-in at the start, fade-out at the end."""


@dataclass(frozen=True)
class Loudness:
    """An EBU R128 measurement, as ffmpeg's ebur128 reports it (to 0.1); -70 LUFS means silence."""

    integrated_lufs: float
    true_peak_dbtp: float
    range_lu: float

    def document(self) -> dict[str, float | None]:
        """As the run's manifest records it (camelCase; a silent mix's -inf peak is null)."""
        return {
            "integratedLufs": _finite(self.integrated_lufs),
            "truePeakDbtp": _finite(self.true_peak_dbtp),
            "loudnessRangeLu": _finite(self.range_lu),
        }


@dataclass(frozen=True)
class MixReport:
    """What the mix came to: its loudness measured on the samples written, and how it got there."""

    loudness: Loudness
    target_lufs: float
    ceiling_dbtp: float
    gain_db: float
    """Applied to the voice to reach the target (0 when there is nothing to measure)."""
    limited: bool
    """Whether the peaks needed the limiter."""
    music: bool

    def document(self) -> dict[str, object]:
        """The run manifest's record of the mix (camelCase; a silent mix's -inf peak is null)."""
        return {
            **self.loudness.document(),
            "targetLufs": self.target_lufs,
            "ceilingDbtp": self.ceiling_dbtp,
            "gainDb": round(self.gain_db, 2),
            "limited": self.limited,
            "music": self.music,
        }


class MusicError(Exception):
    """The music bed cannot be used; the message names the file and says why."""


class MixError(RuntimeError):
    """The narration could not be mixed (ffmpeg failed, timed out or could not be started); the message says why."""


def measure(path: Path) -> Loudness:
    """The integrated loudness, true peak and loudness range of the first audio stream of `path` (any audio or
    video file), as ffmpeg's ebur128 filter measures them. Raises MixError when ffmpeg cannot."""
    try:
        log_text = _ffmpeg(
            ["-i", str(path), "-map", "0:a:0", "-af", _meter(), "-f", "null", "-"], _PASS_TIMEOUT_SECONDS
        )
    except _Failed as failure:
        raise MixError(f"could not measure the loudness of {path.name}: {failure}") from None
    return _summary(log_text)


def mix(
    narration: Path,
    speech: Sequence[tuple[float, float]],
    output: Path,
    *,
    target_lufs: float = -16.0,
    ceiling_dbtp: float = -1.5,
    bed: Bed | None = None,
) -> MixReport:
    """Write `output`, a 48 kHz stereo 16-bit WAV exactly as long as `narration`: the narration, with `bed` under it
    dipped during each `speech` span (seconds), at `target_lufs` integrated with its true peak at or below
    `ceiling_dbtp`. A narration without measurable loudness (silence) gets no gain.

    Raises MusicError when the bed cannot be used, MixError when ffmpeg fails on the narration or the mix."""
    frames = _output_frames(narration)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mix-", dir=output.parent) as work_name:
        work = Path(work_name)
        if bed is None:
            premix = _speech_alone(narration, target_lufs)
        else:
            premix = _with_bed(narration, speech, bed, frames, target_lufs, work)
        written = work / "mix.wav"
        loudness, gain, limited = _normalise(premix, frames, written, target=target_lufs, ceiling=ceiling_dbtp)
        written.replace(output)
    return MixReport(loudness, target_lufs, ceiling_dbtp, premix.applied + gain, limited, bed is not None)


@dataclass(frozen=True)
class _Premix:
    """Where the normalising passes start from: ffmpeg's input and the filters that make it 48 kHz stereo, the gain
    expected to bring it to the target and its true peak after that gain (dB), and the gain already in it."""

    source: tuple[str, ...]
    filters: tuple[str, ...]
    gain: float
    peak: float
    applied: float
    audible: bool
    """Whether the voice has a loudness to normalise; silence gets no gain."""


def _speech_alone(narration: Path, target: float) -> _Premix:
    voice = _measured(["-i", str(narration)], "measure the narration", dualmono=True)
    audible = voice.integrated_lufs > _SILENT_LUFS
    gain = target - voice.integrated_lufs if audible else 0.0
    peak = voice.true_peak_dbtp + gain
    return _Premix(("-i", str(narration)), _BOTH_CHANNELS, gain, peak, 0.0, audible)


def _with_bed(
    narration: Path, speech: Sequence[tuple[float, float]], bed: Bed, frames: int, target: float, work: Path
) -> _Premix:
    """The voice brought to the target and the bed set against it, under its envelope, mixed into a work file."""
    voice = _decode_voice(narration, frames, work / "voice.f32")
    audible = voice.integrated_lufs > _SILENT_LUFS
    applied = target - voice.integrated_lufs if audible else 0.0
    music, looped = _decode_bed(bed, frames, work / "bed.f32")
    envelope = _Envelope.around(speech, frames, looped, bed)
    gains = (_linear(applied), _linear(target + bed.level_db - music.integrated_lufs))
    sample_peak = _write_mix(work / "voice.f32", work / "bed.f32", work / "mix.f32", frames, gains, envelope)
    source = ("-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "2", "-i", str(work / "mix.f32"))
    return _Premix(source, (), 0.0, max(sample_peak, voice.true_peak_dbtp + applied), applied, audible)


# -- the bed's gain ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Envelope:
    """The bed's gain over the broadcast: fades at both ends, dips under speech, dips at the seams of a loop.

    Every change is a raised-cosine ramp (no corner, so no click); the dips are ramped in dB, so the bed's fall and
    rise sound even."""

    frames: int
    loop: int
    """The bed's own length in frames: it restarts every `loop` frames when shorter than the broadcast."""
    fade: float
    duck_db: float
    times: tuple[float, ...]
    depths: tuple[float, ...]
    """Where the dips are: the duck's depth (0 up, 1 fully down) at each time, linearly between them."""

    @classmethod
    def around(cls, speech: Sequence[tuple[float, float]], frames: int, loop: int, bed: Bed) -> _Envelope:
        duration = frames / SAMPLE_RATE
        times: list[float] = []
        depths: list[float] = []
        for start, end in _merged(speech, duration):
            times += [start - DUCK_BEFORE_SECONDS, start, end, end + DUCK_AFTER_SECONDS]
            depths += [0.0, 1.0, 1.0, 0.0]
        return cls(
            frames, loop, min(max(bed.fade_seconds, 0.0), duration / 2), bed.duck_db, tuple(times), tuple(depths)
        )

    def gain(self, first: int, count: int) -> np.ndarray:
        """The linear gain for frames `first` to `first + count`, as float32: computed every `_CONTROL_FRAMES`
        frames and joined by straight lines, which on ramps of 50 ms and longer is as good and four times faster."""
        points = np.arange(first, first + count + _CONTROL_FRAMES, _CONTROL_FRAMES, dtype=np.int64)
        index = np.arange(first, first + count, dtype=np.int64)
        gain: np.ndarray = np.interp(index, points, self.exact(points)).astype(np.float32)
        return gain

    def exact(self, index: np.ndarray) -> np.ndarray:
        """The linear gain at the frames `index`."""
        seconds = index / SAMPLE_RATE
        count = len(index)
        gain = np.ones(count, dtype=np.float64)
        if self.times:
            depth = _smooth(np.interp(seconds, self.times, self.depths, left=0.0, right=0.0))
            gain *= 10.0 ** (-self.duck_db * depth / 20.0)
        if self.fade > 0:
            gain *= _smooth(np.clip(np.minimum(seconds, self.frames / SAMPLE_RATE - seconds) / self.fade, 0.0, 1.0))
        if self.loop < self.frames:
            seam = max(1.0, min(SEAM_SECONDS * SAMPLE_RATE, self.loop / 4))
            phase = index % self.loop
            gain *= _smooth(np.clip(np.minimum(phase, self.loop - phase) / seam, 0.0, 1.0))
        return gain


def _merged(speech: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """The speech spans within the broadcast, in order; spans too close for the bed to come back between them are
    joined, so the bed stays down instead of swelling for a moment."""
    spans = sorted(
        (max(0.0, start), min(duration, end)) for start, end in speech if min(duration, end) > max(0.0, start)
    )
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] < DUCK_BEFORE_SECONDS + DUCK_AFTER_SECONDS:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _smooth(progress: np.ndarray) -> np.ndarray:
    """0 to 1 along a raised cosine: flat at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * progress)


def _write_mix(
    voice_path: Path, bed_path: Path, output: Path, frames: int, gains: tuple[float, float], envelope: _Envelope
) -> float:
    """Voice (mono) plus bed (stereo, looped when short) under its envelope, each with its linear gain, as raw
    48 kHz stereo float32, in chunks; returns the mix's sample peak in dBFS."""
    voice_gain, bed_gain = np.float32(gains[0]), np.float32(gains[1])
    voice = np.memmap(voice_path, dtype="<f4", mode="r")
    bed = np.memmap(bed_path, dtype="<f4", mode="r", shape=(envelope.loop, 2))
    peak = 0.0
    with output.open("wb") as out:
        for first in range(0, frames, _CHUNK_FRAMES):
            count = min(_CHUNK_FRAMES, frames - first)
            if envelope.loop < frames:
                music = bed[np.arange(first, first + count) % envelope.loop]
            else:
                music = np.asarray(bed[first : first + count])
            block = music * (envelope.gain(first, count) * bed_gain)[:, None]
            spoken = np.asarray(voice[first : first + count]) * voice_gain
            block[: len(spoken)] += spoken[:, None]
            peak = max(peak, float(block.max(initial=0.0)), -float(block.min(initial=0.0)))
            block.tofile(out)
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


# -- ffmpeg -------------------------------------------------------------------------------------------------------


class _Failed(Exception):
    """ffmpeg did not finish; the message is its reason, short."""


def _output_frames(narration: Path) -> int:
    """The mix's length in 48 kHz frames: the narration's length, to within one frame."""
    try:
        with wave.open(str(narration), "rb") as wav:
            count, rate = wav.getnframes(), wav.getframerate()
    except (OSError, EOFError, RuntimeError, wave.Error) as exc:  # the wave module's RuntimeError: a broken chunk
        raise MixError(f"the narration {narration.name} is unreadable: {exc or type(exc).__name__}") from None
    if count == 0:
        raise MixError(f"the narration {narration.name} is empty")
    return round(count * SAMPLE_RATE / rate)


def _measured(source: Sequence[str], what: str, *, dualmono: bool = False) -> Loudness:
    try:
        log_text = _ffmpeg(
            [*source, "-map", "0:a:0", "-af", _meter(dualmono=dualmono), "-f", "null", "-"], _PASS_TIMEOUT_SECONDS
        )
    except _Failed as failure:
        raise MixError(f"could not {what}: {failure}") from None
    return _summary(log_text)


def _decode_voice(narration: Path, frames: int, output: Path) -> Loudness:
    """The narration at 48 kHz mono float, exactly `frames` long, measured as it will be heard (on both channels)."""
    # Measured before resampling: the same loudness, and half the work of finding its true peak.
    chain = [_meter(dualmono=True), f"aresample={SAMPLE_RATE}", "aformat=sample_fmts=flt:channel_layouts=mono"]
    arguments = ["-i", str(narration), "-map", "0:a:0", "-af", ",".join([*chain, *_exactly(frames)])]
    try:
        log_text = _ffmpeg([*arguments, "-c:a", "pcm_f32le", "-f", "f32le", str(output)], _PASS_TIMEOUT_SECONDS)
    except _Failed as failure:
        raise MixError(f"could not read the narration: {failure}") from None
    return _summary(log_text)


def _decode_bed(bed: Bed, frames: int, output: Path) -> tuple[Loudness, int]:
    """The bed at 48 kHz stereo float, trimmed to the broadcast, and measured; returns the measurement and its
    length in frames (shorter than `frames` when the bed is to be looped).

    ffmpeg's own looping (-stream_loop -1) is not used: a file with an audio stream but no samples would keep it
    looping until the time limit."""
    path = bed.path
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MusicError(f"the music {path} cannot be read: {exc.strerror or exc}") from None
    if size > MAX_MUSIC_BYTES:
        raise MusicError(
            f"the music {path} is {size / 2**20:.0f} MiB, larger than the {MAX_MUSIC_BYTES // 2**20} MiB allowed"
        )
    chain = [f"aresample={SAMPLE_RATE}", "aformat=sample_fmts=flt:channel_layouts=stereo", f"atrim=end_sample={frames}"]
    arguments = ["-i", str(path), "-map", "0:a:0", "-vn", "-af", ",".join([*chain, _meter()])]
    try:
        log_text = _ffmpeg([*arguments, "-c:a", "pcm_f32le", "-f", "f32le", str(output)], _MUSIC_TIMEOUT_SECONDS)
    except _Failed as failure:
        reason = str(failure).replace(str(path), path.name)
        if "matches no streams" in reason:
            reason = "it has no audio stream"
        raise MusicError(f"the music {path} cannot be used: {reason}") from None
    looped = output.stat().st_size // 8 if output.is_file() else 0
    if looped == 0:
        raise MusicError(f"the music {path} cannot be used: it has no sound")
    measured = _summary(log_text)
    if measured.integrated_lufs <= _SILENT_LUFS:
        raise MusicError(f"the music {path} cannot be used: it is silent")
    return measured, min(looped, frames)


def _normalise(
    premix: _Premix, frames: int, output: Path, *, target: float, ceiling: float
) -> tuple[Loudness, float, bool]:
    """Write the premix to `output` with its gain, through the limiter when its true peak would pass the ceiling;
    correct and write again until it measures within tolerance of the target (when audible) and at or below the
    ceiling. Returns the last pass's loudness and gain (dB), and whether it was limited."""
    gain = premix.gain
    limit = ceiling - _LIMITER_HEADROOM_DB if premix.peak > ceiling else None
    loudness = _write_pass(premix, frames, output, gain, limit)
    for _ in range(_PASSES - 1):
        on_target = not premix.audible or abs(loudness.integrated_lufs - target) <= _TOLERANCE_LU
        if on_target and loudness.true_peak_dbtp <= ceiling:
            break
        if loudness.true_peak_dbtp > ceiling:  # peaks between samples, or the limiter's own overshoot
            over = loudness.true_peak_dbtp - ceiling
            limit = ceiling - _LIMITER_HEADROOM_DB if limit is None else limit - over - 0.1
        if premix.audible:  # limiting costs loudness: the next pass makes it up
            gain += target - loudness.integrated_lufs
        loudness = _write_pass(premix, frames, output, gain, limit)
    if (premix.audible and abs(loudness.integrated_lufs - target) > _TOLERANCE_LU) or loudness.true_peak_dbtp > ceiling:
        log.warning(
            "the mix measures %.1f LUFS, true peak %.1f dBTP (target %.1f LUFS, ceiling %.1f dBTP) after %d passes",
            loudness.integrated_lufs, loudness.true_peak_dbtp, target, ceiling, _PASSES,
        )  # fmt: skip
    return loudness, gain, limit is not None


def _write_pass(premix: _Premix, frames: int, output: Path, gain: float, limit: float | None) -> Loudness:
    """One pass: gain, the limiter when asked (at `limit` dBFS), 16-bit stereo, measured exactly as written."""
    chain = [*premix.filters, f"volume={gain:.3f}dB"]
    if limit is not None:
        ratio = max(0.0625, min(1.0, _linear(limit)))  # alimiter's range: -24 to 0 dBFS
        chain.append(f"alimiter=limit={ratio:.6f}:attack=5:release=50:level=false:latency=true")
    chain += [*_exactly(frames), "aformat=sample_fmts=s16:channel_layouts=stereo", _meter()]
    arguments = [*premix.source, "-map", "0:a:0", "-af", ",".join(chain), "-c:a", "pcm_s16le", "-ar", str(SAMPLE_RATE)]
    try:
        log_text = _ffmpeg([*arguments, "-f", "wav", str(output)], _PASS_TIMEOUT_SECONDS)
    except _Failed as failure:
        raise MixError(f"could not write the mix: {failure}") from None
    return _summary(log_text)


def _exactly(frames: int) -> list[str]:
    return [f"apad=whole_len={frames}", f"atrim=end_sample={frames}"]


def _meter(*, dualmono: bool = False) -> str:
    # dualmono: a mono narration is heard on both channels, 3 LU louder than the mono file measures.
    return f"ebur128=peak=true:framelog=quiet{':dualmono=true' if dualmono else ''}"


def _ffmpeg(arguments: Sequence[str], timeout: int) -> str:
    """Run ffmpeg; return its log (info level, each message tagged with its level). Raises _Failed."""
    try:
        return ffmpeg.run(arguments, timeout, loglevel="level+info", reason=_reason)
    except ffmpeg.FfmpegFailed as exc:
        raise _Failed(str(exc)) from None


_BOILERPLATE = re.compile(
    r"Terminating thread|Task finished|Could not open encoder|Nothing was written|Error initializing filters|"
    r"Error opening output|Error parsing options|Failed to set value|To ignore this|Conversion failed"
)


def _reason(log_text: str) -> str:
    """ffmpeg's own reason, short: its first two distinct error messages, without addresses and boilerplate."""
    reasons: list[str] = []
    for line in log_text.splitlines():
        if "[error]" not in line and "[fatal]" not in line:
            continue
        text = re.sub(r"^(\s*\[[^\]]*\])+\s*", "", line).strip()
        if text and not _BOILERPLATE.search(text) and text not in reasons:
            reasons.append(text)
    if not reasons:
        return " ".join(log_text.split())[-200:] or "no message"
    return "; ".join(reasons[:2])[:300]


_NUMBER = r"(-?(?:inf|nan|[\d.]+))"


def _summary(log_text: str) -> Loudness:
    """The ebur128 filter's summary, which it logs when the stream ends."""
    summary = log_text[log_text.rfind("Summary:") :]
    integrated = re.search(rf"I:\s+{_NUMBER} LUFS", summary)
    lra = re.search(rf"LRA:\s+{_NUMBER} LU", summary)
    true_peak = re.search(rf"True peak:\s+Peak:\s+{_NUMBER} dBFS", summary)
    if "Summary:" not in log_text or not (integrated and lra and true_peak):
        raise MixError("ffmpeg reported no loudness measurement")
    return Loudness(float(integrated.group(1)), float(true_peak.group(1)), float(lra.group(1)))


def _linear(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def _finite(value: float) -> float | None:
    return round(value, 2) if np.isfinite(value) else None
