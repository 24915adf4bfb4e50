"""The cast on the frame: where each member stands, their idle picture drawn into every slide, and the small face
patches that change from frame to frame.

Only a face changes (mouth and eyes), so the slides carry each member at rest (eyes open, mouth closed) and the
encode lays one small opaque patch per member over its face in every frame: the patch is the backdrop with the
member in one state over it, cut to the box that holds every mouth and eye layer. A member's states are scaled and
cut once per run (at most 12: six mouths by two eyes), and the patches of all members sit side by side in one
`strip`, one raw RGB picture per frame that ffmpeg crops and overlays (job/video/encode.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from api.v1alpha1 import Video
from job.video.canvas import Box
from job.video.cast.portrait import EYES, MOUTHS, Portrait
from job.video.layout import Layout, Side

State = tuple[str, str]
"""A member's (mouth, eyes)."""
AT_REST: State = ("closed", "open")


def cast_sides(video: Video, positions: Sequence[Side | None]) -> tuple[Side, ...]:
    """Where the cast stands on the slides, for `positions` (spec.cast[].position of the members): where an
    anchorImage stands in their place (the right), nowhere without spec.video.showCast, else `sides_of`."""
    if video.anchor_image:
        return ("right",)
    return sides_of(positions) if video.show_cast and positions else ()


def sides_of(positions: Sequence[Side | None]) -> tuple[Side, ...]:
    """Where each member stands: as asked, else a lone member on the right (where the anchor has always stood) and
    a cast of more alternating left, right, left."""
    if len(positions) == 1:
        return (positions[0] or "right",)
    defaults: tuple[Side, ...] = ("left", "right", "left")
    return tuple(asked or defaults[n % 3] for n, asked in enumerate(positions))


@dataclass(frozen=True)
class Standing:
    """One member on the frame: their portrait scaled to their place, its top-left corner, and their face box
    (frame coordinates, even so that the encode's 4:2:0 chroma lines up)."""

    name: str
    portrait: Portrait
    origin: tuple[int, int]
    face: Box

    @property
    def face_size(self) -> tuple[int, int]:
        return self.face[2] - self.face[0], self.face[3] - self.face[1]


class CastStage:
    """The members on the frame (`cast`: names and portraits in cast order, `sides` where each stands)."""

    def __init__(
        self, cast: Sequence[tuple[str, Portrait]], sides: Sequence[Side], layout: Layout, backdrop: Image.Image
    ) -> None:
        self.layout = layout
        self._backdrop = backdrop.convert("RGB")
        self.members = tuple(self._stand(cast, sides))
        self._patches: dict[tuple[int, State], Image.Image] = {}
        self._strips: dict[tuple[State, ...], bytes] = {}

    def _stand(self, cast: Sequence[tuple[str, Portrait]], sides: Sequence[Side]) -> list[Standing]:
        standing = []
        for side in ("left", "right"):
            here = [(name, portrait) for (name, portrait), at in zip(cast, sides, strict=True) if at == side]
            if not here:
                continue
            left, top, right, bottom = self.layout.cast_box(side)
            slot = (right - left) / len(here)
            for number, (name, portrait) in enumerate(here):
                scale = min(slot / portrait.base.width, (bottom - top) / portrait.base.height)
                size = max(2, round(portrait.base.width * scale)), max(2, round(portrait.base.height * scale))
                fitted = _scaled(portrait, size)
                x = round(left + slot * number + (slot - size[0]) / 2)
                origin = x, bottom - size[1]
                standing.append(Standing(name, fitted, origin, self._face(fitted, origin)))
        order = [name for name, _ in cast]
        return sorted(standing, key=lambda member: order.index(member.name))

    def _face(self, portrait: Portrait, origin: tuple[int, int]) -> Box:
        """The even-aligned frame box around every mouth and eye layer's pixels, within the frame."""
        boxes = [layer.getchannel("A").getbbox() for layer in (*portrait.mouths.values(), *portrait.eyes.values())]
        found = [box for box in boxes if box]
        if not found:  # nothing ever changes: a token patch at the portrait's corner
            found = [(0, 0, 2, 2)]
        x, y = origin
        left = max(0, x + min(b[0] for b in found) - 2) // 2 * 2
        top = max(0, y + min(b[1] for b in found) - 2) // 2 * 2
        right = min(self.layout.width, -(-(x + max(b[2] for b in found) + 2) // 2) * 2)
        bottom = min(self.layout.height, -(-(y + max(b[3] for b in found) + 2) // 2) * 2)
        return left, top, max(right, left + 2), max(bottom, top + 2)

    def draw(self, image: Image.Image) -> None:
        """Everyone at rest, onto a slide being drawn (before its other parts, which never overlap the cast)."""
        for member in self.members:
            picture = member.portrait.state(*AT_REST)
            image.paste(picture, member.origin, picture)

    @property
    def strip_size(self) -> tuple[int, int]:
        """The size of the per-frame picture holding every member's face patch, side by side."""
        return sum(m.face_size[0] for m in self.members), max(m.face_size[1] for m in self.members)

    def strip_boxes(self) -> list[tuple[Box, tuple[int, int]]]:
        """Each member's patch in the strip (its box there) and where it goes on the frame."""
        placed, x = [], 0
        for member in self.members:
            width, height = member.face_size
            placed.append(((x, 0, x + width, height), member.face[:2]))
            x += width
        return placed

    def strip(self, states: Sequence[State]) -> bytes:
        """The raw RGB strip with each member in their state (in cast order), made once per combination."""
        key = tuple(states)
        if key not in self._strips:
            strip = Image.new("RGB", self.strip_size)
            for number, ((box, _), state) in enumerate(zip(self.strip_boxes(), key, strict=True)):
                strip.paste(self.patch(number, state), box[:2])
            self._strips[key] = strip.tobytes()
        return self._strips[key]

    def patch(self, number: int, state: State) -> Image.Image:
        """Member `number`'s face in `state` over the backdrop: exactly that part of a slide with them in it."""
        if (number, state) not in self._patches:
            member = self.members[number]
            left, top, right, bottom = member.face
            patch = self._backdrop.crop(member.face).convert("RGBA")
            x, y = member.origin
            patch.alpha_composite(member.portrait.state(*state).crop((left - x, top - y, right - x, bottom - y)))
            self._patches[(number, state)] = patch.convert("RGB")
        return self._patches[(number, state)]


def _scaled(portrait: Portrait, size: tuple[int, int]) -> Portrait:
    """Every layer at `size`, once: a state is then only layers laid over each other."""

    def scale(layer: Image.Image) -> Image.Image:
        return layer if layer.size == size else layer.resize(size, Image.Resampling.LANCZOS)

    return Portrait(
        base=scale(portrait.base),
        mouths={shape: scale(portrait.mouths[shape]) for shape in MOUTHS},
        eyes={state: scale(portrait.eyes[state]) for state in EYES},
        source=portrait.source,
    )
