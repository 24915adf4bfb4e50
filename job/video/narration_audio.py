"""The narration on its own, for the podcast: the rendered video's AAC track copied, not re-encoded, into an M4A.

Copying keeps it exactly the sound of the video (same samples, same timing) and costs a fraction of a second; the
file is written with faststart (its index first) so a player can start it before it has all of it.
"""

from __future__ import annotations

from pathlib import Path

from job.video import ffmpeg

CONTENT_TYPE = "audio/mp4"
_TIMEOUT_SECONDS = 120


class NoNarrationAudio(Exception):
    """The audio track could not be copied out of the video; the message says why."""


def extract_m4a(video: Path, output: Path) -> Path:
    """Write `output` (an .m4a) from the first audio stream of `video` without re-encoding; return it.

    Raises NoNarrationAudio when ffmpeg fails, times out or writes nothing."""
    arguments = ["-i", str(video), "-map", "0:a:0", "-vn", "-c:a", "copy", "-movflags", "+faststart"]
    arguments += ["-f", "ipod", str(output)]  # the MP4 muxer's M4A flavour: brand "M4A ", what podcast apps expect
    try:
        ffmpeg.run(arguments, _TIMEOUT_SECONDS)
    except ffmpeg.FfmpegFailed as exc:
        raise NoNarrationAudio(f"ffmpeg could not copy the audio: {exc}") from None
    if not output.is_file() or output.stat().st_size == 0:
        raise NoNarrationAudio("ffmpeg wrote no audio file")
    return output
