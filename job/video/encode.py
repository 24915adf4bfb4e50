"""The encode: every distinct picture of the timeline to a PNG, drawn once, and one ffmpeg pass through its concat
demuxer, each picture held for a whole number of frames, against the narration track; then the MP4 read back.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import imageio_ffmpeg
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

from job.model import Narration, Script, TransientError
from job.video.canvas import Box
from job.video.slides import Studio, airtime
from job.video.timeline import Timeline

Progress = Callable[[str, int, int], None]

AUDIO_RATE = 48_000
AUDIO_BITRATE = "128k"
GOP_SECONDS = 4
# x264 for still pictures. Almost every frame repeats the one before and is coded as skipped blocks, so the
# cost is x264's fixed work per frame, which the ultrafast preset keeps lowest; CABAC is put back because it
# costs little here and makes the file smaller. Measured on the benchmark's 1080p slides: 20% less CPU than
# "veryfast" (no B-frames, no lookahead) at a higher PSNR (41.5 dB against 39.7), for about 0.5 Mbit/s.
X264_OPTIONS = "-preset ultrafast -tune stillimage -crf 23 -x264-params cabac=1"
# NVENC on the GPU: constant quality close to the x264 settings' (CQ 23), the middle preset.
NVENC_OPTIONS = "-preset p4 -rc vbr -cq 23 -b:v 0"
ENCODER_OPTIONS = {"libx264": X264_OPTIONS, "h264_nvenc": NVENC_OPTIONS}
PNG_COMPRESS_LEVEL = 1
"""Fast zlib: slides are flat colours, so level 1 is already small, and it is 4x faster than the default."""
SAVE_THREADS = 2
_FEED_BATCH = 8
"""Overlay frames written to ffmpeg at once: fewer, larger writes."""

_LANGUAGE_TAGS = {"ja": "jpn", "en": "eng"}


def draw_stills(
    studio: Studio, narration: Narration, timeline: Timeline, directory: Path, report: Progress
) -> dict[tuple[int, int | None], Path]:
    """Each distinct picture of the timeline as a PNG, drawn once.

    PNG compression runs on worker threads (Pillow's encoder releases the GIL) while the next picture is drawn;
    at most a few finished pictures wait in memory.
    """
    wanted = list(dict.fromkeys(still.picture for still in timeline.stills))
    files: dict[tuple[int, int | None], Path] = {}
    pending: deque[Future[None]] = deque()
    report("draw", 0, len(wanted))
    with ThreadPoolExecutor(max_workers=SAVE_THREADS, thread_name_prefix="png") as pool:
        for number, (segment, utterance) in enumerate(wanted, start=1):
            picture = studio.slide(segment)
            if utterance is not None:
                spoken = narration.utterances[utterance]
                picture = studio.with_subtitle(picture, spoken.text, spoken.speaker)
            path = directory / f"{number:05d}.png"
            pending.append(pool.submit(picture.image.save, path, format="PNG", compress_level=PNG_COMPRESS_LEVEL))
            files[(segment, utterance)] = path
            while len(pending) > SAVE_THREADS or (number == len(wanted) and pending):
                pending.popleft().result()
                report("draw", number - len(pending), len(wanted))
    return files


def write_concat(timeline: Timeline, files: dict[tuple[int, int | None], Path], path: Path) -> Path:
    """The concat demuxer's script: each picture and how long it stays.

    Every picture is read at the video's frame rate (so timestamps are counted in frames), and each boundary is
    put a quarter frame after the frame where the picture starts: whether ffmpeg rounds that down or to the
    nearest frame, the picture starts on exactly that frame.
    """
    fps = timeline.fps

    def boundary(frame: int) -> int:
        return 0 if frame == 0 else round((frame + 0.25) * 1_000_000 / fps)

    lines = ["ffconcat version 1.0"]
    for still in timeline.stills:
        lines += [
            f"file '{files[still.picture].name}'",
            f"option framerate {fps}",
            f"duration {boundary(still.end) - boundary(still.start)}us",
        ]
    # The demuxer does not honour the last entry's duration, so the last picture is listed once more to run
    # past the end; "-frames:v" then stops the video on exactly the last frame.
    lines += [f"file '{files[timeline.stills[-1].picture].name}'", f"option framerate {fps}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def encoders(requested: str, gpu_visible: bool) -> list[str]:
    """The H.264 encoders to try, in order (spec.video.encoder): "auto" takes NVENC when this process sees a GPU
    and the ffmpeg has it, libx264 otherwise; asking for NVENC still falls back to libx264 when it fails."""
    nvenc = requested == "h264_nvenc" or (requested == "auto" and gpu_visible and "h264_nvenc" in _listed_encoders())
    return ["h264_nvenc", "libx264"] if nvenc else ["libx264"]


def _listed_encoders() -> str:
    try:
        return subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


@dataclass(frozen=True)
class Overlay:
    """What changes from frame to frame over the still pictures: one raw RGB picture per frame (`frames`, `size`),
    from which each `placements` box is cut and laid at its frame position (the cast's faces, job/video/cast/)."""

    size: tuple[int, int]
    placements: Sequence[tuple[Box, tuple[int, int]]]
    frames: Callable[[], Iterator[bytes]]


def ffmpeg_command(
    concat: Path,
    audio: Path,
    output: Path,
    metadata: dict[str, str],
    language: str,
    timeline: Timeline,
    encoder: str = "libx264",
    overlay: Overlay | None = None,
) -> list[str]:
    """One ffmpeg pass: the pictures to H.264 at a constant frame rate, with the overlay's patches laid over them
    (read raw from standard input), the narration to AAC, faststart MP4."""
    fps = timeline.fps
    tags = [arg for key, value in metadata.items() for arg in ("-metadata", f"{key}={value}")]
    # Convert each picture to YUV once, before the fps filter repeats it, not once per output frame.
    video = ["-map", "0:v:0", "-vf", f"format=yuv420p,fps={fps}"]
    patches: list[str] = []
    if overlay is not None:
        width, height = overlay.size
        patches = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps)]
        patches += ["-i", "pipe:0"]
        video = ["-filter_complex", _overlay_graph(fps, overlay), "-map", "[out]"]
    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        *("-hide_banner", "-y", "-loglevel", "error", "-nostats", "-progress", "pipe:1"),
        *(("-nostdin",) if overlay is None else ()),  # with an overlay, standard input is its frames
        # "-safe 0" lets the list set each picture's frame rate; the list and the pictures are all our own files.
        *("-f", "concat", "-safe", "0", "-i", str(concat), "-i", str(audio), *patches, *video, "-map", "1:a:0"),
        *("-c:v", encoder, *ENCODER_OPTIONS[encoder].split()),
        *("-g", str(GOP_SECONDS * fps), "-pix_fmt", "yuv420p", "-frames:v", str(timeline.frames)),
        *("-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2"),
        *("-map_metadata", "-1", *tags, "-metadata:s:a:0", f"language={_LANGUAGE_TAGS.get(language, 'und')}"),
        *("-movflags", "+faststart", str(output)),
    ]


