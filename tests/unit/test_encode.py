"""The encode's inputs as pure functions: the concat list, the ffmpeg command line, the MP4 tags.

The encode itself (ffmpeg on real pictures and sound) is exercised through the render stage in test_render.py."""

from __future__ import annotations

from pathlib import Path

from job.model import Utterance
from job.video.encode import _tag, ffmpeg_command, write_concat
from job.video.timeline import plan_timeline

RATE = 24_000


def test_the_concat_list_holds_each_picture_for_its_frames_and_the_last_one_again(tmp_path: Path) -> None:
    said = [Utterance(0, "a", Path("a"), 0), Utterance(1, "b", Path("b"), 0)]
    timeline = plan_timeline(said, [12_000, 24_000], RATE, 30, subtitles=True)
    files = {still.picture: tmp_path / f"{n:05d}.png" for n, still in enumerate(timeline.stills, start=1)}
    lines = write_concat(timeline, files, tmp_path / "list.ffconcat").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "ffconcat version 1.0"
    entries = [lines[n : n + 3] for n in range(1, 1 + 3 * len(timeline.stills), 3)]
    assert [e[0] for e in entries] == [f"file '{files[s.picture].name}'" for s in timeline.stills]
    assert all(e[1] == "option framerate 30" for e in entries)
    elapsed = 0
    for entry, still in zip(entries, timeline.stills, strict=True):
        elapsed += int(entry[2].removeprefix("duration ").removesuffix("us"))
        assert elapsed == round((still.end + 0.25) * 1_000_000 / 30), "a quarter frame into its next frame: no drift"
    assert lines[-2:] == [f"file '{files[timeline.stills[-1].picture].name}'", "option framerate 30"]


def test_ffmpeg_stops_on_the_last_frame_and_tags_the_sound_with_its_language(tmp_path: Path) -> None:
    said = [Utterance(0, "a", Path("a"), 0)]
    timeline = plan_timeline(said, [24_000], RATE, 25, subtitles=False)
    command = ffmpeg_command(tmp_path / "l", tmp_path / "a.wav", tmp_path / "v.mp4", {"title": "T"}, "ja", timeline)
    assert command[command.index("-frames:v") + 1] == str(timeline.frames)
    assert "language=jpn" in command and "title=T" in command
    assert command[-1] == str(tmp_path / "v.mp4")


def test_a_metadata_value_is_one_line_without_control_characters() -> None:
    assert _tag("  Breaking\x00 news:\n  stocks\t up 🔥 ") == "Breaking news: stocks up 🔥"
    assert len(_tag("x" * 10_000)) == 500


def test_the_encoders_tried_follow_the_spec_and_the_gpu() -> None:
    from job.video.encode import encoders

    assert encoders("libx264", gpu_visible=True) == ["libx264"]
    assert encoders("auto", gpu_visible=False) == ["libx264"], "no GPU seen: no NVENC"
    assert encoders("auto", gpu_visible=True) == ["h264_nvenc", "libx264"], "imageio-ffmpeg's ffmpeg lists NVENC"
    assert encoders("h264_nvenc", gpu_visible=False) == ["h264_nvenc", "libx264"], "asked for: tried, then x264"
