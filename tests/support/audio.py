"""Test audio: WAV files of a known length, made with numpy, for stages that need narration without an engine."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_tone(path: Path, samples: int, rate: int, frequency: float = 220.0, noise: float = 0.0) -> Path:
    """A 16-bit mono WAV of `samples` frames: a sine tone, optionally with a little noise."""
    t = np.arange(samples) / rate
    tone = 0.25 * np.sin(2 * np.pi * frequency * t)
    if noise:
        tone += noise * np.random.default_rng(7).standard_normal(samples)
    return write_wav(path, tone, rate)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """`samples` (floats, full scale at ±1, clipped beyond) as a 16-bit mono WAV, as VOICEVOX writes its voices."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def pitch(samples: np.ndarray, rate: int) -> float:
    """The median fundamental frequency (Hz) of the voiced stretches of a mono signal: each 40 ms frame loud enough
    to be speech, its autocorrelation's strongest peak past the first trough, between 70 and 1000 Hz. What a
    listener hears as the voice's height, to within a few percent for speech."""
    signal = samples.astype(np.float64)
    size, hop = int(0.04 * rate), int(0.01 * rate)
    shortest, longest = int(rate / 1000), int(rate / 70)
    loudness = np.sqrt(np.mean(signal**2)) if len(signal) else 0.0
    found = []
    for start in range(0, len(signal) - size, hop):
        frame = signal[start : start + size] - signal[start : start + size].mean()
        if np.sqrt(np.mean(frame**2)) < 0.5 * loudness:
            continue
        correlation = np.correlate(frame, frame, mode="full")[size - 1 :]
        first = max(shortest, int(np.argmax(correlation < 0)))  # past the zero-lag peak's own slope
        lag = first + int(np.argmax(correlation[first:longest]))
        if correlation[lag] > 0.4 * correlation[0]:  # voiced: clearly periodic
            found.append(rate / lag)
    if not found:
        raise AssertionError("no voiced frame in the signal")
    return float(np.median(found))


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """A 16-bit mono WAV's samples and rate."""
    import io

    with wave.open(io.BytesIO(data)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), wav.getframerate()
