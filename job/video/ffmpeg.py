"""ffmpeg run once, bounded in time, its failure put in words: what the audio steps (the mix, the podcast's copy of
the sound) share. The encode runs its own ffmpeg, which streams progress and pictures (job/video/encode.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

import imageio_ffmpeg


class FfmpegFailed(Exception):
    """ffmpeg exited with an error, ran past its time or could not be started; the message says which."""


def run(
    arguments: Sequence[str],
    timeout: float,
    *,
    loglevel: str = "error",
    reason: Callable[[str], str] = lambda log: " ".join(log.split())[-400:] or "no message",
) -> str:
    """ffmpeg with `arguments` (after its quiet options); its log (standard error). Raises FfmpegFailed, its message
    `reason(log)` and the exit code when ffmpeg fails."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel", loglevel]
    try:
        completed = subprocess.run(
            [*command, *arguments], capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise FfmpegFailed(f"ffmpeg did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise FfmpegFailed(f"ffmpeg could not be started: {exc}") from None
    if completed.returncode != 0:
        raise FfmpegFailed(f"{reason(completed.stderr)} (ffmpeg exit code {completed.returncode})")
    return completed.stderr
