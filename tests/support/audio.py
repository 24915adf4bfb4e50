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
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(tone, -1, 1) * 32767).astype("<i2").tobytes())
    return path
