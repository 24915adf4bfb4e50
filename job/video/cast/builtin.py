"""anchor's own two characters, drawn by code: the cast a broadcast gets when it brings no portrait of its own.

Both are original designs of this project (under its licence), anime-style news presenters seen from the waist up,
facing the viewer: character 0 is warm (long dark-brown hair with a gold clip, a red blazer), character 1 is cool
(short silver-blue hair, round glasses, a navy jacket and tie).

Everything is drawn in units of a 600 x 1000 portrait at several times the asked size, then shrunk with LANCZOS,
which is what smooths the edges (Pillow's shapes have none). The eyes and the mouth are drawn only in their own
small patch, so that nine layers cost little more than one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from PIL import Image, ImageDraw

from job.video.cast.portrait import MOUTHS, Portrait

Point = tuple[float, float]
Colour = tuple[int, int, int, int]

WIDE, HIGH = 600, 1000
"""The portrait in drawing units; its aspect is the portrait's (0.6)."""
MIN_HEIGHT, MAX_HEIGHT = 64, 2160
CHARACTERS = 2

_EYES_BOX = (190.0, 280.0, 410.0, 385.0)
_MOUTH_BOX = (255.0, 390.0, 345.0, 450.0)
"""Where the eyes and the mouth are drawn, in units: their layers are transparent outside."""
_MOUTH = (300.0, 418.0)
_EYE_Y = 340.0
_EYE_X = 60.0
"""Each eye's centre is this far either side of the middle."""


def builtin_portrait(number: int, height: int) -> Portrait:
    """Built-in character `number % 2` as a portrait `height` pixels high (and 0.6 times as wide).

    Raises ValueError for a height outside MIN_HEIGHT..MAX_HEIGHT."""
    if not MIN_HEIGHT <= height <= MAX_HEIGHT:
        raise ValueError(f"a built-in portrait is {MIN_HEIGHT} to {MAX_HEIGHT} pixels high, not {height}")
    look = _LOOKS[number % CHARACTERS]
    frame = _Frame(height)
    return Portrait(
        base=frame.render(None, partial(_draw_base, look=look)),
        mouths={shape: frame.render(_MOUTH_BOX, partial(_draw_mouth, shape=shape)) for shape in MOUTHS},
        eyes={
            "open": frame.render(_EYES_BOX, partial(_draw_open_eyes, look=look)),
            "closed": frame.render(_EYES_BOX, partial(_draw_closed_eyes, look=look)),
        },
        source=f"built-in character {number % CHARACTERS}",
    )


# --- Drawing in units -----------------------------------------------------------------------------------------------


class _Pen:
    """Pillow's shapes in portrait units, on a supersampled canvas or on a patch of one."""

    def __init__(self, image: Image.Image, scale: float, origin: Point) -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.scale = scale
        self.origin = origin

    def at(self, points: Sequence[Point]) -> list[Point]:
        ox, oy = self.origin
        return [(ox + x * self.scale, oy + y * self.scale) for x, y in points]

    def width(self, units: float) -> int:
        return max(1, round(units * self.scale))

    def shape(self, points: Sequence[Point], fill: Colour | None, line: Colour | None = None, width: float = 0) -> None:
        self.draw.polygon(self.at(points), fill=fill, outline=line, width=self.width(width) if line else 0)

    def oval(
        self, centre: Point, rx: float, ry: float, fill: Colour | None, line: Colour | None = None, width: float = 0
    ) -> None:
        (left, top), (right, bottom) = self.at([(centre[0] - rx, centre[1] - ry), (centre[0] + rx, centre[1] + ry)])
        self.draw.ellipse((left, top, right, bottom), fill=fill, outline=line, width=self.width(width) if line else 0)

    def stroke(self, points: Sequence[Point], colour: Colour, width: float) -> None:
        self.draw.line(self.at(points), fill=colour, width=self.width(width), joint="curve")

    def translucent(self, paint: Callable[[_Pen], None]) -> None:
        """What `paint` draws, blended over what is there (Pillow replaces the pixels of an RGBA image instead)."""
        over = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        paint(_Pen(over, self.scale, self.origin))
        self.image.alpha_composite(over)

    def clipped(self, clip: Sequence[Point], paint: Callable[[_Pen], None]) -> None:
        """What `paint` draws, kept only inside the shape `clip`."""
        inside = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        paint(_Pen(inside, self.scale, self.origin))
        mask = Image.new("L", self.image.size, 0)
        ImageDraw.Draw(mask).polygon(self.at(clip), fill=255)
        self.image.alpha_composite(Image.composite(inside, Image.new("RGBA", inside.size, (0, 0, 0, 0)), mask))