def _overlay_graph(fps: int, overlay: Overlay) -> str:
    """The stills as YUV at the frame rate, then each patch cut from the raw strip (input 2) and laid over them.
    The patches are opaque and even-sized at even positions, so an overlay is a copy of whole chroma samples."""
    count = len(overlay.placements)
    parts = [
        f"[0:v]format=yuv420p,fps={fps}[v0]",
        f"[2:v]format=yuv420p,split={count}" + "".join(f"[s{n}]" for n in range(count)),
    ]
    for n, ((left, top, right, bottom), (x, y)) in enumerate(overlay.placements):
        parts.append(f"[s{n}]crop={right - left}:{bottom - top}:{left}:{top}[p{n}]")
        last = "[out]" if n == count - 1 else f"[v{n + 1}]"
        parts.append(f"[v{n}][p{n}]overlay={x}:{y}:eof_action=pass:format=yuv420{last}")
    return ";".join(parts)


def metadata(script: Script, narration: Narration, music_credit: str = "") -> dict[str, str]:
    credit = narration.credit_line
    music = f"; Music: {music_credit}" if music_credit else ""
    return {
        "title": _tag(script.title),
        "artist": _tag(", ".join(script.presenters)),
        "date": script.aired_at.date().isoformat(),
        "comment": _tag(f"{credit} — {script.title}, {airtime(script.aired_at, script.language)}"),
        "copyright": _tag(f"Voice: {credit}{music}"),
    }


def _tag(text: str) -> str:
    """A metadata value: one line, no control characters, not absurdly long."""
    return " ".join("".join(c for c in text if unicodedata.category(c) != "Cc").split())[:500]


