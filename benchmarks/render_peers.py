"""Anchor's render beside what users would otherwise pick, in one run, on the same script and the same pictures.

    python -m benchmarks.render_peers [--lengths 60,180] [--only anchor,anchor-cast,moviepy,ffmpeg] [--repeat 1]
                                      [--language ja] [--json benchmarks/results/render_peers.json]

For each length, benchmarks/render_speed.py's script and tone "voices" (no VOICEVOX engine) are built once, then
each method runs in its own child process, so its peak memory is its own:
- anchor: job.render.render, the real code path: every distinct picture drawn once with Pillow, one ffmpeg pass
  through the concat demuxer (job/video/encode.py), the MP4 read back, thumbnail and SRT/WebVTT written, the sound
  normalised to -16 LUFS (job/video/mix.py; the peers leave it as it is). The slides alone, as the peers make them.
- anchor-cast, anchor-dialogue: the same with one anchor speaking on screen, or two taking the sentences in turn
  (built-in characters; mouths from the voices' sound timing, eyes blinking: job/video/cast/).
- moviepy: what most generators do. The same slides (job.slides.Studio) as moviepy 2 ImageClips on a timeline,
  each sentence's subtitle band as a transparent ImageClip over it, one CompositeVideoClip composited frame by
  frame and piped to ffmpeg by write_videofile, the same narration track as an AudioFileClip. The subtitle
  overlays are cut from anchor's own subtitled pictures, so every frame has the same pixels as anchor's.
- ffmpeg: the floor as users would write it. The stills anchor draws, drawn beforehand (not timed), encoded by
  the textbook ffmpeg slideshow command (concat demuxer with per-file durations, "-vf fps=30 -pix_fmt yuv420p")
  with the same narration track. That converts every output frame from RGB to YUV, which is most of its work.
- ffmpeg-yuv: the same command with the conversion before the fps filter ("-vf format=yuv420p,fps=30"), once per
  picture, as anchor's encode does: the real floor of encoding these stills, with no picture drawn.
All three use 1920x1080@30 by default, libx264 with anchor's settings (job/video/encode.py X264_OPTIONS, a keyframe
every 4 s, yuv420p, x264's own thread count), AAC 128 kbit/s 48 kHz stereo and faststart MP4.

Wall time is the method's own work: the child's interpreter start-up and imports are not counted (the ffmpeg
floors are one ffmpeg process, timed whole). CPU seconds are user+system of the child and everything it ran.
Peak RSS is sampled every 50 ms over the child and its descendants together (anchor's Python beside its ffmpeg,
moviepy's Python beside its ffmpeg), and also given as the largest single process's high-water mark (VmHWM).
Results print as a markdown table and go to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import imageio_ffmpeg
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

from api.v1alpha1 import Video
from benchmarks.render_speed import build
from job.model import Narration, Script
from job.video import fonts
from job.video.encode import AUDIO_BITRATE, AUDIO_RATE, GOP_SECONDS, X264_OPTIONS, draw_stills
from job.video.slides import Studio
from job.video.timeline import Timeline, plan_timeline, read_voice, write_audio

METHODS = ("anchor", "anchor-cast", "anchor-dialogue", "moviepy", "ffmpeg", "ffmpeg-yuv")
CASTS = {"anchor": (), "anchor-cast": ("ずんだもん",), "anchor-dialogue": ("めたん", "ずんだもん")}
"""anchor's renders: the slides alone (what the peers make), one anchor speaking on screen, two taking turns."""
FLOORS = {"ffmpeg": "fps={fps}", "ffmpeg-yuv": "format=yuv420p,fps={fps}"}
"""The ffmpeg methods and their filter: converting to YUV after the fps filter (the textbook) or before it."""
WORKER = [sys.executable, "-m", "benchmarks.render_peers", "--worker"]
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "render_peers.json"
SAMPLE_SECONDS = 0.05
CASE_FILE = "case.pickle"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Measurement:
    """One method on one script: how long, how much CPU and memory, how big the file."""

    method: str
    target_seconds: float
    video_seconds: float
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    """The child and its descendants together, sampled."""
    largest_rss_mib: float
    """The largest single process among them: the highest VmHWM sampled (not wait4's ru_maxrss, which after
    fork and exec counts the parent's memory too)."""
    file_mib: float
    process_seconds: float
    """Wall time of the whole child process, start-up and imports included."""
    detail: dict[str, float]

    @property
    def real_time(self) -> float:
        return self.video_seconds / self.wall_seconds


