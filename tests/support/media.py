"""ffprobe-style inspection of rendered media with the ffmpeg that imageio-ffmpeg ships (it has no ffprobe)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class Stream:
    kind: str
    codec: str
    line: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None


@dataclass
class Probe:
    duration: float
    streams: list[Stream]
    metadata: dict[str, str] = field(default_factory=dict)

    def of(self, kind: str) -> list[Stream]:
        return [s for s in self.streams if s.kind == kind]


def probe(path: Path) -> Probe:
    """Container duration, streams and global metadata, as `ffmpeg -i` reports them."""
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", out)
    assert duration, out
    h, m, s = duration.groups()
    streams = []
    for match in re.finditer(r"Stream #\d+:\d+\S*: (Video|Audio|Subtitle|Data): (\w+)(.*)", out):
        kind, codec, rest = match.group(1).lower(), match.group(2), match.group(3)
        stream = Stream(kind, codec, match.group(0))
        if size := re.search(r", (\d{2,5})x(\d{2,5})", rest):
            stream.width, stream.height = int(size.group(1)), int(size.group(2))
        if fps := re.search(r", ([\d.]+) fps", rest):
            stream.fps = float(fps.group(1))
        if rate := re.search(r", (\d+) Hz", rest):
            stream.sample_rate = int(rate.group(1))
        streams.append(stream)
    metadata = {}
    header = out.split("Duration:")[0]
    for line in header.splitlines():
        if kv := re.match(r"\s{4}(\w+)\s*: (.*)", line):
            metadata[kv.group(1)] = kv.group(2)
    return Probe(int(h) * 3600 + int(m) * 60 + float(s), streams, metadata)


def decoded_seconds(path: Path, kind: str) -> float:
    """How long a stream really plays: decode it fully and read ffmpeg's final time= figure."""
    selector = {"video": "0:v:0", "audio": "0:a:0"}[kind]
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-stats", "-i", str(path), "-map", selector, "-f", "null", "-"],
        capture_output=True,
        text=True,
    ).stderr
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", out)
    assert times, out
    h, m, s = times[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def frame_at(path: Path, seconds: float, png: Path) -> Path:
    """One decoded frame as a PNG, to look at or to check pixels."""
    subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            f"{seconds:.3f}",
            "-i",
            str(path),
            "-frames:v",
            "1",
            str(png),
        ],
        check=True,
    )
    return png


def box_order(path: Path) -> list[str]:
    """Top-level MP4 box types in file order (faststart puts moov before mdat)."""
    order = []
    with path.open("rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                break
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(f.read(8), "big")
                f.seek(size - 16, 1)
            elif size == 0:
                order.append(kind)
                break
            else:
                f.seek(size - 8, 1)
            order.append(kind)
    return order


def decoded_md5(path: Path) -> str:
    """An MD5 of every decoded frame and audio sample: equal for two files with the same pictures and sound,
    whatever their container's timestamps (creation time) say."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0", "-f", "md5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip().removeprefix("MD5=")


def decoded_audio(path: Path, rate: int = 24000) -> bytes:
    """The file's sound decoded to a 16-bit mono WAV at `rate`, to measure."""
    completed = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate),
         "-c:a", "pcm_s16le", "-f", "wav", "-"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return completed.stdout