class _Frame:
    """Where the units land for one portrait height: the supersampled canvas, and a layer per drawing."""

    def __init__(self, height: int) -> None:
        self.height = height
        self.width = round(height * WIDE / HIGH)
        self.supersample = 4 if height <= 540 else 3  # enough for smooth edges; more costs time at large sizes
        self.pixels_per_unit = height / HIGH

    def render(self, box: tuple[float, float, float, float] | None, paint: Callable[[_Pen], None]) -> Image.Image:
        """A transparent layer of the portrait's size with what `paint` draws, drawn only inside `box` (units)."""
        unit, shift = self.pixels_per_unit, (self.width - WIDE * self.pixels_per_unit) / 2
        if box is None:
            left, top, right, bottom = 0, 0, self.width, self.height
        else:  # the box grown to whole pixels, so that the patch lands exactly where it was drawn
            left, top = int(shift + box[0] * unit), int(box[1] * unit)
            right, bottom = -int(-(shift + box[2] * unit)), -int(-(box[3] * unit))
        s = self.supersample
        patch = Image.new("RGBA", ((right - left) * s, (bottom - top) * s), (0, 0, 0, 0))
        paint(_Pen(patch, unit * s, ((shift - left) * s, -top * s)))
        shrunk = patch.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
        if box is None:
            return shrunk
        layer = Image.new("RGBA", (self.width, self.height), (0, 0, 0, 0))
        layer.paste(shrunk, (left, top))
        return layer


def _curve(start: Point, *segments: tuple[Point, Point], steps: int = 10) -> list[Point]:
    """A path from `start` through quadratic Bézier segments, each (control, end)."""
    points = [start]
    for (cx, cy), (ex, ey) in segments:
        sx, sy = points[-1]
        for i in range(1, steps + 1):
            t = i / steps
            a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
            points.append((a * sx + b * cx + c * ex, a * sy + b * cy + c * ey))
    return points


def _mirrored(points: Sequence[Point]) -> list[Point]:
    """The same points reflected about the portrait's middle, in reverse order (to close a symmetric shape)."""
    return [(WIDE - x, y) for x, y in reversed(points)]


def _flip(points: Sequence[Point]) -> list[Point]:
    """The same points reflected about the portrait's middle, in the same order."""
    return [(WIDE - x, y) for x, y in points]


