"""A portrait from a layered PSD, the way 立ち絵 for VOICEVOX videos are shared: PSDToolKit's layer naming.

PSDToolKit's marks, as read here (names are compared without them and without surrounding spaces, Latin letters
in any case):

    *name        one choice of a radio set: of the siblings whose names start with `*`, one shows (the visible one,
                 or the topmost when none or several are visible)
    !name        always shown, whatever its visibility flag
    name:flipx   shown only when the picture is flipped (also :flipy, :flipxy); never shown here

The mouth is a group named 口, くち, 口パク or mouth, at any depth (顔/口), holding あ い う え お and ん (or 閉じ,
closed, n); the eyes a group named 目, 目パチ or eyes holding 開き (開, 通常, open) and 閉じ (閉, closed). Where
several groups have the name, the first shown one wins. spec.cast[].portrait.layers names the state layers of a PSD
named otherwise, as paths from the top ("口/あ", "Layer 7"), one state at a time.

Each state is its layer alone (a group composited) on a transparent canvas; the base is every shown layer except the
state layers and the other choices of their radio sets. A missing mouth is filled from the nearest shape; without
open eyes the eyes stay in the base (or, when only the closed ones are found, the choice the PSD shows beside them
is the open eyes), and without closed ones they never blink.

The compositing is deliberately plain: every blend mode is drawn as normal, layer and group opacity and a layer's
pixel mask are applied, and clipping layers, group masks, vector masks, layer effects, and layers without pixels of
their own (adjustments, fills, shapes and text that were never rasterised) are left out. A portrait that needs them
should be flattened into its parts first.

The file comes from the user, so it is read as hostile: its size and its 26-byte header are checked before
psd-tools parses a byte, its layer count before a pixel is decoded, and each layer's size before it is; anything
psd-tools raises on a damaged file becomes a PortraitError naming the file.
"""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageChops
from psd_tools import ParseLimits, PSDImage
from psd_tools.api.layers import AdjustmentLayer, FillLayer, Group, Layer

from api.v1alpha1 import PortraitLayers
from job.video.cast.portrait import MAX_PORTRAIT_PIXELS, Portrait, PortraitError, complete_mouths

MAX_PSD_BYTES = 64 * 1024 * 1024
"""Largest PSD read; a larger one is refused unread (立ち絵 PSDs are mostly 5 to 30 MiB)."""
MAX_LAYERS = 2000
"""Most layers and groups, all nesting counted, in a PSD read (the richest 立ち絵 have a few hundred)."""
MAX_CHANNELS = 56
"""Most channels the header may declare (the format's own limit)."""
MAX_DECODED_PIXELS = 32 * MAX_PORTRAIT_PIXELS
"""Most layer pixels decoded for one portrait, all layers together: a bound on the work a small file of highly
compressed layers can ask for. 32 canvases of the largest size; a portrait's shown layers are far fewer."""
MAX_ALLOC_BYTES = 1024 * 1024 * 1024
"""psd-tools' own ceiling on one allocation while decoding a layer (its default is 4 GiB)."""

_HEADER = struct.Struct(">4sH6xHIIHH")
"""Signature, version, (reserved), channels, height, width, depth, colour mode: the file's first 26 bytes."""
_COLOUR_MODES = {1: "grayscale", 3: "RGB"}
_OTHER_COLOUR_MODES = {0: "bitmap", 2: "indexed", 4: "CMYK", 7: "multichannel", 8: "duotone", 9: "Lab"}
_FLIPPED = (":flipx", ":flipy", ":flipxy")

MOUTH_GROUPS = frozenset({"口", "くち", "口パク", "mouth"})
EYES_GROUPS = frozenset({"目", "目パチ", "eyes", "eye"})
MOUTH_NAMES: Mapping[str, frozenset[str]] = {
    "a": frozenset({"あ", "ア", "a"}),
    "i": frozenset({"い", "イ", "i"}),
    "u": frozenset({"う", "ウ", "u"}),
    "e": frozenset({"え", "エ", "e"}),
    "o": frozenset({"お", "オ", "o"}),
    "closed": frozenset({"ん", "ン", "閉じ", "閉", "closed", "close", "n"}),
}
"""The names a mouth group's layers go by, for each shape of MOUTHS."""
EYES_NAMES: Mapping[str, frozenset[str]] = {
    "open": frozenset({"開き", "開", "開け", "通常", "open"}),
    "closed": frozenset({"閉じ", "閉", "closed", "close"}),
}
"""The names an eyes group's layers go by, for each state of EYES."""

