"""The image stage: each story's own picture, fetched without trusting its server and prepared for its slide.

Where a story's picture comes from: its feed names it (`Story.image`: media:content, media:thumbnail, an image
enclosure), else the article's page names one in its head (og:image, twitter:image; job/news/page_picture.py). Both are
fetched like the feeds (job/news/fetch.py: the sources' address policy, pinned addresses, redirects checked hop by hop,
time and size bounds), a few stories at a time. A picture is then decoded with Pillow under explicit limits
(`ImageLimits`): JPEG, PNG, WebP or GIF (its first frame) only, its pixels counted from its header before
anything is decoded, turned upright by its EXIF orientation, flattened onto the card colour, and scaled to the
room the pipeline gives it (`PictureRoom`, which the video stage decides). The result is a PNG per story in the run's
scratch directory.

Whatever goes wrong with one picture (the network, a refused address, too large, not a picture, a decompression
bomb, a corrupt file) leaves that story without one, and the run goes on; `StoryImages` says which pictures a
feed or page named but could not be used, for one warning.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from api.netguard import AddressPolicy
from job.model import ConfigError, PictureRoom, Story
from job.news.fetch import FetchFailed, fetch
from job.news.page_picture import HEAD_BYTES, page_picture
from job.shared.imaging import fit_picture
from job.shared.text import one_line

if TYPE_CHECKING:
    from api.v1alpha1 import Sources

FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
"""The picture formats decoded; anything else is refused unread."""
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
"""Content types that say nothing: such a body is a picture when Pillow recognises it as one."""
_LISTED = 5
"""Unusable pictures named in the warning; the rest are counted."""
_DECODING = threading.Lock()
"""One decode at a time: it bounds the memory the stage takes, and the warnings filter that makes Pillow's
decompression-bomb warning an error is process-wide."""


@dataclass(frozen=True)
class ImageLimits:
    """What one story's picture may cost. The defaults suit production; tests shrink them."""

    connect_timeout: float = 5.0
    """Seconds to establish a connection (per address tried)."""
    read_timeout: float = 10.0
    """Seconds a read may wait, and the overall deadline of one download, redirects included (the article's
    page and the picture each have their own)."""
    max_bytes: int = 8 * 1024 * 1024
    """Largest picture on the wire."""
    max_decoded_bytes: int = 16 * 1024 * 1024
    """Largest picture after gzip/deflate/br transfer decompression."""
    max_redirects: int = 5
    """Most redirects followed."""
    page_bytes: int = HEAD_BYTES
    """How much of an article's page is read for its og:image: its head comes first."""
    max_pixels: int = 40_000_000
    """Largest picture decoded (a 40-megapixel photo), counted from its header; larger ones are refused unread."""
    document: str = "a picture"
    """What is fetched, as job.news.fetch's errors name it."""
    allow_hint: str = "to allow it, list its network in sources.allowedAddresses"
    """Pictures are named by the feeds' content: only sources.allowedAddresses opens private networks to them."""
    min_side: int = 48
    """A picture whose shorter side is smaller (a tracking pixel, an icon) is not worth showing."""
    workers: int = 5
    """Stories whose pictures are fetched at the same time."""


@dataclass(frozen=True)
class StoryImages:
    """What the image stage found: a prepared picture for some stories, and why others named could not be used."""

    stories: int
    files: Mapping[Story, Path] = field(default_factory=dict)
    """The prepared picture (PNG, fitted to its room on the slide) of each story that has one."""
    urls: Mapping[Story, str] = field(default_factory=dict)
    """Where each of those pictures came from: the feed's URL for it, or the article page's og:image."""
    unusable: tuple[str, ...] = ()
    """Pictures a feed or page named that could not be used: "host: reason", without paths or queries."""

    @property
    def summary(self) -> str:
        """E.g. "3 of 5 stories have a picture"."""
        return f"{len(self.files)} of {self.stories} {'story has' if self.stories == 1 else 'stories have'} a picture"

    @property
    def warning(self) -> str | None:
        """One line about the pictures named but not used, or None when there are none."""
        if not self.unusable:
            return None
        count = len(self.unusable)
        listed = "; ".join(self.unusable[:_LISTED])
        more = f"; and {count - _LISTED} more" if count > _LISTED else ""
        shown = "that story is" if count == 1 else "those stories are"
        return (
            f"{count} story picture{'s' * (count != 1)} could not be used, so {shown} shown without one: {listed}{more}"
        )


class Unusable(Exception):
    """Why a downloaded picture cannot be shown; the message follows the picture's host in the warning."""


@dataclass(frozen=True)
class _Outcome:
    url: str = ""
    file: Path | None = None
    problem: str | None = None


