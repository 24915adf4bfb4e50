"""Where things go on a frame (`Layout`) and in which colours (`Palette`): the geometry and theme every picture of
the broadcast is drawn to, shared by the slides and the story picture's placement.
"""

from __future__ import annotations

from dataclasses import dataclass

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
