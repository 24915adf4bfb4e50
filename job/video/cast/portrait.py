"""A portrait: a character's picture as layers that make its states, every layer the same size as the base.

A state is the base with one eyes layer and one mouth layer over it. Loaders (a folder of PNGs, a PSD, the built-in
characters) all give a `Portrait` with every state present: a missing mouth is filled from the nearest shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

MOUTHS = ("a", "i", "u", "e", "o", "closed")
"""Mouth shapes: the five vowels, and closed (ん, ッ, pauses, silence)."""
EYES = ("open", "closed")

NEAREST_MOUTH: Mapping[str, tuple[str, ...]] = {
    "a": ("o", "e", "i", "u", "closed"),
    "i": ("e", "u", "a", "o", "closed"),
    "u": ("o", "i", "e", "a", "closed"),
    "e": ("i", "a", "o", "u", "closed"),
    "o": ("u", "a", "e", "i", "closed"),
    "closed": ("u", "i", "e", "o", "a"),
}
"""For each mouth, the others in order of likeness: what stands in for a shape a portrait lacks."""

MAX_PORTRAIT_PIXELS = 16_000_000
"""Largest portrait canvas decoded (4000 x 4000); a larger one is refused unread."""


class PortraitError(Exception):
    """A portrait that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Portrait:
    """A character's layers, RGBA and all the same size: the base, a layer per mouth shape and per eyes state."""

    base: Image.Image
    mouths: Mapping[str, Image.Image]
    """Every shape of MOUTHS."""
    eyes: Mapping[str, Image.Image]
    """Every state of EYES."""
    source: str = "built-in"
    """Where it came from, for messages."""

    def state(self, mouth: str, eyes: str) -> Image.Image:
        """The base with these eyes and this mouth over it."""
        image = self.base.copy()
        image.alpha_composite(self.eyes[eyes])
        image.alpha_composite(self.mouths[mouth])
        return image


def complete_mouths(found: Mapping[str, Image.Image], source: str) -> dict[str, Image.Image]:
    """Every mouth shape, those missing from `found` taken from the nearest one it has.

    Raises PortraitError when it has none."""
    if not found:
        raise PortraitError(f"{source} has no mouth layer (one of {', '.join(MOUTHS)})")
    return {
        shape: found[shape] if shape in found else found[next(n for n in NEAREST_MOUTH[shape] if n in found)]
        for shape in MOUTHS
    }
