"""The render stage: a Script and its Narration in; an MP4 news broadcast, a thumbnail, SRT and WebVTT out.

The content is still pictures, so speed comes from never compositing frames: every distinct picture (a segment's
slide, or that slide with one sentence's subtitle burned in) is drawn once with Pillow, and ffmpeg encodes them
all in one pass through its concat demuxer, each picture held for a whole number of frames, against one WAV built
from the utterances. The timeline is laid out in audio samples and only then mapped to frames, so picture and
sound cannot drift apart, and the video is exactly as long as the audio.

    lead-in │ intro sentences │ gap │ story 1 sentences │ gap │ … │ outro sentences │ tail
    slide:  intro ─────────────────► story 1 ───────────────────► …   outro ──────────────►
    burned-in subtitle: one per sentence, from its first sample to its last
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import unicodedata
import wave
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from api.v1alpha1 import Theme, Video
from job import fonts
from job.model import ConfigError, Cue, Narration, Rendering, Script, Story, TransientError, Utterance
from job.subtitles import cue_text, to_srt, to_vtt

Progress = Callable[[str, int, int], None]
RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]

LEAD_IN_SECONDS = 0.3
"""Silence before the first sentence, so a player's first frame is not mid-word."""
SEGMENT_GAP_SECONDS = 0.6
"""Silence between segments (intro, each story, outro): the pause a newsreader makes between items."""
TAIL_SECONDS = 1.0
"""Silence after the last sentence, with the sign-off card still on screen."""

AUDIO_RATE = 48_000
AUDIO_BITRATE = "128k"
GOP_SECONDS = 4
# x264 for still pictures. Almost every frame repeats the one before and is coded as skipped blocks, so the
# cost is x264's fixed work per frame, which the ultrafast preset keeps lowest; CABAC is put back because it
# costs little here and makes the file smaller. Measured on the benchmark's 1080p slides: 20% less CPU than
# "veryfast" (no B-frames, no lookahead) at a higher PSNR (41.5 dB against 39.7), for about 0.5 Mbit/s.
X264_OPTIONS = "-preset ultrafast -tune stillimage -crf 23 -x264-params cabac=1"
MAX_IMAGE_PIXELS = 50_000_000
"""Largest anchor or background image decoded (a 50-megapixel photo); larger ones are refused unread."""
THUMBNAIL_LONG_SIDE = 1280
THUMBNAIL_QUALITY = 88
PNG_COMPRESS_LEVEL = 1
"""Fast zlib: slides are flat colours, so level 1 is already small, and it is 4x faster than the default."""
SAVE_THREADS = 2

_LANGUAGE_TAGS = {"ja": "jpn", "en": "eng"}
_WEEKDAYS_JA = "月火水木金土日"
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS_EN: tuple[str, ...] = ("January", "February", "March", "April", "May", "June", "July", "August")
_MONTHS_EN += ("September", "October", "November", "December")


def render(
    script: Script,
    narration: Narration,
    video: Video,
    workdir: Path,
    *,
    base_dir: Path | None = None,
    progress: Progress | None = None,
) -> Rendering:
    """Render the broadcast into `workdir`: video.mp4, thumbnail.jpg, subtitles.srt and subtitles.vtt.

    Raises ConfigError for a bad font or image setting, TransientError when ffmpeg fails or its output is wrong.
    """
    report = progress or _no_progress
    if any(not 0 <= u.segment < len(script.segments) for u in narration.utterances):
        raise ValueError("an utterance refers to a segment the script does not have")
    workdir.mkdir(parents=True, exist_ok=True)
    voices = [_read_voice(u, narration.sample_rate) for u in narration.utterances]
    timeline = plan_timeline(
        narration.utterances, [len(v) for v in voices], narration.sample_rate, video.fps, subtitles=video.subtitles
    )
    font = fonts.resolve_font(
        video.font, base_dir=base_dir, japanese=script.language == "ja" or fonts.contains_cjk(_all_text(script))
    )
    studio = Studio(script, video, font, narration.credit.text, base_dir=base_dir)

    pictures_dir, audio, output = workdir / "pictures", workdir / "narration.wav", workdir / "video.mp4"
    shutil.rmtree(pictures_dir, ignore_errors=True)
    pictures_dir.mkdir()
    try:
        files = _draw_stills(studio, narration, timeline, pictures_dir, report)
        concat = _write_concat(timeline, files, pictures_dir / "pictures.ffconcat")
        _write_audio(voices, timeline, audio)
        _encode(concat, audio, output, _metadata(script, narration), script.language, timeline, report)
        _verify(output, timeline, video.size)
    finally:  # the intermediate files are large and nobody else needs them
        shutil.rmtree(pictures_dir, ignore_errors=True)
        audio.unlink(missing_ok=True)

    thumbnail = _write_thumbnail(studio.thumbnail_slide().image, workdir / "thumbnail.jpg")
    srt = workdir / "subtitles.srt"
    srt.write_text(to_srt(timeline.cues), encoding="utf-8")
    vtt = workdir / "subtitles.vtt"
    vtt.write_text(to_vtt(timeline.cues), encoding="utf-8")
    return Rendering(
        video=output,
        thumbnail=thumbnail,
        srt=srt,
        vtt=vtt,
        duration=timeline.duration,
        cues=timeline.cues,
        warnings=tuple(studio.warnings()),
    )