_FIELDS: Mapping[str, tuple[str, str]] = {
    "mouth_a": ("mouth", "a"),
    "mouth_i": ("mouth", "i"),
    "mouth_u": ("mouth", "u"),
    "mouth_e": ("mouth", "e"),
    "mouth_o": ("mouth", "o"),
    "mouth_closed": ("mouth", "closed"),
    "eyes_open": ("eyes", "open"),
    "eyes_closed": ("eyes", "closed"),
}
"""Each field of PortraitLayers: which part and which state it names."""

_Container = PSDImage | Group


def read_psd(path: Path, layers: PortraitLayers | None = None) -> Portrait:
    """The portrait in the PSD at `path`, its states found by PSDToolKit's naming or named by `layers`.

    Raises PortraitError, naming the file (or the field of `layers`) and what is wrong, when it cannot be used."""
    size = _check_header(path)
    source = str(path)
    try:
        psd = PSDImage.open(
            path, parse_limits=ParseLimits(max_read_bytes=MAX_PSD_BYTES), max_alloc_bytes=MAX_ALLOC_BYTES
        )
        count = sum(1 for _ in psd.descendants())
        if count > MAX_LAYERS:
            raise PortraitError(f"{path} has {count:,} layers; a portrait PSD may have at most {MAX_LAYERS:,}")
        if psd.size != size:  # psd-tools read another header than the one checked: refuse rather than guess
            raise PortraitError(f"{path} has a header psd-tools reads differently")
        return _portrait(psd, layers, source)
    except PortraitError:
        raise
    except Exception as exc:  # a damaged PSD makes psd-tools raise all sorts (ValueError, struct.error, EOFError...)
        raise PortraitError(f"{path} is a damaged or unsupported PSD ({type(exc).__name__}: {exc})") from None


def _check_header(path: Path) -> tuple[int, int]:
    """The canvas size in the header of the file at `path`, refused before psd-tools reads it when the file or its
    canvas is too large, or it is not a PSD this reader can composite."""
    try:
        length = path.stat().st_size
        if length > MAX_PSD_BYTES:
            raise PortraitError(f"{path} is {length:,} bytes; a portrait PSD may be at most {MAX_PSD_BYTES:,}")
        with path.open("rb") as file:
            head = file.read(_HEADER.size)
    except OSError as exc:
        raise PortraitError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if len(head) < _HEADER.size or not head.startswith(b"8BPS"):
        raise PortraitError(f"{path} is not a PSD (it does not start with a Photoshop header)")
    _, version, channels, height, width, depth, mode = _HEADER.unpack(head)
    if version == 2:
        raise PortraitError(f"{path} is a PSB (Photoshop's large document format); save it as a PSD")
    if version != 1:
        raise PortraitError(f"{path} is not a PSD (its header says version {version})")
    if width * height > MAX_PORTRAIT_PIXELS:
        raise PortraitError(f"{path} is {width}x{height} pixels; a portrait may have at most {MAX_PORTRAIT_PIXELS:,}")
    if width == 0 or height == 0:
        raise PortraitError(f"{path} has an empty canvas ({width}x{height})")
    if depth not in (8, 16):
        raise PortraitError(f"{path} has {depth}-bit channels; a portrait PSD must be 8- or 16-bit")
    if not 1 <= channels <= MAX_CHANNELS:
        raise PortraitError(f"{path} declares {channels} channels; a PSD has 1 to {MAX_CHANNELS}")
    if mode not in _COLOUR_MODES:
        name = _OTHER_COLOUR_MODES.get(mode, f"an unknown ({mode})")
        raise PortraitError(f"{path} is in {name} colour mode; save it as RGB")
    return width, height


def _portrait(psd: PSDImage, layers: PortraitLayers | None, source: str) -> Portrait:
    mouths = _by_convention(psd, MOUTH_GROUPS, MOUTH_NAMES)
    eyes = _by_convention(psd, EYES_GROUPS, EYES_NAMES)
    for field, (part, state) in _FIELDS.items():
        wanted = None if layers is None else getattr(layers, field)
        if wanted is not None:
            (mouths if part == "mouth" else eyes)[state] = _at_path(psd, wanted, field, source)
    if not mouths:
        raise PortraitError(
            f"{source} has no mouth layers: neither a group named {' or '.join(sorted(MOUTH_GROUPS))} holding "
            "あ い う え お ん, nor spec.cast[].portrait.layers naming them"
        )
    if "open" not in eyes and "closed" in eyes and (shown := _default_choice(eyes["closed"])) is not None:
        eyes["open"] = shown  # the eyes the PSD shows, which the base leaves out with the closed ones

    states = [*mouths.values(), *eyes.values()]
    left_out = {id(layer) for state in states for layer in (state, *_radio_set(state))}
    canvas = _Canvas(psd.size, source)
    base = canvas.composite(_shown(psd), left_out)
    alone: dict[int, Image.Image] = {}
    for layer in states:
        if id(layer) not in alone:
            alone[id(layer)] = _faded(canvas.composite([layer], set()), _ancestors_opacity(layer))
    mouth_images = complete_mouths({shape: alone[id(layer)] for shape, layer in mouths.items()}, source)
    eyes_open = alone[id(eyes["open"])] if "open" in eyes else Image.new("RGBA", psd.size, (0, 0, 0, 0))
    eyes_closed = alone[id(eyes["closed"])] if "closed" in eyes else eyes_open
    return Portrait(base=base, mouths=mouth_images, eyes={"open": eyes_open, "closed": eyes_closed}, source=source)


