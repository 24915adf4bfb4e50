"""Drawing primitives for the slides: a Painter that cleans, measures and wraps text (never drawing a glyph the
font lacks), Blocks of lines stacked on a Canvas, and the Picture a canvas leaves behind with every string it drew.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from job.video import fonts
from job.video.wrap import wrap, wrap_all

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]


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
            if not balanced or len(lines) <= 1 or measure(lines[-1]) >= 0.25 * width:
                return size, lines, False
            fitting = fitting or (size, lines)
        if fitting is not None:
            return *fitting, False
        size, max_lines = sizes[-1]
        return size, wrap(cleaned, width, self.measure(size, bold), max_lines, self.ellipsis), True


@dataclass(frozen=True)
class Block:
    """A unit of a stacked layout: lines of one size and colour, or (with no lines) an accent rule.

    A block with neither (text whose every character the font lacks) is empty: it takes no room, not even its
    space above, and draws nothing.
    """

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
    def empty(self) -> bool:
        return not self.lines and min(self.rule) <= 0

    @property
    def height(self) -> int:
        if self.empty:
            return 0
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
            if block.empty:
                continue
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