def _no_progress(step: str, done: int, total: int) -> None:
    """Progress goes nowhere when nobody asked for it."""


# -- timeline -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Still:
    """One picture held on screen from frame `start` up to, not including, frame `end`.

    The picture is the slide of script segment `segment`, with the subtitle of utterance `utterance` burned in,
    or the bare slide when `utterance` is None (the pauses between segments, the lead-in and the tail).
    """

    segment: int
    utterance: int | None
    start: int
    end: int

    @property
    def picture(self) -> tuple[int, int | None]:
        return self.segment, self.utterance


@dataclass(frozen=True)
class Timeline:
    """Where every sentence and picture sits: sentences in audio samples, pictures in whole frames."""

    fps: int
    sample_rate: int
    starts: tuple[int, ...]
    """First sample of each utterance in the narration track."""
    samples: int
    """Length of the narration track: the video's length, to well within one sample."""
    frames: int
    cues: tuple[Cue, ...]
    stills: tuple[Still, ...]

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def plan_timeline(
    utterances: Sequence[Utterance], lengths: Sequence[int], sample_rate: int, fps: int, *, subtitles: bool
) -> Timeline:
    """Lay the utterances (`lengths` in samples) on one track with pauses, and the pictures on frames.

    A picture changes at the frame nearest to the sample where its sentence starts; the track is padded so that
    it ends exactly on the last frame's end.
    """
    if not utterances:
        raise ValueError("a broadcast needs at least one utterance")
    gap = round(SEGMENT_GAP_SECONDS * sample_rate)
    position = round(LEAD_IN_SECONDS * sample_rate)
    starts: list[int] = []
    for index, utterance in enumerate(utterances):
        if index and utterance.segment != utterances[index - 1].segment:
            position += gap
        starts.append(position)
        position += lengths[index]
    speech_end = position
    frames = max(1, -(-(speech_end + round(TAIL_SECONDS * sample_rate)) * fps // sample_rate))  # ceil, exactly

    def frame(sample: int) -> int:
        return (2 * sample * fps + sample_rate) // (2 * sample_rate)  # nearest frame, in integers

    marks: list[tuple[int, int, int | None]] = []
    for index, utterance in enumerate(utterances):
        if index == 0:
            marks.append((0, utterance.segment, None))
        elif utterance.segment != utterances[index - 1].segment:
            marks.append((frame(starts[index - 1] + lengths[index - 1]), utterance.segment, None))
        if subtitles:
            marks.append((frame(starts[index]), utterance.segment, index))
    if subtitles:
        marks.append((frame(speech_end), utterances[-1].segment, None))
    cues = tuple(
        Cue(start / sample_rate, (start + length) / sample_rate, cue_text(u.text))
        for u, start, length in zip(utterances, starts, lengths, strict=True)
    )
    return Timeline(
        fps=fps,
        sample_rate=sample_rate,
        starts=tuple(starts),
        samples=round(frames * sample_rate / fps),
        frames=frames,
        cues=cues,
        stills=_stills(marks, frames),
    )


def _stills(marks: Sequence[tuple[int, int, int | None]], frames: int) -> tuple[Still, ...]:
    stills: list[Still] = []
    for number, (start, segment, utterance) in enumerate(marks):
        end = marks[number + 1][0] if number + 1 < len(marks) else frames
        end = min(end, frames)
        if end <= start:
            continue  # a sentence shorter than half a frame: its picture never shows
        if stills and stills[-1].picture == (segment, utterance) and stills[-1].end == start:
            stills[-1] = Still(segment, utterance, stills[-1].start, end)
        else:
            stills.append(Still(segment, utterance, start, end))
    return tuple(stills)


# -- audio ----------------------------------------------------------------------------------------------------


def _read_voice(utterance: Utterance, sample_rate: int) -> np.ndarray:
    """One utterance's samples as mono int16, checked against the narration's sample rate."""
    try:
        with wave.open(str(utterance.wav), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise TransientError(f"the voice of {utterance.text[:40]!r} ({utterance.wav}) is unreadable: {exc}") from None
    if rate != sample_rate or width != 2 or channels not in (1, 2):
        raise TransientError(
            f"the voice of {utterance.text[:40]!r} is {rate} Hz, {8 * width}-bit, {channels} channel(s); "
            f"expected {sample_rate} Hz 16-bit mono like the rest of the narration"
        )
    samples = np.frombuffer(data, dtype="<i2")
    if channels == 2:
        samples = samples.reshape(-1, 2).mean(axis=1).astype("<i2")
    return samples


def _write_audio(voices: Sequence[np.ndarray], timeline: Timeline, path: Path) -> Path:
    """The narration track: every utterance at its start sample, silence elsewhere, padded to the video's end."""
    track = np.zeros(timeline.samples, dtype="<i2")
    for start, voice in zip(timeline.starts, voices, strict=True):
        track[start : start + len(voice)] = voice[: max(0, timeline.samples - start)]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(timeline.sample_rate)
        wav.writeframes(track.tobytes())
    return path


# -- pictures -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Palette:
    background: RGB
    accent: RGB
    text: RGB
    muted: RGB
    card: RGB
    subtitle_background: RGB

    @classmethod
    def of(cls, theme: Theme) -> Palette:
        background, text = _rgb(theme.background), _rgb(theme.text)
        return cls(
            background=background,
            accent=_rgb(theme.accent),
            text=text,
            muted=_mix(text, background, 0.3),
            card=_mix(background, text, 0.08),
            subtitle_background=_rgb(theme.subtitle_background),
        )


def _rgb(colour: str) -> RGB:
    value = int(colour.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _mix(a: RGB, b: RGB, amount: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * amount),
        round(a[1] + (b[1] - a[1]) * amount),
        round(a[2] + (b[2] - a[2]) * amount),
    )


@dataclass(frozen=True)
class Layout:
    """Where things go on a frame. Sizes scale with the short side (`unit` = 1 at 1080 px), positions with the
    frame; a vertical frame stacks what a landscape one puts side by side."""

    width: int
    height: int

    @property
    def vertical(self) -> bool:
        return self.height > self.width

    @property
    def unit(self) -> float:
        return min(self.width, self.height) / 1080

    def px(self, value: float) -> int:
        return max(1, round(value * self.unit))

    @property
    def margin(self) -> int:
        return self.px(56 if self.vertical else 64)

    @property
    def header(self) -> Box:
        """The top row: programme title, date and the voice credit."""
        top = self.px(44 if self.vertical else 36)
        return self.margin, top, self.width - self.margin, top + self.px(50)

    @property
    def anchor(self) -> Box:
        """Where the anchor's picture stands: right of the headline, or under it on a vertical frame."""
        if self.vertical:
            return self.margin, round(0.49 * self.height), self.width - self.margin, self.lower_third[1]
        return round(0.70 * self.width), round(0.115 * self.height), self.width - self.margin, self.lower_third[3]

    def card(self, with_anchor: bool) -> Box:
        """The room for the headline card (which shrinks to its content)."""
        if self.vertical:
            bottom = round(0.47 * self.height) if with_anchor else self.lower_third[1] - self.px(48)
            return self.margin, round(0.085 * self.height), self.width - self.margin, bottom
        right = self.anchor[0] - self.px(32) if with_anchor else self.width - self.margin
        return self.margin, round(0.115 * self.height), right, round(0.655 * self.height)

    @property
    def lower_third(self) -> Box:
        if self.vertical:
            return 0, round(0.745 * self.height), self.width - self.margin, round(0.795 * self.height)
        return 0, round(0.685 * self.height), round(0.64 * self.width), round(0.77 * self.height)

    @property
    def subtitle(self) -> Box:
        """The area the subtitle band may take; the band grows upwards from its bottom edge."""
        top = 0.80 if self.vertical else 0.795
        return self.margin, round(top * self.height), self.width - self.margin, round(0.965 * self.height)

    def column(self, beside_anchor: bool) -> tuple[int, int]:
        """Left and right edges of the centred column of the intro and outro cards."""
        if beside_anchor and not self.vertical:
            return self.margin, self.anchor[0] - self.px(32)
        return self.margin, self.width - self.margin


@dataclass(frozen=True)
class Picture:
    """A drawn picture, every string drawn on it exactly as passed to Pillow (to prove there is no tofu), and
    where each string landed (to prove the layout keeps text inside its area)."""

    image: Image.Image
    texts: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()


class Painter:
    """All text goes through here: characters the font lacks are removed first (and remembered for one
    warning), lines are wrapped by measured width, and every string drawn is recorded."""

    def __init__(self, font: fonts.Font) -> None:
        self.font = font
        self.missing: set[str] = set()
        self.ellipsis = "…" if not font.covers("…") else "..."

    def clean(self, text: str) -> str:
        cleaned, missing = fonts.drawable(self.font, text)
        self.missing |= missing
        return cleaned

    def face(self, size: int, bold: bool) -> ImageFont.FreeTypeFont:
        return self.font.pillow(size, bold=bold)

    def stroke(self, size: int, bold: bool) -> int:
        """Without a bold face, bold is faked with an outline in the text's own colour."""
        return max(1, round(size / 48)) if bold and self.font.bold is None else 0

    def measure(self, size: int, bold: bool) -> Callable[[str], float]:
        face, stroke = self.face(size, bold), self.stroke(size, bold)
        return lambda text: face.getlength(text) + 2 * stroke

    def lines(self, text: str, size: int, width: float, max_lines: int, *, bold: bool = False) -> list[str]:
        return wrap(self.clean(text), width, self.measure(size, bold), max_lines, self.ellipsis)

    def fit(
        self, text: str, sizes: Sequence[tuple[int, int]], width: float, *, bold: bool = False, balanced: bool = False
    ) -> tuple[int, list[str], bool]:
        """The first (size, max lines) at which all of `text` fits; else the last, cut with an ellipsis.

        `balanced`: also pass over a size whose last line would be a stub (a word or two left alone under a
        headline) when a later size fits without one. Returns the size, the lines and whether text was cut.
        """
        cleaned = self.clean(text)
        fitting: tuple[int, list[str]] | None = None
        for size, max_lines in sizes:
            measure = self.measure(size, bold)
            lines = wrap_all(cleaned, width, measure, max_lines)
            if len(lines) > max_lines:
                continue
            if not balanced or len(lines) == 1 or measure(lines[-1]) >= 0.25 * width:
                return size, lines, False
            fitting = fitting or (size, lines)
        if fitting is not None:
            return *fitting, False
        size, max_lines = sizes[-1]
        return size, wrap(cleaned, width, self.measure(size, bold), max_lines, self.ellipsis), True


@dataclass(frozen=True)
class Block:
    """A unit of a stacked layout: lines of one size and colour, or (with no lines) an accent rule."""

    lines: tuple[str, ...]
    size: int
    fill: RGB
    space: int = 0
    """Gap above the block."""
    leading: float = 1.3
    bold: bool = False
    rule: tuple[int, int] = (0, 0)
    """Width and thickness of an accent rule, for a block without lines."""

    @property
    def height(self) -> int:
        return self.space + (len(self.lines) * round(self.size * self.leading) if self.lines else self.rule[1])


class Canvas:
    """A picture being drawn: Pillow's ImageDraw plus the record of the strings drawn."""

    def __init__(self, image: Image.Image, painter: Painter, drawn: Picture | None = None) -> None:
        """A canvas on `image`; `drawn` is the picture it was copied from, whose strings it keeps."""
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.painter = painter
        self.texts = list(drawn.texts if drawn else ())
        self.boxes = list(drawn.boxes if drawn else ())

    def text(
        self, xy: tuple[float, float], text: str, size: int, fill: RGB, *, bold: bool = False, anchor: str = "la"
    ) -> float:
        """Draw one line; returns its width."""
        line = self.painter.clean(text)
        if not line:
            return 0.0
        stroke = self.painter.stroke(size, bold)
        face = self.painter.face(size, bold)
        self.texts.append(line)
        left, top, right, bottom = self.draw.textbbox(xy, line, font=face, anchor=anchor, stroke_width=stroke)
        self.boxes.append((math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)))
        self.draw.text(xy, line, font=face, fill=fill, anchor=anchor, stroke_width=stroke, stroke_fill=fill)
        return face.getlength(line) + 2 * stroke

    def stack(self, blocks: Sequence[Block], x: float, y: float, *, centred: bool = False) -> float:
        """Draw blocks one under another from `y` (at `x`, or centred on it); returns the y under the last."""
        for block in blocks:
            y += block.space
            if not block.lines:
                width, thickness = block.rule
                left = x - width / 2 if centred else x
                self.draw.rectangle((left, y, left + width - 1, y + thickness - 1), fill=block.fill)
                y += thickness
            for line in block.lines:
                # Lines are placed by their middle, so that the space above and below a line is even.
                middle = y + round(block.size * block.leading) / 2
                anchor = "mm" if centred else "lm"
                self.text((x, middle), line, block.size, block.fill, bold=block.bold, anchor=anchor)
                y += round(block.size * block.leading)
        return y

    def shade(self, box: Box, colour: RGB, alpha: int, radius: int) -> None:
        """A translucent rounded box over what is drawn already."""
        region = self.image.crop(box).convert("RGBA")
        layer = Image.new("RGBA", region.size, (0, 0, 0, 0))
        ImageDraw.Draw(layer).rounded_rectangle(
            (0, 0, region.width - 1, region.height - 1), radius=radius, fill=(*colour, alpha)
        )
        self.image.paste(Image.alpha_composite(region, layer).convert("RGB"), box[:2])

    def picture(self) -> Picture:
        return Picture(self.image, tuple(self.texts), tuple(self.boxes))


class Studio:
    """Draws the broadcast's pictures: intro card, a slide per story, sign-off card, and subtitle bands."""

    def __init__(
        self, script: Script, video: Video, font: fonts.Font, credit: str, *, base_dir: Path | None = None
    ) -> None:
        self.script = script
        self.layout = Layout(*video.size)
        self.palette = Palette.of(video.theme)
        self.painter = Painter(font)
        self.credit = credit
        self.shortened_subtitles = 0
        self._backdrop = self._draw_backdrop(video, base_dir)
        self._anchor = (
            _fitted(_load_image(video.anchor_image, base_dir, "spec.video.anchorImage"), self.layout.anchor)
            if video.anchor_image
            else None
        )
        self._slides: dict[int, Picture] = {}

    # Pictures by segment ------------------------------------------------------------------------------------

    def slide(self, segment: int) -> Picture:
        """The bare slide of a script segment, drawn once."""
        if segment not in self._slides:
            part = self.script.segments[segment]
            if part.kind == "story" and part.story is not None:
                number = sum(1 for s in self.script.segments[:segment] if s.story is not None) + 1
                self._slides[segment] = self.story(part.story, number, len(self.script.stories))
            elif part.kind == "outro":
                self._slides[segment] = self.outro()
            else:
                self._slides[segment] = self.intro()
        return self._slides[segment]

    def thumbnail_slide(self) -> Picture:
        """The first story's slide (its headline), or the intro card of a broadcast without stories."""
        for index, segment in enumerate(self.script.segments):
            if segment.kind == "story" and segment.story is not None:
                return self.slide(index)
        return self.slide(0)

    def warnings(self) -> list[str]:
        found: list[str] = []
        if self.painter.missing:
            shown = sorted(self.painter.missing)
            listed = ", ".join(_describe_char(c) for c in shown[:20])
            more = f" and {len(shown) - 20} more" if len(shown) > 20 else ""
            name = self.painter.font.name or self.painter.font.path.name
            found.append(
                f"the font {name} has no glyph for {len(shown)} character(s) in the text; they were left out of "
                f"the pictures (subtitle files keep them): {listed}{more}"
            )
        if self.shortened_subtitles:
            found.append(
                f"{self.shortened_subtitles} sentence(s) were too long for the burned-in subtitle band and were "
                "shortened with '…' on screen; the SRT and WebVTT files have them in full"
            )
        return found

    # Slides -------------------------------------------------------------------------------------------------

    def intro(self) -> Picture:
        """Programme title, date and time, and the anchor's name in the lower third."""
        canvas = self._canvas()
        layout, palette, ja = self.layout, self.palette, self.script.language == "ja"
        left, right = layout.column(self._anchor is not None)
        width, px = right - left, layout.px
        title_size, title, _ = self.painter.fit(
            self.script.title, [(px(96), 2), (px(80), 2), (px(64), 3)], width, bold=True
        )
        date = self.painter.lines(airtime(self.script.aired_at, self.script.language), px(44), width, 2)
        blocks = [
            Block((), 0, palette.accent, rule=(px(140), px(10))),
            Block(tuple(title), title_size, palette.text, space=px(36), leading=1.25, bold=True),
            Block(tuple(date), px(44), palette.text, space=px(20), leading=1.35),
        ]
        self._place_anchor(canvas)
        self._centred(canvas, blocks, left, right, layout.header[3], layout.lower_third[1])
        self._band(canvas, "キャスター" if ja else "ANCHOR", self.script.anchor_name)
        self._corner_credit(canvas)
        return canvas.picture()

    def story(self, story: Story, number: int, count: int) -> Picture:
        """Header, headline card (title, source and date, summary), lower third with the source."""
        canvas = self._canvas()
        self._header(canvas)
        self._place_anchor(canvas)
        self._headline_card(canvas, story)
        self._band(canvas, "ニュース" if self.script.language == "ja" else "NEWS", story.source, f"{number}/{count}")
        self._corner_credit(canvas)
        return canvas.picture()

    def outro(self) -> Picture:
        """The sign-off, and the voice credit large: VOICEVOX's terms require the voice to be credited."""
        canvas = self._canvas()
        layout, palette, ja = self.layout, self.palette, self.script.language == "ja"
        left, right = layout.column(self._anchor is not None)
        width, px = right - left, layout.px
        farewell = "ご視聴ありがとうございました" if ja else "Thank you for watching"
        size, lines, _ = self.painter.fit(farewell, [(px(80), 1), (px(64), 2), (px(52), 3)], width, bold=True)
        credit_size, credit, _ = self.painter.fit(self.credit, [(px(60), 1), (px(48), 2)], width, bold=True)
        blocks = [
            Block(tuple(lines), size, palette.text, leading=1.25, bold=True),
            Block(tuple(self.painter.lines(self.script.title, px(40), width, 2)), px(40), palette.muted, space=px(8)),
            Block((), 0, palette.accent, space=px(48), rule=(px(140), px(6))),
            Block(("音声" if ja else "Voice",), px(32), palette.muted, space=px(28)),
            Block(tuple(credit), credit_size, palette.text, leading=1.3, bold=True),
        ]
        self._place_anchor(canvas)
        self._centred(canvas, blocks, left, right, layout.header[3], layout.subtitle[1])
        self._corner_credit(canvas)
        return canvas.picture()

    def with_subtitle(self, slide: Picture, sentence: str) -> Picture:
        """`slide` with `sentence` in a semi-transparent band at the bottom, as wide as the text needs."""
        layout, palette = self.layout, self.palette
        left, top, right, bottom = layout.subtitle
        pad_x, pad_y = layout.px(40), layout.px(20)
        base = layout.px(50 if layout.vertical else 46)
        sizes = [(base, 2), (round(base * 0.86), 2), (round(base * 0.74), 3)]
        size, lines, cut = self.painter.fit(sentence, sizes, right - left - 2 * pad_x)
        self.shortened_subtitles += cut
        if not lines:
            return slide
        text_width = max(self.painter.measure(size, False)(line) for line in lines)
        middle, half = (left + right) / 2, min((right - left) / 2, text_width / 2 + pad_x)
        block = Block(tuple(lines), size, palette.text, leading=1.38)
        band = (round(middle - half), max(top, bottom - block.height - 2 * pad_y), round(middle + half), bottom)
        canvas = Canvas(slide.image.copy(), self.painter, slide)
        canvas.shade(band, palette.subtitle_background, 178, layout.px(14))
        canvas.stack([block], middle, band[1] + pad_y, centred=True)
        return canvas.picture()

    # Parts --------------------------------------------------------------------------------------------------

    def _canvas(self) -> Canvas:
        return Canvas(self._backdrop.copy(), self.painter)

    def _centred(self, canvas: Canvas, blocks: Sequence[Block], left: int, right: int, top: int, bottom: int) -> None:
        """Blocks centred as a whole, across [left, right] and down [top, bottom]."""
        height = sum(block.height for block in blocks)
        canvas.stack(blocks, (left + right) / 2, top + max(0, (bottom - top - height) / 2), centred=True)

    def _header(self, canvas: Canvas) -> None:
        """Programme title in an accent tab, then the date; the credit sits at the right end (see _corner_credit)."""
        layout, palette = self.layout, self.palette
        left, top, right, bottom = layout.header
        size, pad = layout.px(28), layout.px(18)
        credit_room = self._credit_width() + layout.px(32)
        title = self.painter.lines(self.script.title, size, round(0.45 * layout.width), 1, bold=True)
        title_width = self.painter.measure(size, True)(title[0]) if title else 0
        canvas.draw.rounded_rectangle(
            (left, top, left + title_width + 2 * pad, bottom), radius=layout.px(8), fill=palette.accent
        )
        if title:
            canvas.text((left + pad, (top + bottom) / 2), title[0], size, palette.text, bold=True, anchor="lm")
        date = airtime(self.script.aired_at, self.script.language)
        x = left + title_width + 2 * pad + layout.px(20)
        date_lines = self.painter.lines(date, size, max(0, right - credit_room - x), 1)
        if date_lines and not date_lines[0].endswith(self.painter.ellipsis):
            canvas.text((x, (top + bottom) / 2), date_lines[0], size, palette.muted, anchor="lm")
        else:  # no room beside the title (a vertical frame): under it
            canvas.text((left, bottom + layout.px(12)), date, layout.px(26), palette.muted)

    def _headline_card(self, canvas: Canvas, story: Story) -> None:
        """The story's headline, an accent rule, source and date, and as much of the summary as fits; the card
        shrinks to its content."""
        layout, palette, px = self.layout, self.palette, self.layout.px
        left, top, right, bottom = layout.card(self._anchor is not None)
        pad = px(40)
        width = right - left - 2 * pad
        head = px(64 if layout.vertical else 66)
        sizes = [(head, 3), (head, 4)] if layout.vertical else [(head, 3)]
        sizes += [(round(head * 0.86), 3), (round(head * 0.74), 4)]
        size, title, _ = self.painter.fit(story.title, sizes, width, bold=True, balanced=True)
        meta = self.painter.lines(" | ".join(filter(None, [story.source, self._published(story)])), px(30), width, 1)
        blocks = [
            Block(tuple(title), size, palette.text, leading=1.3, bold=True),
            Block((), 0, palette.accent, space=px(16), rule=(px(120), px(6))),
            Block(tuple(meta), px(30), palette.muted, space=px(18), leading=1.5),
        ]
        body = px(36)
        room = (bottom - top - 2 * pad - sum(b.height for b in blocks) - px(12)) // round(body * 1.5)
        if story.summary and room > 0:
            summary = self.painter.lines(story.summary, body, width, min(room, 10 if layout.vertical else 6))
            blocks.append(Block(tuple(summary), body, palette.text, space=px(12), leading=1.5))
        height = min(bottom - top, 2 * pad + sum(b.height for b in blocks))
        if layout.vertical:  # a tall frame has room to spare: the card floats in the middle of it
            top += (bottom - top - height) // 2
        canvas.shade((left, top, right, top + height), palette.card, 230, px(18))
        canvas.draw.rectangle((left, top + px(18), left + px(8) - 1, top + height - px(18)), fill=palette.accent)
        canvas.stack(blocks, left + pad, top + pad)

    def _band(self, canvas: Canvas, label: str, text: str, counter: str = "") -> None:
        """The lower third: an accent band with a label tab, a name (the story's source), and a counter."""
        layout, palette = self.layout, self.palette
        left, top, right, bottom = layout.lower_third
        canvas.draw.rectangle((left, top, right - 1, bottom - 1), fill=palette.accent)
        middle = (top + bottom) / 2
        label_size, pad = layout.px(26), layout.px(14)
        label_width = self.painter.measure(label_size, True)(self.painter.clean(label))
        x = float(layout.margin)
        tab = (x, middle - label_size * 0.9, x + label_width + 2 * pad, middle + label_size * 0.9)
        canvas.draw.rectangle(tab, fill=palette.text)
        canvas.text((x + pad, middle), label, label_size, palette.accent, bold=True, anchor="lm")
        counter_width = 0.0
        if counter:
            counter_width = canvas.text(
                (right - layout.px(24), middle), counter, layout.px(28), palette.text, anchor="rm"
            )
        x += label_width + 2 * pad + layout.px(22)
        size = layout.px(36 if layout.vertical else 40)
        name = self.painter.lines(text, size, max(right - layout.px(48) - counter_width - x, 0), 1, bold=True)
        if name:
            canvas.text((x, middle), name[0], size, palette.text, bold=True, anchor="lm")

    def _corner_credit(self, canvas: Canvas) -> None:
        """The voice credit in the top-right corner of every picture, as VOICEVOX's terms require."""
        layout = self.layout
        _, top, right, bottom = layout.header
        canvas.text((right, (top + bottom) / 2), self.credit, layout.px(24), self.palette.muted, anchor="rm")

    def _credit_width(self) -> float:
        return self.painter.measure(self.layout.px(24), False)(self.painter.clean(self.credit))

    def _place_anchor(self, canvas: Canvas) -> None:
        if self._anchor is None:
            return
        left, _, right, bottom = self.layout.anchor
        x = left + (right - left - self._anchor.width) // 2
        canvas.image.paste(self._anchor, (x, bottom - self._anchor.height), self._anchor)

    def _published(self, story: Story) -> str:
        if story.published is None:
            return ""
        published = story.published if story.published.tzinfo else story.published.replace(tzinfo=UTC)
        return airtime(published.astimezone(self.script.aired_at.tzinfo), self.script.language)

    def _draw_backdrop(self, video: Video, base_dir: Path | None) -> Image.Image:
        size = self.layout.width, self.layout.height
        backdrop = Image.new("RGB", size, self.palette.background)
        if video.background_image:
            image = _load_image(video.background_image, base_dir, "spec.video.backgroundImage")
            cover = ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS)
            # Half the theme's background over the photo keeps white text readable on any picture.
            backdrop = Image.blend(cover, backdrop, 0.5)
        return backdrop


def _describe_char(char: str) -> str:
    code = f"U+{ord(char):04X}"
    return code if unicodedata.category(char)[0] in "CZ" else f"{char} ({code})"


def airtime(moment: datetime, language: str) -> str:
    """A date and time the way a newsreader's caption shows it."""
    if language == "ja":
        weekday = _WEEKDAYS_JA[moment.weekday()]
        return f"{moment.year}年{moment.month}月{moment.day}日（{weekday}）{moment.hour}:{moment.minute:02d}"
    weekday, month = _WEEKDAYS_EN[moment.weekday()], _MONTHS_EN[moment.month - 1]
    return f"{weekday}, {moment.day} {month} {moment.year}, {moment.hour:02d}:{moment.minute:02d}"


def _all_text(script: Script) -> str:
    parts = [script.title, script.anchor_name]
    for segment in script.segments:
        parts += segment.sentences
        if segment.story is not None:
            parts += [segment.story.title, segment.story.source, segment.story.summary]
    return "\n".join(parts)


def _load_image(setting: str, base_dir: Path | None, name: str) -> Image.Image:
    """A PNG or JPEG from the spec, decoded only once its header shows a sane size."""
    path = Path(setting).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    try:
        with Image.open(path, formats=("PNG", "JPEG")) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ConfigError(
                    f"{name}: {path} is {image.width}x{image.height} pixels; at most {MAX_IMAGE_PIXELS:,} are allowed"
                )
            loaded = ImageOps.exif_transpose(image)
            loaded.load()
            return loaded.convert("RGBA")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no image at {path}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"{name}: {path} is not a readable PNG or JPEG image ({exc})") from None


