"""Portraits: the two built-in characters drawn by code, and a folder of PNGs read as hostile input."""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from functools import cache
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from job.video.cast.builtin import builtin_portrait
from job.video.cast.folder import MAX_LAYER_BYTES, read_folder
from job.video.cast.portrait import EYES, MOUTHS, Portrait, PortraitError

Box = tuple[int, int, int, int]


@cache
def built_in(number: int, height: int = 700) -> Portrait:
    return builtin_portrait(number, height)


def union(boxes: list[Box]) -> Box:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def share_changed(first: Image.Image, second: Image.Image, box: Box) -> float:
    """The share of pixels in `box` where the two pictures differ clearly (by more than 40 in some channel)."""
    red, green, blue = ImageChops.difference(first.crop(box), second.crop(box)).convert("RGB").split()
    strongest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return sum(strongest.histogram()[41:]) / (strongest.width * strongest.height)


# --- Built-in characters ------------------------------------------------------------------------------------------


def test_the_two_built_in_characters_differ_at_a_glance() -> None:
    first, second = built_in(0).state("closed", "open"), built_in(1).state("closed", "open")
    assert first.size == second.size
    assert share_changed(first, second, (0, 0, *first.size)) > 0.3


@pytest.mark.parametrize("number", [0, 1])
def test_every_mouth_shape_differs_from_every_other_in_the_mouth(number: int) -> None:
    portrait = built_in(number)
    mouth = union([portrait.mouths[shape].getbbox() or (0, 0, 0, 0) for shape in MOUTHS])
    for first, second in itertools.combinations(MOUTHS, 2):
        changed = share_changed(portrait.state(first, "open"), portrait.state(second, "open"), mouth)
        assert changed > 0.05, f"mouths {first!r} and {second!r} look alike ({changed:.1%} of the mouth differs)"


@pytest.mark.parametrize("number", [0, 1])
def test_the_mouth_is_a_readable_size_below_the_eyes(number: int) -> None:
    portrait = built_in(number, 700)
    widths = {}
    for shape in MOUTHS:
        box = portrait.mouths[shape].getbbox()
        assert box is not None, f"mouth {shape!r} is empty"
        widths[shape] = box[2] - box[0]
    assert all(30 <= widths[shape] <= 50 for shape in ("a", "i", "e")), widths
    assert all(widths[shape] < widths["i"] for shape in ("u", "o", "closed")), widths
    eyes = portrait.eyes["open"].getbbox()
    assert eyes is not None
    assert eyes[3] < union([portrait.mouths[shape].getbbox() or (0, 0, 0, 0) for shape in MOUTHS])[1]
    assert 0.25 < (eyes[1] + eyes[3]) / 2 / 700 < 0.42  # the eyes about a third of the way down


@pytest.mark.parametrize("number", [0, 1])
def test_closing_the_eyes_changes_the_eyes(number: int) -> None:
    portrait = built_in(number)
    eyes = union([portrait.eyes[state].getbbox() or (0, 0, 0, 0) for state in EYES])
    assert share_changed(portrait.state("closed", "open"), portrait.state("closed", "closed"), eyes) > 0.2


@pytest.mark.parametrize(("number", "height"), [(0, 200), (1, 200), (0, 701), (1, 1920)])
def test_every_layer_is_rgba_and_the_size_of_the_portrait(number: int, height: int) -> None:
    portrait = builtin_portrait(number, height)
    layers = [portrait.base, *portrait.mouths.values(), *portrait.eyes.values()]
    assert set(portrait.mouths) == set(MOUTHS) and set(portrait.eyes) == set(EYES)
    assert portrait.base.size == (round(height * 0.6), height)
    assert all(layer.mode == "RGBA" and layer.size == portrait.base.size for layer in layers)
    assert portrait.source == f"built-in character {number}"


def test_a_built_in_portrait_is_the_same_every_time() -> None:
    first, second = builtin_portrait(1, 300), builtin_portrait(1, 300)
    assert first.base.tobytes() == second.base.tobytes()
    assert all(first.mouths[shape].tobytes() == second.mouths[shape].tobytes() for shape in MOUTHS)
    assert all(first.eyes[state].tobytes() == second.eyes[state].tobytes() for state in EYES)
    third = builtin_portrait(3, 300)  # any number picks one of the two
    assert third.base.tobytes() == first.base.tobytes() and third.source == "built-in character 1"


