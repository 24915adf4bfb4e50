"""A portrait from a folder of PNGs with transparency, every one the size of base.png:

    base.png            required: the character without its mouth (and its eyes, if eyes-open.png is given)
    mouth-a.png, mouth-i.png, mouth-u.png, mouth-e.png, mouth-o.png, mouth-closed.png
                        at least one; a shape the folder lacks is filled from the nearest one it has
    eyes-open.png       optional: without it the eyes are part of base.png
    eyes-closed.png     optional: without it the eyes do not blink

Any other file in the folder is ignored. The folder comes from the user, so each file is read as hostile: PNG only,
its size on disk and its canvas (from the header) are checked before a pixel is decoded.
"""

from __future__ import annotations

import stat
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from job.video.cast.portrait import MAX_PORTRAIT_PIXELS, MOUTHS, Portrait, PortraitError, complete_mouths

BASE = "base.png"
MAX_LAYER_BYTES = 20 * 1024 * 1024
"""Largest layer file read; a larger one is refused unread (a 4000 x 4000 RGBA PNG is rarely over 10 MiB)."""


def read_folder(path: Path) -> Portrait:
    """The portrait in the folder at `path`, every layer RGBA.

    Raises PortraitError, naming the file and what is wrong with it, when the folder or a layer cannot be used."""
    if not path.is_dir():
        raise PortraitError(f"{path} is not a folder: a portrait folder holds {BASE} and mouth-*.png layers")
    if not (path / BASE).exists():
        raise PortraitError(f"{path} has no {BASE} (the character without eyes and mouth)")
    base = _read_layer(path / BASE, None)

    def optional(name: str) -> Image.Image | None:
        file = path / name
        return _read_layer(file, base.size) if file.exists() else None

    found = {shape: layer for shape in MOUTHS if (layer := optional(f"mouth-{shape}.png")) is not None}
    mouths = complete_mouths(found, str(path))
    eyes_open = optional("eyes-open.png")
    if eyes_open is None:  # the eyes are drawn in the base: an empty layer leaves them as they are
        eyes_open = Image.new("RGBA", base.size, (0, 0, 0, 0))
    eyes_closed = optional("eyes-closed.png")
    return Portrait(
        base=base,
        mouths=mouths,
        eyes={"open": eyes_open, "closed": eyes_open if eyes_closed is None else eyes_closed},
        source=str(path),
    )


def _read_layer(file: Path, size: tuple[int, int] | None) -> Image.Image:
    """The PNG at `file` in RGBA, refused before decoding when its file or canvas is too large, or when its canvas
    is not `size` (the base's)."""
    try:
        found = file.stat()
    except OSError as exc:
        raise PortraitError(f"{file} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(found.st_mode):  # a pipe or a device would block or never end
        raise PortraitError(f"{file} is not a plain file")
    length = found.st_size
    if length > MAX_LAYER_BYTES:
        raise PortraitError(f"{file} is {length:,} bytes; a portrait layer may be at most {MAX_LAYER_BYTES:,}")
    with warnings.catch_warnings():
        # Pillow warns while opening a canvas over its own limit (and raises past twice that); ours is lower, so
        # either is a refusal, not a warning in the log.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(file, formats=("PNG",))  # reads the header only
            with image:
                width, height = image.size
                if width * height > MAX_PORTRAIT_PIXELS:
                    raise PortraitError(
                        f"{file} is {width}x{height} pixels; a portrait may have at most {MAX_PORTRAIT_PIXELS:,}"
                    )
                if size is not None and image.size != size:
                    raise PortraitError(
                        f"{file} is {width}x{height} pixels but {BASE} is {size[0]}x{size[1]}; "
                        "every layer must be the size of the base"
                    )
                return image.convert("RGBA")
        except PortraitError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PortraitError(
                f"{file} is too large (over {MAX_PORTRAIT_PIXELS:,} pixels: a decompression bomb?)"
            ) from None
        except UnidentifiedImageError:
            raise PortraitError(f"{file} is not a PNG image") from None
        except Exception as exc:  # a damaged PNG makes Pillow raise all sorts (OSError, SyntaxError, ValueError...)
            raise PortraitError(f"{file} is a damaged PNG ({type(exc).__name__}: {exc})") from None
