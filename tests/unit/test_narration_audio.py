"""narration.m4a: the video's AAC track copied into an M4A, not re-encoded (the same samples), index first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from job.video.narration_audio import NoNarrationAudio, extract_m4a
from tests.support.media import FFMPEG, box_order, probe


def _video(path: Path, *, audio: bool = True) -> Path:
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1.5:sample_rate=48000"] if audio else []
    codecs = ["-c:a", "aac", "-b:a", "96k"] if audio else []
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=navy:s=160x90:d=1.5:r=10",
         *sound, "-c:v", "libx264", "-preset", "ultrafast", *codecs, "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _audio_md5(path: Path) -> str:
    """An MD5 of the compressed audio packets as they are stored: equal only when nothing was re-encoded."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy",
         "-f", "md5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip()


def test_the_audio_track_is_copied_into_an_m4a_with_its_index_first(tmp_path: Path) -> None:
    video = _video(tmp_path / "video.mp4")
    m4a = extract_m4a(video, tmp_path / "narration.m4a")

    info = probe(m4a)
    assert [s.kind for s in info.streams] == ["audio"] and info.of("audio")[0].codec == "aac"
    assert abs(info.duration - probe(video).duration) < 0.1
    assert _audio_md5(m4a) == _audio_md5(video), "the AAC packets are the video's own, not re-encoded"
    assert m4a.read_bytes()[4:12] == b"ftypM4A ", "an M4A, as podcast apps expect"
    order = box_order(m4a)
    assert order.index("moov") < order.index("mdat"), "faststart: the index before the sound"


def test_a_video_without_sound_gives_a_clear_error(tmp_path: Path) -> None:
    video = _video(tmp_path / "silent.mp4", audio=False)
    with pytest.raises(NoNarrationAudio, match="ffmpeg could not copy the audio"):
        extract_m4a(video, tmp_path / "narration.m4a")


def test_a_missing_video_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoNarrationAudio):
        extract_m4a(tmp_path / "nothing.mp4", tmp_path / "narration.m4a")