def encode(
    concat: Path,
    audio: Path,
    output: Path,
    metadata: dict[str, str],
    language: str,
    timeline: Timeline,
    report: Progress,
    *,
    encoders: Sequence[str] = ("libx264",),
    warn: Callable[[str], None] | None = None,
    overlay: Overlay | None = None,
) -> str:
    """Encode with the first of `encoders` that works (see `encoders()`); a failed NVENC (no GPU for it, no driver,
    a busy encoder) is a warning and the next encoder, not a failed run. Returns the encoder used."""
    for number, encoder in enumerate(encoders, start=1):
        try:
            command = ffmpeg_command(concat, audio, output, metadata, language, timeline, encoder, overlay)
            _run_ffmpeg(command, concat.parent, output, timeline, report, encoder, overlay)
        except TransientError as exc:
            if number == len(encoders):
                raise
            if warn:
                warn(f"the {encoder} encoder failed, {encoders[number]} was used instead: {exc}")
            continue
        return encoder
    raise ValueError("no encoder to try")


def _run_ffmpeg(
    command: list[str],
    cwd: Path,
    output: Path,
    timeline: Timeline,
    report: Progress,
    encoder: str,
    overlay: Overlay | None = None,
) -> None:
    log_path = output.with_suffix(".ffmpeg.log")
    report("encode", 0, timeline.frames)
    with log_path.open("w+", encoding="utf-8", errors="replace") as log:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.PIPE if overlay else subprocess.DEVNULL,
            cwd=cwd,
        )
        # A hung encoder must not hold the run until the Job's deadline: allow 5x slower than real time, plus slack.
        limit = 120 + 5 * timeline.frames / timeline.fps
        watchdog = threading.Timer(limit, process.kill)
        watchdog.start()
        feeder, failures = None, list[str]()
        if overlay is not None and process.stdin is not None:
            feeder = threading.Thread(
                target=_feed, args=(process.stdin, overlay, failures), name="overlay", daemon=True
            )
            feeder.start()
        try:
            for raw in process.stdout or ():
                key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
                if key == "out_time_us" and value.isdigit():
                    done = min(int(value) * timeline.fps // 1_000_000, timeline.frames)
                    report("encode", done, timeline.frames)
            code = process.wait()
            if feeder is not None:
                feeder.join()
        finally:
            timed_out = not watchdog.is_alive() and process.returncode == -9
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        log.seek(0)
        errors = " ".join(log.read().split())[-600:]
    log_path.unlink(missing_ok=True)
    if failures:  # the faces would have frozen where their frames stopped: not a video to publish
        raise TransientError(f"the cast's frames could not be made: {failures[0]}")
    if timed_out:
        raise TransientError(f"ffmpeg did not finish encoding within {limit:.0f} s; it was stopped")
    if code != 0:
        raise TransientError(
            f"ffmpeg could not encode the video with {encoder} (exit code {code}): {errors or 'no message'}"
        )
    report("encode", timeline.frames, timeline.frames)


def _feed(pipe: IO[bytes], overlay: Overlay, failures: list[str]) -> None:
    """Write the overlay's frames to ffmpeg, a few at a time. An ffmpeg that stopped reading ends it (its exit code
    says why); a frame that could not be made is put in `failures`."""
    batch: list[bytes] = []
    try:
        for frame in overlay.frames():
            batch.append(frame)
            if len(batch) == _FEED_BATCH:
                pipe.write(b"".join(batch))
                batch.clear()
        pipe.write(b"".join(batch))
    except OSError:  # a broken pipe: ffmpeg is gone
        pass
    except Exception as exc:  # anything at all: reported by the encode, which fails
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(OSError, ValueError):
            pipe.close()


def verify(path: Path, timeline: Timeline, size: tuple[int, int]) -> None:
    """Read the finished MP4 back (as moviepy sees it) and fail clearly if it is not what was asked for."""
    try:
        info = ffmpeg_parse_infos(str(path))
    except (OSError, IndexError, KeyError, ValueError) as exc:
        raise TransientError(f"the encoded video {path.name} cannot be read back: {exc}") from None
    problems = []
    if not info.get("video_found") or not info.get("audio_found"):
        problems.append("it lacks its video or audio stream")
    if tuple(info.get("video_size") or ()) != size:
        problems.append(f"it is {info.get('video_size')} instead of {size}")
    if abs(float(info.get("video_fps") or 0) - timeline.fps) > 0.01:
        problems.append(f"it runs at {info.get('video_fps')} fps instead of {timeline.fps}")
    # The container's duration is its longest stream's; AAC may round the sound up to its next 1024 samples.
    slack = 1 / timeline.fps + 1024 / AUDIO_RATE
    if abs(float(info.get("duration") or 0) - timeline.duration) > slack:
        problems.append(f"it lasts {info.get('duration')} s instead of {timeline.duration:.3f} s")
    if problems:
        raise TransientError(f"the encoded video {path.name} is wrong: " + "; ".join(problems))