# -- the table (pure) -------------------------------------------------------------------------------------------


def table(rows: Sequence[Measurement]) -> str:
    """A markdown table; each method's ratios are its wall and CPU time over anchor's at the same length (>1: it
    is slower). On a shared machine the CPU ratio is the steadier of the two."""
    anchor = {row.target_seconds: row for row in rows if row.method == "anchor"}
    lines = [
        "| method | video s | wall s | × real time | wall ÷ anchor's | CPU s | CPU ÷ anchor's "
        "| peak RSS MiB (all / largest) | file MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = anchor.get(row.target_seconds)
        wall = f"{row.wall_seconds / base.wall_seconds:.2f}" if base else "–"
        cpu = f"{row.cpu_seconds / base.cpu_seconds:.2f}" if base else "–"
        lines.append(
            f"| {row.method} | {row.video_seconds:.1f} | {row.wall_seconds:.2f} | {row.real_time:.1f} | {wall} "
            f"| {row.cpu_seconds:.1f} | {cpu} | {row.peak_rss_mib:.0f} / {row.largest_rss_mib:.0f} "
            f"| {row.file_mib:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=_lengths, default=(60.0, 180.0), help="seconds of narration, e.g. 60,180")
    parser.add_argument("--only", type=_methods, default=METHODS, help="methods to run, e.g. anchor,moviepy,ffmpeg")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method and length; the fastest is kept")
    parser.add_argument("--resolution", default="1920x1080", choices=["1920x1080", "1280x720", "1080x1920"])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--language", default="ja", choices=["ja", "en"])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the results go ('-': nowhere)")
    parser.add_argument("--worker", choices=[*CASTS, "moviepy"], help=argparse.SUPPRESS)
    parser.add_argument("--case", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _lengths(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seconds") from None
    if not values or any(value < 15 for value in values):
        raise argparse.ArgumentTypeError("each length must be at least 15 seconds")
    return values


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"methods are {', '.join(METHODS)}; got {text!r}")
    return names


# -- what every method shares -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    script: Script
    narration: Narration
    video: Video


def stage(case: Case) -> tuple[Studio, Timeline, list[Any]]:
    """What render() sets up before drawing: the voices, the timeline and the studio with its font."""
    voices = [read_voice(u, case.narration.sample_rate) for u in case.narration.utterances]
    timeline = plan_timeline(
        case.narration.utterances,
        [len(v) for v in voices],
        case.narration.sample_rate,
        case.video.fps,
        subtitles=case.video.subtitles,
    )
    font = fonts.resolve_font(case.video.font, japanese=case.script.language == "ja")
    return Studio(case.script, case.video, font, case.narration.credit.text), timeline, voices


def x264_arguments(fps: int) -> list[str]:
    """Anchor's video settings (job/video/encode.py), for the peers to use as they are."""
    return [*X264_OPTIONS.split(), "-g", str(GOP_SECONDS * fps), "-pix_fmt", "yuv420p"]


def audio_arguments() -> list[str]:
    return ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2"]


# -- the methods, each run in a child ----------------------------------------------------------------------------


def run_anchor(case: Case, workdir: Path, names: Sequence[str] = ()) -> dict[str, float]:
    """anchor's render, with `names` on screen (none: the slides alone); two or more take the sentences in turn."""
    from api.v1alpha1 import CastMember
    from job.video import render

    marks: dict[str, float] = {}

    def progress(step: str, done: int, total: int) -> None:
        marks.setdefault(step, time.perf_counter())

    script, narration = case.script, case.narration
    if len(names) > 1:
        script = replace(script, anchor_name=names[0], cast=tuple(names), format="dialogue")
        turns = tuple(replace(u, speaker=names[n % len(names)]) for n, u in enumerate(narration.utterances))
        narration = replace(narration, utterances=turns)
    cast = [CastMember.model_validate({"name": name}) for name in names]
    started = time.perf_counter()
    render.render(script, narration, case.video, workdir, progress=progress, cast=cast)
    ended = time.perf_counter()
    return {"wall": ended - started, "pictures": marks.get("encode", started) - started}


def run_moviepy(case: Case, workdir: Path) -> dict[str, float]:
    """Slides and subtitle overlays on a moviepy timeline, composited frame by frame, written by write_videofile."""
    import numpy as np
    from moviepy import AudioFileClip, CompositeVideoClip, ImageClip

    started = time.perf_counter()
    studio, timeline, voices = stage(case)
    fps = timeline.fps
    narration = write_audio(voices, timeline, workdir / "narration.wav")
    left, top, right, bottom = studio.layout.subtitle

    slides, subtitles = [], []
    for segment, start, end in _segment_spans(timeline):
        slide = studio.slide(segment)
        slides.append(ImageClip(np.asarray(slide.image)).with_start(start / fps).with_duration((end - start) / fps))
    for still in timeline.stills:
        if still.utterance is None:
            continue
        bare = studio.slide(still.segment)
        text = case.narration.utterances[still.utterance].text
        overlay, position = _overlay(bare.image, studio.with_subtitle(bare, text).image, (left, top, right, bottom))
        clip = ImageClip(overlay).with_start(still.start / fps).with_duration((still.end - still.start) / fps)
        subtitles.append(clip.with_position(position))
    drawn = time.perf_counter()

    # bg_color makes the composite opaque: moviepy's default (a transparent composite) also composites a float
    # mask for every frame and pipes RGBA, which is slower still; this is the fastest way moviepy offers.
    composite = CompositeVideoClip([*slides, *subtitles], size=case.video.size, bg_color=(0, 0, 0))
    settings = x264_arguments(fps)  # write_videofile always passes its own -preset: give it ours there
    preset = settings.pop(settings.index("-preset") + 1)
    settings.remove("-preset")
    composite = composite.with_duration(timeline.frames / fps).with_audio(AudioFileClip(str(narration)))
    composite.write_videofile(
        str(workdir / "video.mp4"),
        fps=fps,
        codec="libx264",
        preset=preset,
        ffmpeg_params=[*settings, "-movflags", "+faststart"],
        audio_codec="aac",
        audio_bitrate=AUDIO_BITRATE,
        audio_fps=AUDIO_RATE,
        temp_audiofile_path=str(workdir),
        logger=None,
    )
    ended = time.perf_counter()
    return {"wall": ended - started, "pictures": drawn - started}


def _segment_spans(timeline: Timeline) -> list[tuple[int, int, int]]:
    """(segment, first frame, end frame) of each run of stills that show one segment's slide."""
    spans: list[tuple[int, int, int]] = []
    for still in timeline.stills:
        if spans and spans[-1][0] == still.segment and spans[-1][2] == still.start:
            spans[-1] = (still.segment, spans[-1][1], still.end)
        else:
            spans.append((still.segment, still.start, still.end))
    return spans


def _overlay(bare: Any, subtitled: Any, box: tuple[int, int, int, int]) -> tuple[Any, tuple[int, int]]:
    """The subtitle band as an RGBA image and where it goes: the pixels subtitling changed, opaque; the rest clear.

    Composited over the bare slide it gives anchor's subtitled picture exactly, so both videos carry the same
    pixels and only the way they are made differs.
    """
    import numpy as np

    over = np.asarray(subtitled.crop(box).convert("RGB"))
    changed = np.any(over != np.asarray(bare.crop(box).convert("RGB")), axis=2)
    rows, columns = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if not len(rows):
        rows = columns = np.array([0])
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    rgba = np.dstack([over[y0:y1, x0:x1], np.where(changed[y0:y1, x0:x1], 255, 0).astype(np.uint8)])
    return rgba, (box[0] + int(x0), box[1] + int(y0))


def prepare_floors(case: Case, case_dir: Path) -> dict[str, list[str]]:
    """Draw anchor's stills and its narration track (untimed), write a plain concat list; each floor's command."""
    studio, timeline, voices = stage(case)
    workdir = case_dir / "stills"
    workdir.mkdir()
    files = draw_stills(studio, case.narration, timeline, workdir, lambda step, done, total: None)
    audio = write_audio(voices, timeline, workdir / "narration.wav")
    # The textbook slideshow list: each file and its duration in seconds; the last file once more, because the
    # demuxer ignores the last duration.
    lines = ["ffconcat version 1.0"]
    for still in timeline.stills:
        lines += [f"file '{files[still.picture]}'", f"duration {(still.end - still.start) / timeline.fps:.6f}"]
    lines.append(f"file '{files[timeline.stills[-1].picture]}'")
    concat = workdir / "slideshow.ffconcat"
    concat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        method: [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-nostdin", "-y", "-loglevel", "error"),
            *("-f", "concat", "-safe", "0", "-i", str(concat), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"),
            *("-vf", video_filter.format(fps=timeline.fps), "-c:v", "libx264", *x264_arguments(timeline.fps)),
            *audio_arguments(),
            *("-frames:v", str(timeline.frames), "-movflags", "+faststart", str(case_dir / method / "video.mp4")),
        ]
        for method, video_filter in FLOORS.items()
    }


# -- running a child and watching it ------------------------------------------------------------------------------


def measure(command: list[str], method: str, target: float, workdir: Path) -> Measurement:
    """Run `command`, sampling its process tree's memory, and read what it did."""
    peak, high = 0, dict[int, int]()
    done = threading.Event()
    started = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def sample() -> None:
        nonlocal peak
        while not done.wait(SAMPLE_SECONDS):
            now, marks = _tree_memory(child.pid)
            peak = max(peak, now)
            for pid, mark in marks.items():
                high[pid] = max(high.get(pid, 0), mark)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    process_seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{method} failed with exit code {child.returncode}: {' '.join(command)}")
    result_file = workdir / RESULT_FILE
    detail = json.loads(result_file.read_text()) if result_file.exists() else {"wall": process_seconds}
    output = workdir / "video.mp4"
    info = ffmpeg_parse_infos(str(output))
    return Measurement(
        method=method,
        target_seconds=target,
        video_seconds=float(info["duration"]),
        wall_seconds=detail.pop("wall"),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak / 2**20,
        largest_rss_mib=max(high.values(), default=0) / 2**20,
        file_mib=output.stat().st_size / 2**20,
        process_seconds=process_seconds,
        detail={**detail, "frames_fps": float(info["video_fps"])},
    )


def _tree_memory(root: int) -> tuple[int, dict[int, int]]:
    """Resident bytes of `root` and its descendants together now, and each one's high-water mark (VmHWM)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    total, high = 0, {}
    for pid in tree:
        try:
            fields = dict(line.split(":", 1) for line in (Path("/proc") / str(pid) / "status").read_text().splitlines())
            total += int(fields["VmRSS"].split()[0]) * 1024
            high[pid] = int(fields["VmHWM"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            continue  # gone, or a zombie without memory
    return total, high


def worker(method: str, case_dir: Path) -> None:
    """The child's side: load the case, run one method into case_dir/method, leave its timings there."""
    with (case_dir / CASE_FILE).open("rb") as file:
        case = Case(*pickle.load(file))  # noqa: S301 - our own file, written by the parent a moment ago
    workdir = case_dir / method
    result = run_anchor(case, workdir, CASTS[method]) if method in CASTS else run_moviepy(case, workdir)
    (workdir / RESULT_FILE).write_text(json.dumps(result))


def run_length(args: argparse.Namespace, seconds: float, scratch: Path) -> list[Measurement]:
    case_dir = scratch / f"{seconds:g}s"
    (case_dir / "voices").mkdir(parents=True)
    script, narration = build(args.language, seconds, case_dir / "voices")
    video = Video.model_validate({"resolution": args.resolution, "fps": args.fps, "encoder": "libx264"})
    case = Case(script, narration, video)
    with (case_dir / CASE_FILE).open("wb") as file:
        pickle.dump((script, narration, video), file)
    floors = prepare_floors(case, case_dir) if set(FLOORS) & set(args.only) else {}
    rows = []
    for method in args.only:
        best: Measurement | None = None
        for _ in range(args.repeat):
            workdir = case_dir / method
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir()
            command = floors[method] if method in FLOORS else [*WORKER, method, "--case", str(case_dir)]
            row = measure(command, method, seconds, workdir)
            print(f"  {method} {seconds:g} s: {row.wall_seconds:.2f} s wall", file=sys.stderr, flush=True)
            best = row if best is None or row.wall_seconds < best.wall_seconds else best
        assert best is not None
        rows.append(best)
    return rows


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    version = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-version"], capture_output=True, text=True, check=False
    ).stdout.split("\n", 1)[0]
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "ffmpeg": version,
        "moviepy": metadata.version("moviepy"),  # moviepy.__version__ says 2.1.2 in moviepy 2.2.1
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.case)
        return
    started_at = datetime.now(UTC)
    host = machine()
    rows: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="anchor-peers-") as scratch:
        for seconds in args.lengths:
            rows += run_length(args, seconds, Path(scratch))
    print(table(rows))
    if str(args.json) != "-":
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "command": "python -m benchmarks.render_peers " + " ".join(sys.argv[1:] if argv is None else argv),
            "started": started_at.isoformat(timespec="seconds"),
            "resolution": args.resolution,
            "fps": args.fps,
            "x264": X264_OPTIONS,
            "machine": {**host, "load_average_after": os.getloadavg()},
            "rows": [{**asdict(row), "real_time": row.real_time} for row in rows],
        }
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwritten to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