def _fitted(image: Image.Image, box: Box) -> Image.Image:
    """`image` scaled to fit inside `box`, keeping its proportions."""
    width, height = box[2] - box[0], box[3] - box[1]
    scale = min(width / image.width, height / image.height)
    size = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


# -- text wrapping --------------------------------------------------------------------------------------------

# 禁則: characters that may not start a line (closing marks, small kana, the prolonged sound mark) and that may
# not end one (opening brackets).
_NO_START = frozenset(
    "、。，．・：；？！ー～〜…‥」』）］｝〕〉》】ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々,.:;!?)]}%"
)
_NO_END = frozenset("「『（［｛〔〈《【([{")


def wrap(text: str, width: float, measure: Callable[[str], float], max_lines: int, ellipsis: str = "…") -> list[str]:
    """`text` in lines at most `width` wide (by `measure`), at most `max_lines` of them; cut text ends in `ellipsis`.

    Latin words break at spaces; Japanese, which has no spaces, breaks between any two characters except where
    禁則 forbids it (a line never starts with 。、」） or small kana, never ends with 「（).
    """
    if max_lines <= 0:
        return []
    lines = wrap_all(text, width, measure, max_lines)
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and measure(last + ellipsis) > width:
        last = last[:-1]
    return [*lines[: max_lines - 1], last.rstrip(" 、，,・") + ellipsis]


