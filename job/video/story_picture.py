"""A story's own picture on its slide: how big it may be, where it goes, and how it is drawn.

On a landscape frame the picture stands at the right end of the headline card's room and the card narrows to
make way (the band under the card is too shallow there for a picture); on a vertical frame the card gives up
height and the picture fills the band between it and the lower third, the two centred together as the card alone
is. A credit line naming the picture's source sits under it. A slide without a picture is drawn as before.

    landscape                                  vertical
    ┌ header ──────────────────────────┐       ┌ header ───────────┐
    │ ┌ headline card ─┐ ┌ picture ──┐ │       │ ┌ headline card ┐ │
    │ └────────────────┘ └───────────┘ │       │ └───────────────┘ │
    │                    credit        │       │ ┌ picture ──────┐ │
    ├ lower third ──────┐              │       │ └───────────────┘ │
    │ subtitles                        │       │ credit            │
    └──────────────────────────────────┘       ├ lower third ──────┤
                                               │ subtitles         │
                                               └───────────────────┘
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from job.model import PictureRoom
from job.video.canvas import RGB, Box, Canvas
from job.video.layout import Layout, Palette, Side

if TYPE_CHECKING:
    from api.v1alpha1 import Video

LANDSCAPE_SHARE = 0.40
"""Of the card room's width, the most a landscape slide's picture takes."""
LANDSCAPE_SHARE_BETWEEN_CAST = 0.45
"""The same between members standing left and right, where the card room is narrower."""
VERTICAL_SHARE = 0.45
"""Of the card room's height, the most a vertical slide's picture takes (a 16:9 picture fills its width)."""
VERTICAL_SHARE_WITH_ANCHOR = 0.36
"""The same beside the cast, which takes the lower half of a vertical frame."""
MAX_UPSCALE = 2.0
"""A small picture is enlarged at most this much: beyond it, it looks blurred."""
_SUPERSAMPLE = 4
"""The rounded corners' mask is drawn this much larger and shrunk, so that its edge is smooth."""


def picture_box(layout: Layout) -> tuple[int, int]:
    """The most room a story's picture may take on a slide of `layout`: what it is prepared (scaled) to fit."""
    left, top, right, bottom = layout.card
    if layout.vertical:
        share = VERTICAL_SHARE_WITH_ANCHOR if layout.with_cast else VERTICAL_SHARE
        return right - left, round(share * (bottom - top))
    share = LANDSCAPE_SHARE_BETWEEN_CAST if len(set(layout.sides)) == 2 else LANDSCAPE_SHARE
    return round(share * (right - left)), bottom - top - credit_height(layout)


def picture_room(video: Video, sides: tuple[Side, ...] = ()) -> PictureRoom:
    """The room a story's picture takes on this broadcast's slides (the cast standing on `sides`), for the news stage
    to prepare it to: the most it may take, the card colour its transparency is flattened onto, and how much a small
    one may be enlarged."""
    box = picture_box(Layout(*video.size, sides))
    return PictureRoom(size=box, matte=Palette.of(video.theme).card, max_scale=MAX_UPSCALE)


def credit_height(layout: Layout) -> int:
    """The strip under a picture that its credit line takes."""
    return layout.px(10) + round(credit_size(layout) * 1.5)


def credit_size(layout: Layout) -> int:
    return layout.px(22)


def credit_line(language: str, source: str) -> str:
    """What the credit under a picture says: its source, the way a newscast credits a photo."""
    return f"写真: {source}" if language == "ja" else f"Image: {source}"


@dataclass(frozen=True)
class PictureLayout:
    """Where a story slide's headline card and picture go, for a picture of `size` (fitted to `picture_box`)."""

    layout: Layout
    size: tuple[int, int]

    @property
    def gap(self) -> int:
        return self.layout.px(28 if self.layout.vertical else 32)

    @property
    def card_room(self) -> Box:
        """The room left to the headline card, which shrinks to its content within it."""
        left, top, right, bottom = self.layout.card
        width, height = self.size
        if self.layout.vertical:
            return left, top, right, bottom - height - self.gap - credit_height(self.layout)
        return left, top, right - width - self.gap, bottom

    def boxes(self, card_height: int) -> tuple[Box, Box]:
        """The headline card's box (for a card `card_height` tall) and the picture's."""
        left, top, right, bottom = self.layout.card
        width, height = self.size
        if not self.layout.vertical:  # side by side, tops aligned, the picture at the room's right edge
            return (left, top, right - width - self.gap, top + card_height), (right - width, top, right, top + height)
        group = card_height + self.gap + height + credit_height(self.layout)
        y = top + max(0, (bottom - top - group) // 2)  # together in the middle, as the card alone floats
        x = left + (right - left - width) // 2
        picture_top = y + card_height + self.gap
        return (left, y, right, y + card_height), (x, picture_top, x + width, picture_top + height)


def draw_picture(canvas: Canvas, image: Image.Image, box: Box, *, layout: Layout, credit: str, fill: RGB) -> None:
    """`image` at `box` with rounded corners like the headline card's, and `credit` in one line under it, cut to
    the picture's width."""
    mask = Image.new("L", (image.width * _SUPERSAMPLE, image.height * _SUPERSAMPLE), 0)
    radius = layout.px(18) * _SUPERSAMPLE
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, mask.width - 1, mask.height - 1), radius=radius, fill=255)
    canvas.image.paste(image, box[:2], mask.resize(image.size, Image.Resampling.LANCZOS))
    size = credit_size(layout)
    line = canvas.painter.lines(credit, size, box[2] - box[0], 1)
    if line:
        canvas.text((box[0], box[3] + layout.px(10) + round(size * 1.5) / 2), line[0], size, fill, anchor="lm")
