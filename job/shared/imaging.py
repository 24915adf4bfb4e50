"""Pictures fitted to a room, shared by the stage that prepares a story's picture (job/news/pictures.py) and the
one that draws pictures on slides (job/video/)."""

from __future__ import annotations

from PIL import Image


def fit_picture(image: Image.Image, box: tuple[int, int], *, max_scale: float = 1.0) -> Image.Image:
    """`image` scaled to fit inside `box` with its proportions kept, enlarged at most `max_scale` times."""
    scale = min(box[0] / image.width, box[1] / image.height, max_scale)
    size = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)