def _rgb(hex_colour: str, alpha: int = 255) -> Colour:
    value = int(hex_colour.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255, alpha


_WHITE = _rgb("#ffffff")


# --- The two characters ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    """What tells the two characters apart."""

    skin: Colour
    skin_shade: Colour
    blush: Colour
    line: Colour
    """Outlines of face, body and clothes."""
    hair: Colour
    hair_shade: Colour
    hair_light: Colour
    hair_line: Colour
    iris: Colour
    iris_dark: Colour
    iris_light: Colour
    lash: Colour
    jacket: Colour
    jacket_shade: Colour
    shirt: Colour
    accent: Colour
    """The hair clip and the necklace, or the tie."""
    accent_shade: Colour
    buttons: Colour
    long_hair: bool
    """Long hair with a clip, or short hair with a tuft standing up."""
    glasses: bool
    tie: bool
    """A shirt and tie, or a blouse and a necklace."""


_LOOKS = (
    _Look(
        skin=_rgb("#ffe6d6"),
        skin_shade=_rgb("#f4c4ae"),
        blush=_rgb("#ff8f8f", 70),
        line=_rgb("#6b3a2e"),
        hair=_rgb("#5a3426"),
        hair_shade=_rgb("#3d2219"),
        hair_light=_rgb("#8a5a44"),
        hair_line=_rgb("#2a1610"),
        iris=_rgb("#a8552e"),
        iris_dark=_rgb("#5e2a16"),
        iris_light=_rgb("#e8a060"),
        lash=_rgb("#2e1a14"),
        jacket=_rgb("#c8372d"),
        jacket_shade=_rgb("#9c2820"),
        shirt=_rgb("#fff8ec"),
        accent=_rgb("#f4c542"),
        accent_shade=_rgb("#c9962a"),
        buttons=_rgb("#f4c542"),
        long_hair=True,
        glasses=False,
        tie=False,
    ),
    _Look(
        skin=_rgb("#fde8dc"),
        skin_shade=_rgb("#eec6b4"),
        blush=_rgb("#ff9a9a", 55),
        line=_rgb("#4a3a3e"),
        hair=_rgb("#a9bedc"),
        hair_shade=_rgb("#7f95bb"),
        hair_light=_rgb("#dce8f7"),
        hair_line=_rgb("#4a5a7c"),
        iris=_rgb("#3c82c4"),
        iris_dark=_rgb("#1c3f6e"),
        iris_light=_rgb("#8fd0f0"),
        lash=_rgb("#262c3c"),
        jacket=_rgb("#283e6e"),
        jacket_shade=_rgb("#1b2b50"),
        shirt=_rgb("#f6f8fc"),
        accent=_rgb("#5ab0dc"),
        accent_shade=_rgb("#2f7fae"),
        buttons=_rgb("#1b2b50"),
        long_hair=False,
        glasses=True,
        tie=True,
    ),
)


# --- The base: everything but the eyes and the mouth ----------------------------------------------------------------


def _draw_base(pen: _Pen, look: _Look) -> None:
    _draw_back_hair(pen, look)
    _draw_body(pen, look)
    _draw_head(pen, look)
    if look.long_hair:
        _draw_long_hair(pen, look)
    else:
        _draw_short_hair(pen, look)
    _draw_brows(pen, look)
    if look.glasses:
        _draw_glasses(pen, look)
    pen.translucent(partial(_draw_glow, look=look))


def _draw_back_hair(pen: _Pen, look: _Look) -> None:
    if look.long_hair:  # falls behind the shoulders; the body hides all but what frames the neck
        left = _curve((300, 118), ((190, 112), (162, 220)), ((140, 330), (132, 470)), ((122, 620), (150, 700)))
    else:  # a short nape, hardly seen
        left = _curve((300, 130), ((172, 130), (166, 280)), ((170, 380), (230, 430)))
    pen.shape([*left, *_mirrored(left)], look.hair_shade, look.hair_line, 3)


def _draw_body(pen: _Pen, look: _Look) -> None:
    # The neck, with the chin's shadow on it (the face, drawn later, covers its top).
    neck = _curve((270, 400), ((271, 480), (262, 540)))
    pen.shape([*neck, *_mirrored(neck)], look.skin, look.line, 2.5)
    pen.shape(_curve((270, 440), ((300, 505), (330, 440))), look.skin_shade)

    # Sloping shoulders, the arms hanging at the sides, and the jacket over all of it.
    side = _curve((266, 522), ((190, 540), (120, 568)), ((72, 590), (66, 660)), ((58, 820), (56, 1010)))
    pen.shape([*side, *_mirrored(side)], look.jacket, look.line, 3)
    for sign in (-1, 1):  # the arm against the body: a crease, shaded on the arm's side
        seam = _curve((300 + sign * 180, 650), ((300 + sign * 170, 820), (300 + sign * 176, 1010)))
        shade = _curve((300 + sign * 188, 690), ((300 + sign * 196, 840), (300 + sign * 200, 1010)))
        pen.shape([*seam, *reversed(shade)], look.jacket_shade)
        pen.stroke(seam, look.line, 2.5)
    # The shirt in the jacket's V.
    pen.shape([(258, 515), (300, 790), (342, 515)], look.shirt, look.line, 2.5)
    if look.tie:
        _draw_shirt_and_tie(pen, look)
    else:
        _draw_blouse(pen, look)
    # The lapels, each a folded strip along the V, with a notch where the collar meets it.
    lapel = [(264, 520), (300, 792), (300, 808), (286, 806), (206, 626), (232, 596), (216, 574), (240, 542)]
    for points in (lapel, _flip(lapel)):
        pen.shape(points, look.jacket_shade, look.line, 2.5)
    for y in (852, 940):
        pen.oval((300, y), 8, 8, look.buttons, look.line, 2)


def _draw_shirt_and_tie(pen: _Pen, look: _Look) -> None:
    blade = [(290, 572), (310, 572), (322, 760), (300, 800), (278, 760)]
    pen.shape(blade, look.accent, look.line, 2.5)
    for y in (620, 675, 730):  # diagonal stripes
        pen.stroke([(284, y + 12), (318, y - 12)], look.accent_shade, 6)
    pen.shape([(285, 544), (315, 544), (309, 576), (291, 576)], look.accent_shade, look.line, 2.5)  # the knot
    collar = [(262, 512), (294, 546), (278, 592), (246, 538)]
    for points in (collar, _flip(collar)):
        pen.shape(points, look.shirt, look.line, 2.5)


def _draw_blouse(pen: _Pen, look: _Look) -> None:
    # A round neckline, and a fine gold necklace on the skin above it.
    neckline = _curve((262, 514), ((300, 620), (338, 514)))
    pen.shape(neckline, look.skin, look.line, 2.5)
    pen.stroke(_curve((270, 518), ((300, 590), (330, 518))), look.accent_shade, 2.5)
    pen.shape([(300, 548), (308, 558), (300, 570), (292, 558)], look.accent, look.accent_shade, 2)


def _draw_head(pen: _Pen, look: _Look) -> None:
    if not look.long_hair:  # the ears show under short hair
        for sign in (-1, 1):
            pen.oval((300 + sign * 128, 352), 15, 24, look.skin, look.line, 2.5)
            pen.stroke(
                _curve((300 + sign * 132, 342), ((300 + sign * 136, 354), (300 + sign * 130, 364))), look.skin_shade, 3
            )
    jaw = _curve((172, 250), ((170, 330), (182, 372)), ((216, 446), (300, 462)))
    pen.oval((300, 262), 128, 128, look.skin)
    pen.shape([*jaw, *_mirrored(jaw)], look.skin)
    pen.stroke([*jaw[8:], *_mirrored(jaw)[: len(jaw) - 8]], look.line, 2.5)
    pen.stroke([(302, 378), (297, 390), (303, 392)], look.skin_shade, 3)  # the nose, a small shaded tick


def _draw_glow(pen: _Pen, look: _Look) -> None:
    """What is drawn see-through: the cheeks' blush, and the glint on glasses."""
    for sign in (-1, 1):
        pen.oval((300 + sign * 72, 392), 26, 10, look.blush)
        for dx in (-10, 0, 10):  # three fine strokes of a blush, a touch drawn in
            x = 300 + sign * 72 + dx
            pen.stroke([(x + 3, 386), (x - 3, 398)], (*look.blush[:3], 110), 1.6)
        if look.glasses:
            cx = 300 + sign * _EYE_X
            glint = _curve((cx + 16, _EYE_Y - 38), ((cx + 36, _EYE_Y - 30), (cx + 40, _EYE_Y - 10)))
            pen.stroke(glint, (255, 255, 255, 170), 3.5)


def _sheen(pen: _Pen, look: _Look, top: float) -> None:
    """The ring of light across the crown: a band with a ragged lower edge."""
    arc = _curve((204, top + 40), ((300, top - 30), (396, top + 40)), steps=12)
    ragged = [(x, y + (16 if i % 2 else 6)) for i, (x, y) in enumerate(arc)]
    pen.shape([*arc, *reversed(ragged)], look.hair_light)


def _draw_long_hair(pen: _Pen, look: _Look) -> None:
    # Side locks framing the face, falling in front of the shoulders.
    lock = _curve(
        (208, 220),
        ((150, 250), (150, 420)),
        ((146, 570), (168, 700)),
        ((190, 600), (202, 470)),
        ((212, 340), (220, 250)),
    )
    for points in (lock, _flip(lock)):
        pen.shape(points, look.hair, look.hair_line, 3)
        pen.stroke(_curve(points[8], (points[14], points[22])), look.hair_shade, 3)  # a strand in the lock
    # The crown, and a fringe swept to the viewer's left from a parting on the right.
    crown = _curve(
        (160, 310),
        ((154, 200), (200, 150)),
        ((246, 112), (300, 112)),
        ((370, 112), (410, 150)),
        ((446, 196), (442, 310)),
    )
    fringe = _curve(
        (442, 310),
        ((424, 260), (390, 196)),
        ((388, 250), (370, 300)),
        ((352, 236), (332, 206)),
        ((328, 262), (302, 304)),
        ((282, 236), (262, 214)),
        ((254, 266), (226, 308)),
        ((214, 252), (204, 226)),
        ((184, 272), (182, 338)),
        ((166, 318), (160, 310)),
    )
    pen.shape([*crown, *fringe[1:]], look.hair, look.hair_line, 3)
    _sheen(pen, look, 170)
    # The clip: two gold bars above the parting.
    for dy in (0, 20):
        pen.shape(
            [(382, 198 + dy), (428, 172 + dy), (434, 184 + dy), (388, 210 + dy)], look.accent, look.accent_shade, 2
        )


def _draw_short_hair(pen: _Pen, look: _Look) -> None:
    sideburn = _curve((178, 250), ((166, 330), (184, 392)), ((196, 350), (208, 300)))
    for points in (sideburn, _flip(sideburn)):
        pen.shape(points, look.hair, look.hair_line, 3)
    # A crown close to the head, and a fringe swept to the viewer's right from a parting on the left.
    crown = _curve(
        (166, 316),
        ((158, 196), (204, 152)),
        ((248, 118), (300, 118)),
        ((364, 118), (404, 156)),
        ((444, 198), (434, 316)),
    )
    fringe = _curve(
        (434, 316),
        ((424, 280), (418, 250)),
        ((404, 280), (392, 298)),
        ((388, 262), (368, 234)),
        ((360, 270), (336, 292)),
        ((326, 252), (300, 230)),
        ((290, 262), (262, 282)),
        ((250, 240), (232, 214)),
        ((218, 262), (196, 284)),
        ((186, 262), (182, 236)),
        ((170, 270), (166, 316)),
    )
    pen.shape([*crown, *fringe[1:]], look.hair, look.hair_line, 3)
    _sheen(pen, look, 176)
    # A single lock standing up from the crown.
    tuft = _curve((290, 122), ((300, 70), (344, 60)), ((316, 84), (312, 120)))
    pen.shape(tuft, look.hair, look.hair_line, 3)


def _draw_brows(pen: _Pen, look: _Look) -> None:
    brow = _curve((214, 290), ((238, 276), (266, 286)))
    for points in (brow, _flip(brow)):
        pen.stroke(points, look.hair_line, 4)


def _draw_glasses(pen: _Pen, look: _Look) -> None:
    frame = _rgb("#2c3446")
    for sign in (-1, 1):
        pen.oval((300 + sign * _EYE_X, _EYE_Y), 47, 45, None, frame, 4)
        pen.stroke([(300 + sign * 107, _EYE_Y - 6), (300 + sign * 126, _EYE_Y - 12)], frame, 4)  # the arm
    pen.stroke(_curve((287, _EYE_Y - 4), ((300, _EYE_Y - 12), (313, _EYE_Y - 4))), frame, 4)  # the bridge


# --- Eyes and mouths ------------------------------------------------------------------------------------------------


def _eye_lids(sign: int) -> tuple[list[Point], list[Point]]:
    """The upper and the lower lid of one eye (sign -1 the viewer's left, 1 the right), outer corner to inner."""
    cx = 300 + sign * _EYE_X
    outer, inner = cx + sign * 30, cx - sign * 26
    upper = _curve((outer, _EYE_Y - 8), ((cx + sign * 6, _EYE_Y - 40), (inner, _EYE_Y - 10)))
    lower = _curve((outer, _EYE_Y - 8), ((cx + sign * 4, _EYE_Y + 44), (inner, _EYE_Y - 10)))
    return upper, lower


def _draw_open_eyes(pen: _Pen, look: _Look) -> None:
    for sign in (-1, 1):
        cx = 300 + sign * _EYE_X
        upper, lower = _eye_lids(sign)
        white = [*upper, *reversed(lower)]
        pen.shape(white, _WHITE)

        pen.clipped(white, partial(_draw_iris, look=look, cx=cx))  # the upper lid hides the iris's top
        # The lashes: a thick line along the upper lid that flicks out at the outer corner.
        pen.stroke(upper, look.lash, 6)
        outer = upper[0]
        pen.shape([outer, (outer[0] + sign * 9, outer[1] - 6), (outer[0] - sign * 6, outer[1] - 10)], look.lash)
        pen.stroke(lower[4:-3], look.line, 1.6)


def _draw_iris(pen: _Pen, look: _Look, cx: float) -> None:
    """Dark rim, colour lighter towards the bottom, pupil, and two catch-lights (the light is above, to the left)."""
    pen.oval((cx, _EYE_Y + 2), 20, 26, look.iris_dark)
    pen.oval((cx, _EYE_Y + 4), 17, 22, look.iris)
    pen.oval((cx, _EYE_Y + 14), 13, 10, look.iris_light)
    pen.oval((cx, _EYE_Y + 2), 9, 12, look.iris_dark)
    pen.oval((cx - 8, _EYE_Y - 8), 7, 7, _WHITE)
    pen.oval((cx + 8, _EYE_Y + 12), 3.5, 3.5, _WHITE)


def _draw_closed_eyes(pen: _Pen, look: _Look) -> None:
    for sign in (-1, 1):
        cx = 300 + sign * _EYE_X
        lid = _curve((cx + sign * 30, _EYE_Y + 2), ((cx, _EYE_Y + 18), (cx - sign * 26, _EYE_Y + 2)))
        pen.stroke(lid, look.lash, 5)
        end = lid[0]
        pen.stroke([end, (end[0] + sign * 8, end[1] - 6)], look.lash, 4)


_MOUTH_INSIDE, _TONGUE, _TEETH, _MOUTH_LINE = _rgb("#7a2830"), _rgb("#e8727c"), _rgb("#ffffff"), _rgb("#5a1f26")


@dataclass(frozen=True)
class _OpenMouth:
    """How one vowel opens the mouth, in units from the mouth's centre."""

    outline: tuple[Point, ...]
    tongue: float | None
    """How far below the centre the tongue shows, if it does."""
    teeth: float | None
    """Where the upper teeth end, if they show."""


def _lens(half_width: float, top: float, bottom: float, corner: float) -> tuple[Point, ...]:
    """An open mouth: corners at `corner`, a gently curved upper lip at `top` and a rounder lower one at `bottom`."""
    lower = _curve((-half_width, corner), ((-half_width * 0.85, bottom), (0, bottom)))
    upper = _curve((half_width, corner), ((0, 2 * top - corner), (-half_width, corner)))
    return (*lower, *_mirrored_about(lower, 0), *upper[1:-1])


def _oval(rx: float, ry: float, dy: float, steps: int = 32) -> tuple[Point, ...]:
    return tuple(
        (rx * math.cos(2 * math.pi * i / steps), dy + ry * math.sin(2 * math.pi * i / steps)) for i in range(steps)
    )


def _mirrored_about(points: Sequence[Point], x: float) -> list[Point]:
    return [(2 * x - px, py) for px, py in reversed(points)]


_OPEN_MOUTHS = {
    "a": _OpenMouth(_lens(28, -10, 28, -10), tongue=22, teeth=-6),  # wide and tall, the tongue showing
    "i": _OpenMouth(_lens(31, -5, 8, -2), tongue=None, teeth=1),  # wide and thin, mostly teeth
    "u": _OpenMouth(_oval(11, 9, 2), tongue=None, teeth=None),  # small and pursed
    "e": _OpenMouth(_lens(29, -8, 17, -6), tongue=14, teeth=-4),  # wide, half open
    "o": _OpenMouth(_oval(17, 19, 4), tongue=18, teeth=None),  # round
}


def _draw_mouth(pen: _Pen, shape: str) -> None:
    x, y = _MOUTH
    if shape == "closed":  # a short line, smiling a little
        pen.stroke(_curve((x - 20, y - 1), ((x, y + 6), (x + 20, y - 1))), _MOUTH_LINE, 3.5)
        return
    mouth = _OPEN_MOUTHS[shape]
    outline = [(x + dx, y + dy) for dx, dy in mouth.outline]

    def inside(p: _Pen) -> None:
        p.shape(outline, _MOUTH_INSIDE)
        if mouth.tongue is not None:
            p.oval((x, y + mouth.tongue), 16, 10, _TONGUE)
        if mouth.teeth is not None:
            p.shape([(x - 40, y - 30), (x + 40, y - 30), (x + 40, y + mouth.teeth), (x - 40, y + mouth.teeth)], _TEETH)

    pen.clipped(outline, inside)
    pen.shape(outline, None, _MOUTH_LINE, 2.5)