def wrap_all(text: str, width: float, measure: Callable[[str], float], limit: int) -> list[str]:
    """Lines of `text`, stopping once there are more than `limit` (so a hostile 1 MB summary costs nothing)."""
    lines: list[str] = []
    current: list[str] = []
    for token in _tokens(text[: 400 * (limit + 1)], width, measure):
        if token.isspace():
            if current:
                current.append(token)
            continue
        if not current or measure("".join(current) + token) <= width:
            current.append(token)
            continue
        carried = _phrase_carry(current, width, measure) or _kinsoku_carry(current, token)
        if carried and measure("".join(carried) + token) > width:
            current += carried  # keeping the rule would overflow the line: break the rule instead
            carried = []
        lines.append("".join(current).strip())
        if len(lines) > limit:
            return lines
        current = [*carried, token]
    if current:
        lines.append("".join(current).strip())
    return [line for line in lines if line]


def _tokens(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Units that are never split: a Latin word, one CJK character, or a space. A word wider than a whole line
    (a long URL) is split into pieces that fit."""
    tokens: list[str] = []
    word = ""
    for char in text:
        if char == " " or ord(char) >= 0x2E80:
            if word:
                tokens += _split_word(word, width, measure)
                word = ""
            tokens.append(char)
        else:
            word += char
    if word:
        tokens += _split_word(word, width, measure)
    return tokens


def _split_word(word: str, width: float, measure: Callable[[str], float]) -> list[str]:
    if measure(word) <= width:
        return [word]
    pieces, piece = [], ""
    for char in word:
        if piece and measure(piece + char) > width:
            pieces.append(piece)
            piece = ""
        piece += char
    return [*pieces, piece] if piece else pieces


def _phrase_carry(current: list[str], width: float, measure: Callable[[str], float]) -> list[str]:
    """Japanese headlines separate phrases with a full-width space: when one sits in the last part of a full
    line, break there rather than inside the next phrase (北 | 日本 → | 北日本)."""
    if "\u3000" not in current:
        return []
    space = len(current) - 1 - current[::-1].index("\u3000")
    if space == 0 or len(current) - space > 9 or measure("".join(current[:space])) < 0.6 * width:
        return []
    carried = current[space + 1 :]
    del current[space:]
    return carried


def _kinsoku_carry(current: list[str], token: str) -> list[str]:
    """Tokens to move from the end of the full line `current` to the next line, so that neither line breaks 禁則."""
    carried: list[str] = []
    while current and current[-1] == " ":
        current.pop()
    if token[0] in _NO_START and len(current) > 1:
        carried.insert(0, current.pop())
    while len(current) > 1 and current[-1][-1] in _NO_END:
        carried.insert(0, current.pop())
    return carried


# -- drawing and encoding ------------------------------------------------------------------------------------


def _draw_stills(
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
                picture = studio.with_subtitle(picture, narration.utterances[utterance].text)
            path = directory / f"{number:05d}.png"
            pending.append(pool.submit(picture.image.save, path, format="PNG", compress_level=PNG_COMPRESS_LEVEL))
            files[(segment, utterance)] = path
            while len(pending) > SAVE_THREADS or (number == len(wanted) and pending):
                pending.popleft().result()
                report("draw", number - len(pending), len(wanted))
    return files


def _write_concat(timeline: Timeline, files: dict[tuple[int, int | None], Path], path: Path) -> Path:
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


def ffmpeg_command(
    concat: Path, audio: Path, output: Path, metadata: dict[str, str], language: str, timeline: Timeline
) -> list[str]:
    """One ffmpeg pass: the pictures to H.264 at a constant frame rate, the narration to AAC, faststart MP4."""
    fps = timeline.fps
    tags = [arg for key, value in metadata.items() for arg in ("-metadata", f"{key}={value}")]
    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        *("-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats", "-progress", "pipe:1"),
        # "-safe 0" lets the list set each picture's frame rate; the list and the pictures are all our own files.
        *("-f", "concat", "-safe", "0", "-i", str(concat), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"),
        # Convert each picture to YUV once, before the fps filter repeats it, not once per output frame.
        *("-vf", f"format=yuv420p,fps={fps}", "-c:v", "libx264", *X264_OPTIONS.split()),
        *("-g", str(GOP_SECONDS * fps), "-pix_fmt", "yuv420p", "-frames:v", str(timeline.frames)),
        *("-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2"),
        *("-map_metadata", "-1", *tags, "-metadata:s:a:0", f"language={_LANGUAGE_TAGS.get(language, 'und')}"),
        *("-movflags", "+faststart", str(output)),
    ]


def _metadata(script: Script, narration: Narration) -> dict[str, str]:
    credit = narration.credit.text
    return {
        "title": _tag(script.title),
        "artist": _tag(script.anchor_name),
        "date": script.aired_at.date().isoformat(),
        "comment": _tag(f"{credit} — {script.title}, {airtime(script.aired_at, script.language)}"),
        "copyright": _tag(f"Voice: {credit}"),
    }


def _tag(text: str) -> str:
    """A metadata value: one line, no control characters, not absurdly long."""
    return " ".join("".join(c for c in text if unicodedata.category(c) != "Cc").split())[:500]


def _encode(
    concat: Path,
    audio: Path,
    output: Path,
    metadata: dict[str, str],
    language: str,
    timeline: Timeline,
    report: Progress,
) -> None:
    command = ffmpeg_command(concat, audio, output, metadata, language, timeline)
    log_path = output.with_suffix(".ffmpeg.log")
    report("encode", 0, timeline.frames)
    with log_path.open("w+", encoding="utf-8", errors="replace") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, cwd=concat.parent
        )
        # A hung encoder must not hold the run until the Job's deadline: allow 5x slower than real time, plus slack.
        limit = 120 + 5 * timeline.frames / timeline.fps
        watchdog = threading.Timer(limit, process.kill)
        watchdog.start()
        try:
            for line in process.stdout or ():
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and value.isdigit():
                    done = min(int(value) * timeline.fps // 1_000_000, timeline.frames)
                    report("encode", done, timeline.frames)
            code = process.wait()
        finally:
            timed_out = not watchdog.is_alive() and process.returncode == -9
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        log.seek(0)
        errors = " ".join(log.read().split())[-600:]
    log_path.unlink(missing_ok=True)
    if timed_out:
        raise TransientError(f"ffmpeg did not finish encoding within {limit:.0f} s; it was stopped")
    if code != 0:
        raise TransientError(f"ffmpeg could not encode the video (exit code {code}): {errors or 'no message'}")
    report("encode", timeline.frames, timeline.frames)


def _verify(path: Path, timeline: Timeline, size: tuple[int, int]) -> None:
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


def _write_thumbnail(slide: Image.Image, path: Path) -> Path:
    scale = THUMBNAIL_LONG_SIDE / max(slide.size)
    image = slide
    if scale < 1:
        image = slide.resize((round(slide.width * scale), round(slide.height * scale)), Image.Resampling.LANCZOS)
    image.convert("RGB").save(path, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return path