# Names and the PSDToolKit conventions


def _prefix(name: str) -> str:
    """The `*`/`!` marks at the start of a layer's name."""
    text = unicodedata.normalize("NFKC", name).strip()
    return text[: len(text) - len(text.lstrip("*! "))]


def _key(name: str) -> str:
    """A layer's name as compared: without its marks and surrounding spaces, Latin letters in lower case."""
    return unicodedata.normalize("NFKC", name).strip().lstrip("*! ").strip().casefold()


def _is_radio(layer: Layer) -> bool:
    return "*" in _prefix(layer.name)


def _is_flipped(layer: Layer) -> bool:
    return _key(layer.name).endswith(_FLIPPED)


def _choice(radios: Sequence[Layer]) -> Layer:
    """The one radio choice of `radios` (bottom to top) that shows: the topmost visible one, else the topmost."""
    visible = [layer for layer in radios if layer.visible]
    return (visible or list(radios))[-1]


def _radio_choices(layers: Iterable[Layer]) -> list[Layer]:
    return [layer for layer in layers if _is_radio(layer) and not _is_flipped(layer)]


def _shown(container: _Container) -> list[Layer]:
    """The layers of `container` that show, bottom to top, by visibility and PSDToolKit's marks (clipping layers
    left out)."""
    children = [layer for layer in container if not layer.clipping]
    radios = _radio_choices(children)
    chosen = _choice(radios) if radios else None
    return [
        layer
        for layer in children
        if not _is_flipped(layer)
        and (layer is chosen if _is_radio(layer) else (layer.visible or "!" in _prefix(layer.name)))
    ]


def _radio_set(layer: Layer) -> list[Layer]:
    """The other choices of the radio set `layer` is one of; none when it is not a radio choice."""
    parent = layer.parent
    if not _is_radio(layer) or not isinstance(parent, PSDImage | Group):
        return []
    return [other for other in _radio_choices(parent) if other is not layer]


def _default_choice(layer: Layer) -> Layer | None:
    """The choice of `layer`'s radio set that the PSD shows, when that is not `layer` itself."""
    parent = layer.parent
    if not _is_radio(layer) or not isinstance(parent, PSDImage | Group):
        return None
    chosen = _choice(_radio_choices(parent))
    return None if chosen is layer else chosen


def _groups(container: _Container) -> Iterator[Group]:
    """Every group under `container`, depth first, top to bottom as a layers panel lists them."""
    for layer in reversed(list(container)):
        if isinstance(layer, Group):
            yield layer
            yield from _groups(layer)


def _shown_ids(container: _Container) -> set[int]:
    shown: set[int] = set()
    for layer in _shown(container):
        shown.add(id(layer))
        if isinstance(layer, Group):
            shown |= _shown_ids(layer)
    return shown


def _by_convention(
    psd: PSDImage, group_names: frozenset[str], state_names: Mapping[str, frozenset[str]]
) -> dict[str, Layer]:
    """The state layers of the first group named one of `group_names` that has any, a shown group before a hidden
    one (a PSD with a mouth per expression shows the one in use)."""
    groups = [group for group in _groups(psd) if _key(group.name) in group_names and not _is_flipped(group)]
    shown = _shown_ids(psd)
    for group in sorted(groups, key=lambda group: id(group) not in shown):
        found: dict[str, Layer] = {}
        for layer in reversed(list(group)):
            if _is_flipped(layer):
                continue
            key = _key(layer.name)
            for state, names in state_names.items():
                if key in names and state not in found:
                    found[state] = layer
        if found:
            return found
    return {}


