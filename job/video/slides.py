"""The broadcast's pictures: the intro card, a slide per story, the sign-off card, and the subtitle band burned
into them, drawn with Pillow; every string goes through a Painter, which never draws a glyph the font lacks.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from api.v1alpha1 import Video
from job.model import ConfigError, Script, Story
from job.shared.imaging import fit_picture
from job.video import fonts
from job.video.canvas import RGB, Block, Box, Canvas, Painter, Picture
from job.video.cast.portrait import Portrait
from job.video.cast.stage import CastStage
from job.video.layout import Layout, Palette, Side
from job.video.story_picture import PictureLayout, credit_line, draw_picture, picture_box

MAX_IMAGE_PIXELS = 50_000_000
"""Largest anchor or background image decoded (a 50-megapixel photo); larger ones are refused unread."""
THUMBNAIL_LONG_SIDE = 1280
THUMBNAIL_QUALITY = 88

_WEEKDAYS_JA = "月火水木金土日"
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS_EN: tuple[str, ...] = ("January", "February", "March", "April", "May", "June", "July", "August")
_MONTHS_EN += ("September", "October", "November", "December")


_VOICE_COLOURS: tuple[RGB, ...] = ((255, 228, 92), (127, 214, 255), (168, 240, 138))
"""The subtitles' colour for each presenter of a dialogue, in cast order: yellow, sky blue and green, which TV
subtitles use to tell speakers apart and which keep their contrast on the dark subtitle band."""


class Studio:
    """Draws the broadcast's pictures: intro card, a slide per story, sign-off card, and subtitle bands."""

    def __init__(
        self,
        script: Script,
        video: Video,
        font: fonts.Font,
        credit: str,
        *,
        base_dir: Path | None = None,
        pictures: Mapping[Story, Path] | None = None,
        cast: Sequence[tuple[str, Portrait, Side]] = (),
        music_credit: str = "",
    ) -> None:
        """`pictures`: the stories' own pictures (PNG files the image stage prepared), shown on their slides. `cast`:
        the members on screen, each with their portrait and side (none: nobody, or spec.video.anchorImage)."""
        self.script = script
        self.palette = Palette.of(video.theme)
        self.painter = Painter(font)
        self.credit = credit
        """The voices' credit, in the corner of every picture and large on the sign-off card."""
        self.music_credit = music_credit
        """The music bed's credit, on the sign-off card."""
        self.shortened_subtitles = 0
        sides: tuple[Side, ...] = tuple(side for _, _, side in cast) or (("right",) if video.anchor_image else ())
        self.layout = Layout(*video.size, sides)
        self._backdrop = self._draw_backdrop(video, base_dir)
        self.cast = (
            CastStage([(name, portrait) for name, portrait, _ in cast], sides, self.layout, self._backdrop)
            if cast
            else None
        )
        self._anchor = (
            _fitted(_load_image(video.anchor_image, base_dir, "spec.video.anchorImage"), self.layout.anchor)
            if video.anchor_image and not cast
            else None
        )
        self._pictures = dict(pictures or {})
        self._slides: dict[int, Picture] = {}
        # In a dialogue each presenter's subtitles have their own colour, as TV subtitles tell speakers apart.
        self._voices = (
            {name: _VOICE_COLOURS[n % len(_VOICE_COLOURS)] for n, name in enumerate(script.presenters)}
            if script.format == "dialogue"
            else {}
        )

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
        left, right = layout.column
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
        self._centred(canvas, blocks, left, right, layout.header[3], self._cards_bottom(layout.lower_third[1]))
        self._band(canvas, "キャスター" if ja else "ANCHOR", self.script.anchor_name)
        self._corner_credit(canvas)
        return canvas.picture()

    def story(self, story: Story, number: int, count: int) -> Picture:
        """Header, headline card (title, source and date, summary) and the story's picture when it has one, lower
        third with the source."""
        canvas = self._canvas()
        self._header(canvas)
        self._place_anchor(canvas)
        self._headline_card(canvas, story, self._picture(story))
        self._band(canvas, "ニュース" if self.script.language == "ja" else "NEWS", story.source, f"{number}/{count}")
        self._corner_credit(canvas)
        return canvas.picture()

    def outro(self) -> Picture:
        """The sign-off, and the voice credit large: VOICEVOX's terms require the voice to be credited."""
        canvas = self._canvas()
        layout, palette, ja = self.layout, self.palette, self.script.language == "ja"
        left, right = layout.column
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
        if self.music_credit:
            music = self.painter.lines(self.music_credit, px(36), width, 2)
            blocks += [
                Block(("音楽" if ja else "Music",), px(28), palette.muted, space=px(24)),
                Block(tuple(music), px(36), palette.text, space=px(8), leading=1.3),
            ]
        self._place_anchor(canvas)
        self._centred(canvas, blocks, left, right, layout.header[3], self._cards_bottom(layout.subtitle[1]))
        self._corner_credit(canvas)
        return canvas.picture()

    def with_subtitle(self, slide: Picture, sentence: str, speaker: str = "") -> Picture:
        """`slide` with `sentence` in a semi-transparent band at the bottom, as wide as the text needs; in a dialogue,
        in the colour of its `speaker`."""
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
        block = Block(tuple(lines), size, self._voices.get(speaker, palette.text), leading=1.38)
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
        x = float(left)
        if title:  # a title the font cannot draw at all leaves no empty tab behind
            title_width = self.painter.measure(size, True)(title[0])
            canvas.draw.rounded_rectangle(
                (left, top, left + title_width + 2 * pad, bottom), radius=layout.px(8), fill=palette.accent
            )
            canvas.text((left + pad, (top + bottom) / 2), title[0], size, palette.text, bold=True, anchor="lm")
            x += title_width + 2 * pad + layout.px(20)
        date = airtime(self.script.aired_at, self.script.language)
        date_lines = self.painter.lines(date, size, max(0, right - credit_room - x), 1)
        if date_lines and not date_lines[0].endswith(self.painter.ellipsis):
            canvas.text((x, (top + bottom) / 2), date_lines[0], size, palette.muted, anchor="lm")
        else:  # no room beside the title (a vertical frame): under it
            canvas.text((left, bottom + layout.px(12)), date, layout.px(26), palette.muted)

    def _headline_card(self, canvas: Canvas, story: Story, picture: Image.Image | None) -> None:
        """The story's headline card and, when it has one, its picture beside or under it
        (job/video/story_picture.py)."""
        layout, palette = self.layout, self.palette
        room = layout.card
        if picture is None:
            blocks, height = self._card_blocks(story, room)
            left, top, right, bottom = room
            if layout.vertical:  # a tall frame has room to spare: the card floats in the middle of it
                top += (bottom - top - height) // 2
            self._draw_card(canvas, blocks, (left, top, right, top + height))
            return
        placement = PictureLayout(layout, picture.size)
        blocks, height = self._card_blocks(story, placement.card_room)
        card, box = placement.boxes(height)
        self._draw_card(canvas, blocks, card)
        source = story.source or urlsplit(story.image or story.link).hostname or ""
        credit = credit_line(self.script.language, source)
        draw_picture(canvas, picture, box, layout=layout, credit=credit, fill=palette.muted)

    def _card_blocks(self, story: Story, room: Box) -> tuple[list[Block], int]:
        """The story's headline, an accent rule, source and date, and as much of the summary as fits in `room`;
        and the card's height, which shrinks to its content."""
        layout, palette, px = self.layout, self.palette, self.layout.px
        left, top, right, bottom = room
        pad = self._card_pad
        width = right - left - 2 * pad
        head = px(64 if layout.vertical else 66)
        sizes = [(head, 3), (head, 4)] if layout.vertical else [(head, 3)]
        sizes += [(round(head * 0.86), 3), (round(head * 0.74), 4)]
        size, title, _ = self.painter.fit(story.title, sizes, width, bold=True, balanced=True)
        meta_parts = [self.painter.clean(story.source), self._published(story)]  # no " | " beside nothing
        meta = self.painter.lines(" | ".join(filter(None, meta_parts)), px(30), width, 1)
        blocks = [
            Block(tuple(title), size, palette.text, leading=1.3, bold=True),
            Block((), 0, palette.accent, space=px(16), rule=(px(120), px(6))),
            Block(tuple(meta), px(30), palette.muted, space=px(18), leading=1.5),
        ]
        body = px(36)
        lines = (bottom - top - 2 * pad - sum(b.height for b in blocks) - px(12)) // round(body * 1.5)
        if story.summary and lines > 0:
            summary = self.painter.lines(story.summary, body, width, min(lines, 10 if layout.vertical else 6))
            blocks.append(Block(tuple(summary), body, palette.text, space=px(12), leading=1.5))
        return blocks, min(bottom - top, 2 * pad + sum(b.height for b in blocks))

    @property
    def _card_pad(self) -> int:
        return self.layout.px(40)

    def _draw_card(self, canvas: Canvas, blocks: Sequence[Block], card: Box) -> None:
        """The card's translucent box with its accent edge, and its blocks inside."""
        px = self.layout.px
        left, top, _, bottom = card
        canvas.shade(card, self.palette.card, 230, px(18))
        canvas.draw.rectangle((left, top + px(18), left + px(8) - 1, bottom - px(18)), fill=self.palette.accent)
        canvas.stack(blocks, left + self._card_pad, top + self._card_pad)

    def _picture(self, story: Story) -> Image.Image | None:
        """The story's prepared picture fitted to its room, or None (none, or its file unreadable after all)."""
        path = self._pictures.get(story)
        if path is None:
            return None
        try:
            with Image.open(path, formats=("PNG",)) as image:
                loaded = image.convert("RGB")
        except (OSError, SyntaxError, ValueError):  # a file of our own: without it, the slide is drawn without it
            return None
        return fit_picture(loaded, picture_box(self.layout))

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

    def _cards_bottom(self, bottom: int) -> int:
        """Where the intro and sign-off cards' text must end: above the cast on a vertical frame (they stand under
        the headline's room), else `bottom`."""
        return self.layout.card[3] if self.layout.vertical and self.layout.with_cast else bottom

    def _corner_credit(self, canvas: Canvas) -> None:
        """The voice credit in the top-right corner of every picture, as VOICEVOX's terms require; a credit too long
        for the corner (three voices, reworded credits) is shortened there and shown whole on the sign-off card."""
        layout = self.layout
        _, top, right, bottom = layout.header
        line = self._corner_line()
        if line:
            canvas.text((right, (top + bottom) / 2), line, layout.px(24), self.palette.muted, anchor="rm")

    def _corner_line(self) -> str:
        lines = self.painter.lines(self.credit, self.layout.px(24), self._corner_room(), 1)
        return lines[0] if lines else ""

    def _corner_room(self) -> int:
        """How wide the corner credit may be: on a landscape frame what the header's title and date leave (so the
        date stays on the header's line), on a vertical one (where the date goes under the title) half the width."""
        layout = self.layout
        if layout.vertical:
            return round(0.55 * layout.width)
        size, pad = layout.px(28), layout.px(18)
        title = self.painter.lines(self.script.title, size, round(0.45 * layout.width), 1, bold=True)
        used = self.painter.measure(size, True)(title[0]) + 2 * pad + layout.px(20) if title else 0
        used += self.painter.measure(size, False)(airtime(self.script.aired_at, self.script.language)) + layout.px(32)
        left, _, right, _ = layout.header
        return max(round(0.25 * layout.width), right - left - round(used))

    def _credit_width(self) -> float:
        return self.painter.measure(self.layout.px(24), False)(self._corner_line())

    def _place_anchor(self, canvas: Canvas) -> None:
        if self.cast is not None:
            self.cast.draw(canvas.image)
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


def write_thumbnail(slide: Image.Image, path: Path) -> Path:
    scale = THUMBNAIL_LONG_SIDE / max(slide.size)
    image = slide
    if scale < 1:
        image = slide.resize((round(slide.width * scale), round(slide.height * scale)), Image.Resampling.LANCZOS)
    image.convert("RGB").save(path, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return path