@pytest.mark.parametrize("number", [0, 1])
def test_the_background_is_transparent(number: int) -> None:
    alpha = built_in(number).base.getchannel("A")
    width, height = alpha.size
    assert all(
        alpha.getpixel(corner) == 0 for corner in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1))
    )
    assert alpha.getpixel((width // 2, height // 3)) == 255  # the face


def test_a_height_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="10"):
        builtin_portrait(0, 10)


# --- A folder of PNGs ---------------------------------------------------------------------------------------------

SIZE = (40, 60)
COLOURS = {
    "base.png": (200, 180, 160, 255),
    "mouth-a.png": (10, 0, 0, 255),
    "mouth-i.png": (20, 0, 0, 255),
    "mouth-u.png": (30, 0, 0, 255),
    "mouth-e.png": (40, 0, 0, 255),
    "mouth-o.png": (50, 0, 0, 255),
    "mouth-closed.png": (60, 0, 0, 255),
    "eyes-open.png": (0, 0, 70, 255),
    "eyes-closed.png": (0, 0, 80, 255),
}
"""Each layer a different colour, so that a test can tell which file ended up where."""


def folder(path: Path, *names: str, size: tuple[int, int] = SIZE) -> Path:
    path.mkdir(exist_ok=True)
    for name in names:
        Image.new("RGBA", size, COLOURS[name]).save(path / name)
    return path


def colour(layer: Image.Image) -> tuple[int, ...]:
    """The layer's top-left pixel, RGBA."""
    return tuple(layer.convert("RGBA").tobytes()[:4])


def test_a_complete_folder_is_read_in_rgba(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", *COLOURS)
    Image.new("RGB", SIZE, COLOURS["base.png"][:3]).save(path / "base.png")  # no alpha channel: still fine
    Image.new("RGBA", SIZE, COLOURS["mouth-o.png"]).convert("P").save(path / "mouth-o.png")
    portrait = read_folder(path)
    assert portrait.source == str(path)
    assert colour(portrait.base) == COLOURS["base.png"]
    assert {shape: colour(layer) for shape, layer in portrait.mouths.items()} == {
        shape: COLOURS[f"mouth-{shape}.png"] for shape in MOUTHS
    }
    assert {state: colour(layer) for state, layer in portrait.eyes.items()} == {
        state: COLOURS[f"eyes-{state}.png"] for state in EYES
    }
    layers = [portrait.base, *portrait.mouths.values(), *portrait.eyes.values()]
    assert all(layer.mode == "RGBA" and layer.size == SIZE for layer in layers)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (("a", "closed"), {"a": "a", "i": "a", "u": "a", "e": "a", "o": "a", "closed": "closed"}),
        (("u", "e"), {"a": "e", "i": "e", "u": "u", "e": "e", "o": "u", "closed": "u"}),
    ],
)
def test_missing_mouths_come_from_the_nearest_shape(
    tmp_path: Path, given: tuple[str, ...], expected: dict[str, str]
) -> None:
    portrait = read_folder(folder(tmp_path / "cast", "base.png", *(f"mouth-{shape}.png" for shape in given)))
    assert {shape: colour(layer) for shape, layer in portrait.mouths.items()} == {
        shape: COLOURS[f"mouth-{nearest}.png"] for shape, nearest in expected.items()
    }


def test_without_eye_layers_the_base_keeps_its_eyes(tmp_path: Path) -> None:
    portrait = read_folder(folder(tmp_path / "cast", "base.png", "mouth-a.png"))
    assert all(layer.getbbox() is None and layer.size == SIZE for layer in portrait.eyes.values())


def test_without_closed_eyes_the_eyes_do_not_blink(tmp_path: Path) -> None:
    portrait = read_folder(folder(tmp_path / "cast", "base.png", "mouth-a.png", "eyes-open.png"))
    assert portrait.eyes["closed"].tobytes() == portrait.eyes["open"].tobytes()
    assert colour(portrait.eyes["closed"]) == COLOURS["eyes-open.png"]


