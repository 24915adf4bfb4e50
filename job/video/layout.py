"""Where things go on a frame (`Layout`) and in which colours (`Palette`): the geometry and theme every picture of
the broadcast is drawn to, shared by the slides and the story picture's placement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from api.v1alpha1 import Theme
from job.video.canvas import RGB, Box


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


Side = Literal["left", "right"]


@dataclass(frozen=True)
class Layout:
    """Where things go on a frame. Sizes scale with the short side (`unit` = 1 at 1080 px), positions with the
    frame; a vertical frame stacks what a landscape one puts side by side.

    `sides` are where the cast stands (job/video/cast/): on a landscape frame, a column at the right (where the
    anchor has always stood) and/or one at the left, the headline card between them; on a vertical frame, the band
    under the headline, shared side by side. With nobody on screen the card takes the whole width."""

    width: int
    height: int
    sides: tuple[Side, ...] = ()

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
    def with_cast(self) -> bool:
        return bool(self.sides)

    @property
    def anchor(self) -> Box:
        """Where the anchor's picture stands: right of the headline, or under it on a vertical frame."""
        return self.cast_box("right")

    def cast_box(self, side: Side) -> Box:
        """Where the members on `side` stand, feet on the box's bottom edge. On a landscape frame the right column
        reaches down to the lower third's bottom (the lower third ends short of it); the left column stops above
        the lower third. With both sides taken each column is narrower, leaving the card the middle."""
        if self.vertical:
            left, top, right, bottom = (
                self.margin,
                round(0.49 * self.height),
                self.width - self.margin,
                self.lower_third[1],
            )
            if len(set(self.sides)) == 2:
                middle = (left + right) // 2
                return (left, top, middle, bottom) if side == "left" else (middle, top, right, bottom)
            return left, top, right, bottom
        share = 0.21 if len(set(self.sides)) == 2 else 0.30
        top = round(0.115 * self.height)
        if side == "right":
            return round((1 - share) * self.width), top, self.width - self.margin, self.lower_third[3]
        return self.margin, top, round(share * self.width), self.lower_third[1] - self.px(12)

    @property
    def card(self) -> Box:
        """The room for the headline card (which shrinks to its content)."""
        if self.vertical:
            bottom = round(0.47 * self.height) if self.with_cast else self.lower_third[1] - self.px(48)
            return self.margin, round(0.085 * self.height), self.width - self.margin, bottom
        left, right = self.column
        return left, round(0.115 * self.height), right, round(0.655 * self.height)

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

    @property
    def column(self) -> tuple[int, int]:
        """Left and right edges of what is between the cast's columns: the headline card's room, and the centred
        column of the intro and outro cards."""
        if self.vertical:
            return self.margin, self.width - self.margin
        left = self.cast_box("left")[2] + self.px(32) if "left" in self.sides else self.margin
        right = self.cast_box("right")[0] - self.px(32) if "right" in self.sides else self.width - self.margin
        return left, right