def _at_path(psd: PSDImage, path: str, field: str, source: str) -> Layer:
    """The layer at `path` ("口/あ"), names compared as PSDToolKit's; the first from the top where two match."""
    where = f"spec.cast[].portrait.layers.{PortraitLayers.model_fields[field].alias}"
    container: _Container = psd
    layer: Layer | None = None
    parts = [part for part in path.split("/") if part.strip()]
    for depth, part in enumerate(parts):
        layer = next((each for each in reversed(list(container)) if _key(each.name) == _key(part)), None)
        if layer is None:
            names = [each.name for each in reversed(list(container))]
            listed = ", ".join(names[:8]) + (", …" if len(names) > 8 else "") if names else "no layers"
            inside = "it has" if depth == 0 else f"{'/'.join(parts[:depth])} has"
            raise PortraitError(f"{where}: no layer {path} in {source}; {inside}: {listed}")
        if depth < len(parts) - 1:
            if not isinstance(layer, Group):
                raise PortraitError(f"{where}: {'/'.join(parts[: depth + 1])} in {source} is a layer, not a group")
            container = layer
    if layer is None:
        raise PortraitError(f"{where}: {path!r} names no layer")
    return layer


# Compositing


class _Canvas:
    """Draws layers onto transparent RGBA canvases the size of the PSD, keeping count of the pixels decoded."""

    def __init__(self, size: tuple[int, int], source: str) -> None:
        self.size = size
        self.source = source
        self.budget = MAX_DECODED_PIXELS

    def composite(self, layers: Iterable[Layer], left_out: set[int]) -> Image.Image:
        """`layers` (bottom to top) drawn over each other, leaving out those whose id is in `left_out`."""
        canvas = Image.new("RGBA", self.size, (0, 0, 0, 0))
        for layer in layers:
            self._draw(canvas, layer, left_out)
        return canvas

    def _draw(self, canvas: Image.Image, layer: Layer, left_out: set[int]) -> None:
        if id(layer) in left_out:
            return
        if isinstance(layer, Group):
            if layer.opacity >= 255:
                for child in _shown(layer):
                    self._draw(canvas, child, left_out)
            else:  # a faded group is drawn apart first, so that its layers fade together
                canvas.alpha_composite(_faded(self.composite(_shown(layer), left_out), layer.opacity / 255))
            return
        if isinstance(layer, AdjustmentLayer | FillLayer) or not layer.has_pixels():
            return
        pixels = self._pixels(layer)
        if pixels is not None:
            _place(canvas, _faded(pixels, layer.opacity / 255), layer.left, layer.top)

    def _pixels(self, layer: Layer) -> Image.Image | None:
        """The layer's own pixels in RGBA, its pixel mask applied; refused when larger than a portrait may be."""
        self._spend(f"layer {layer.name!r}", layer.width, layer.height)
        image = layer.topil()
        if image is None:
            return None
        image = image.convert("RGBA")
        mask = layer.mask
        if mask is not None and not mask.disabled:
            self._spend(f"the mask of layer {layer.name!r}", mask.width, mask.height)
            shape = mask.topil(layer_sized=True) or Image.new("L", image.size, mask.background_color)
            image.putalpha(ImageChops.multiply(image.getchannel("A"), shape.convert("L")))
        return image

    def _spend(self, what: str, width: int, height: int) -> None:
        """Count `what`'s pixels against the portrait's budget, refusing them when over it or over a canvas."""
        if width * height > MAX_PORTRAIT_PIXELS:
            raise PortraitError(
                f"{self.source}: {what} is {width}x{height} pixels; a portrait's layers may have at most "
                f"{MAX_PORTRAIT_PIXELS:,}"
            )
        self.budget -= width * height
        if self.budget < 0:
            raise PortraitError(
                f"{self.source}: its shown layers come to over {MAX_DECODED_PIXELS:,} pixels; "
                "a portrait may decode at most that many"
            )


def _place(canvas: Image.Image, image: Image.Image, left: int, top: int) -> None:
    """`image` drawn over `canvas` with its top left corner at (`left`, `top`), what falls outside cut off."""
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + image.width, canvas.width), min(top + image.height, canvas.height)
    if x0 < x1 and y0 < y1:
        canvas.alpha_composite(image, dest=(x0, y0), source=(x0 - left, y0 - top, x1 - left, y1 - top))


def _faded(image: Image.Image, opacity: float) -> Image.Image:
    """`image` with its alpha scaled by `opacity` (0 to 1)."""
    if opacity >= 1:
        return image
    faded = image.copy()
    faded.putalpha(image.getchannel("A").point([round(value * opacity) for value in range(256)]))
    return faded


def _ancestors_opacity(layer: Layer) -> float:
    """The opacity the groups around `layer` give it, 0 to 1: a state layer is drawn alone but still in them."""
    opacity = 1.0
    parent = layer.parent
    while isinstance(parent, Group):
        opacity *= parent.opacity / 255
        parent = parent.parent
    return opacity