def test_other_files_in_the_folder_are_ignored(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", "base.png", "mouth-closed.png")
    (path / "README.txt").write_text("not a layer")
    (path / "mouth-x.png").write_text("not a layer either")
    Image.new("RGBA", (5, 5)).save(path / "eyes-half.png")
    assert colour(read_folder(path).mouths["a"]) == COLOURS["mouth-closed.png"]


def test_a_path_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "base.png").write_text("a file")
    for path in (tmp_path / "base.png", tmp_path / "absent"):
        with pytest.raises(PortraitError, match="is not a folder") as raised:
            read_folder(path)
        assert str(path) in str(raised.value)


def test_a_folder_without_base_png_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PortraitError, match=r"no base\.png"):
        read_folder(folder(tmp_path / "cast", "mouth-a.png"))


def test_a_folder_without_a_mouth_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PortraitError, match="no mouth layer"):
        read_folder(folder(tmp_path / "cast", "base.png", "eyes-open.png"))


def test_a_layer_of_another_size_is_refused_with_both_sizes(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", "base.png", "mouth-a.png")
    folder(path, "mouth-o.png", size=(30, 20))
    with pytest.raises(PortraitError) as raised:
        read_folder(path)
    message = str(raised.value)
    assert str(path / "mouth-o.png") in message and "30x20" in message and "40x60" in message


def claiming(path: Path, width: int, height: int) -> None:
    """A real 2 x 2 PNG at `path` whose header claims `width` x `height` (with a valid checksum): decoding it would
    either fail or allocate the claimed canvas."""
    Image.new("RGBA", (2, 2), (255, 0, 0, 255)).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("width", "height"), [(30000, 30000), (5000, 4000)])
def test_a_canvas_too_large_is_refused_from_its_header(tmp_path: Path, width: int, height: int) -> None:
    path = folder(tmp_path / "cast", "mouth-a.png")
    claiming(path / "base.png", width, height)
    with pytest.raises(PortraitError, match=r"too large|pixels; a portrait may have at most") as raised:
        read_folder(path)
    assert str(path / "base.png") in str(raised.value) and "damaged" not in str(raised.value)


def test_a_file_too_large_is_refused_unread(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", "base.png")
    with (path / "mouth-a.png").open("wb") as huge:  # sparse: no 20 MiB written
        huge.truncate(MAX_LAYER_BYTES + 1)
    with pytest.raises(PortraitError, match="bytes; a portrait layer may be at most") as raised:
        read_folder(path)
    assert "mouth-a.png" in str(raised.value)


def test_a_pipe_named_png_is_refused_unopened(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", "base.png")
    os.mkfifo(path / "mouth-a.png")  # opening it to read would wait for a writer for ever
    with pytest.raises(PortraitError, match="not a plain file") as raised:
        read_folder(path)
    assert str(path / "mouth-a.png") in str(raised.value)


def test_a_text_file_named_png_is_refused_by_name(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", "base.png")
    (path / "mouth-a.png").write_text("<svg>not a picture</svg>")
    with pytest.raises(PortraitError, match="not a PNG") as raised:
        read_folder(path)
    assert str(path / "mouth-a.png") in str(raised.value)


def test_a_jpeg_named_png_is_refused(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", "mouth-a.png")
    Image.new("RGB", SIZE).save(path / "base.png", format="JPEG")
    with pytest.raises(PortraitError, match=r"base\.png is not a PNG"):
        read_folder(path)


def test_a_truncated_png_is_refused_as_damaged(tmp_path: Path) -> None:
    path = folder(tmp_path / "cast", "base.png")
    noisy = Image.effect_noise(SIZE, 64).convert("RGBA")  # noise: a PNG that does not compress to nothing
    noisy.save(path / "mouth-e.png")
    whole = (path / "mouth-e.png").read_bytes()
    (path / "mouth-e.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PortraitError, match="damaged PNG") as raised:
        read_folder(path)
    assert str(path / "mouth-e.png") in str(raised.value)