def fetch_story_images(
    stories: Sequence[Story], sources: Sources, room: PictureRoom, workdir: Path, *, limits: ImageLimits = ImageLimits()
) -> StoryImages:
    """Fetch and prepare each story's picture into `workdir`, a few stories at a time. Never raises for a picture:
    a story whose picture cannot be had has none. Raises ConfigError only for an invalid sources.allowedAddresses
    entry.

    The feeds' content chooses these URLs, not the broadcast's owner, so they may reach public addresses and the
    networks sources.allowedAddresses names, never what sources.allowPrivateAddresses opens to the feeds themselves
    (an in-cluster feed must not let a public one's item reach the cluster's services or the metadata address)."""
    try:
        policy = AddressPolicy.of(False, sources.allowed_addresses)
    except ValueError as exc:
        raise ConfigError(f"sources.allowedAddresses: {exc}") from None
    workdir.mkdir(parents=True, exist_ok=True)

    def one(numbered: tuple[int, Story]) -> _Outcome:
        number, story = numbered
        return _story_picture(story, workdir / f"story-{number}.png", policy, limits, room)

    if not stories:
        return StoryImages(0)
    with ThreadPoolExecutor(
        max_workers=max(1, min(limits.workers, len(stories))), thread_name_prefix="anchor-image"
    ) as pool:
        outcomes = list(pool.map(one, enumerate(stories, 1)))
    pairs = list(zip(stories, outcomes, strict=True))
    return StoryImages(
        stories=len(stories),
        files={story: outcome.file for story, outcome in pairs if outcome.file is not None},
        urls={story: outcome.url for story, outcome in pairs if outcome.file is not None},
        unusable=tuple(outcome.problem for _, outcome in pairs if outcome.problem),
    )


def _story_picture(story: Story, path: Path, policy: AddressPolicy, limits: ImageLimits, room: PictureRoom) -> _Outcome:
    url = story.image
    if not url and urlsplit(story.link).scheme.lower() in ("http", "https"):
        try:
            url = page_picture(story.link, policy=policy, limits=limits, max_bytes=limits.page_bytes)
        except Exception:  # a page that cannot be read named no picture: nothing to report
            url = ""
    if not url:
        return _Outcome()
    try:
        if not url.lower().startswith(("http://", "https://")):  # fetch() would read anything else as a file
            raise Unusable("not an http(s) URL")
        document = fetch(url, base_dir=None, policy=policy, limits=limits, session=None)
        picture = prepare_picture(document.data, document.content_type, room, limits)
        picture.save(path, format="PNG", compress_level=1)
    except (FetchFailed, Unusable) as problem:
        return _Outcome(url, problem=_problem(url, str(problem)))
    except Exception as exc:  # the contract: one picture's failure never stops the broadcast
        return _Outcome(url, problem=_problem(url, f"unexpected error: {type(exc).__name__}"))
    return _Outcome(url, file=path)


def prepare_picture(
    data: bytes, content_type: str | None, room: PictureRoom, limits: ImageLimits = ImageLimits()
) -> Image.Image:
    """The picture in `data`, upright, in RGB (transparency flattened onto the room's matte), scaled to fit it.

    Raises Unusable when it is not a picture (a declared type other than image/*, or not JPEG, PNG, WebP or
    GIF), has too many pixels (counted from its header, before decoding) or too few, or is corrupt."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not kind.startswith("image/") and kind not in _UNTYPED:
        raise Unusable(f"not a picture ({one_line(kind)[:60]})")
    with _DECODING, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise Unusable(
                        f"too large ({width}x{height} pixels; at most {limits.max_pixels / 1e6:g} megapixels)"
                    )
                if min(width, height) < limits.min_side:
                    raise Unusable(f"too small ({width}x{height} pixels)")
                if image.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 size when that still fills the box
                    image.draft("RGB", (max(room.size), max(room.size)))
                image.load()  # a GIF's or WebP's first frame
                # Shrunk at once, to twice the room either way up, so that turning and flattening it copy a small
                # picture, not a 40-megapixel one; and one decode at a time (the lock) bounds the stage's memory.
                image.thumbnail((2 * max(room.size), 2 * max(room.size)))
                upright = ImageOps.exif_transpose(image)
                flat = _flattened(upright, room.matte)
        except Unusable:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Unusable(f"too large (over {limits.max_pixels / 1e6:g} megapixels: a decompression bomb?)") from None
        except UnidentifiedImageError:
            raise Unusable("not a JPEG, PNG, WebP or GIF picture") from None
        except Exception as exc:  # a damaged file makes Pillow's decoders raise all sorts (OSError, SyntaxError...)
            raise Unusable(f"a corrupt picture ({type(exc).__name__})") from None
    return fit_picture(flat, room.size, max_scale=room.max_scale)


def _flattened(image: Image.Image, matte: tuple[int, int, int]) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (*matte, 255))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    return image.convert("RGB")


def _problem(url: str, reason: str) -> str:
    """The line naming an unusable picture: its host and why, any URL in the reason cut to its host and path (no
    query, no credentials)."""
    host = one_line(urlsplit(url).hostname or "(no host)")[:100]
    reason = re.sub(r"(https?://[^\s?#]*)[?#]\S*", r"\1", reason)
    return f"{host}: {one_line(reason)[:200]}"
