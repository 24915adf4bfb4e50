"""Portraits from layered PSDs: the PSDToolKit names that say which layer is which mouth and eyes, the explicit
layer paths of spec.cast[].portrait.layers, what the base is made of, and the hostile files refused (most of them
before psd-tools parses a byte). Every PSD is built here with psd-tools' own writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from psd_tools import PSDImage
from psd_tools.api.layers import Group, PixelLayer

import job.video.cast.psd as psd_module
from api.v1alpha1 import PortraitLayers
from job.video.cast.portrait import MOUTHS, PortraitError
from job.video.cast.psd import MAX_LAYERS, MAX_PSD_BYTES, read_psd

SIZE = (40, 30)
BODY, BROW = (200, 30, 30), (60, 40, 20)
MOUTH_BOX, EYES_BOX, HAT_BOX = (16, 20, 8, 4), (14, 12, 12, 3), (10, 0, 20, 6)
MOUTH_AT, EYES_AT, HAT_AT, BROW_AT = (18, 21), (15, 13), (15, 2), (20, 9)
MOUTH_COLOURS = {
    "a": (250, 0, 0),
    "i": (0, 250, 0),
    "u": (0, 0, 250),
    "e": (250, 250, 0),
    "o": (0, 250, 250),
    "closed": (250, 0, 250),
}
KANA = {"a": "あ", "i": "い", "u": "う", "e": "え", "o": "お", "closed": "ん"}
OPEN, CLOSED = (10, 20, 30), (40, 50, 60)
CLEAR = (0, 0, 0, 0)

Parent = PSDImage | Group


def rect(
    parent: Parent,
    name: str,
    colour: tuple[int, int, int],
    box: tuple[int, int, int, int],
    *,
    visible: bool = True,
    opacity: int = 255,
) -> PixelLayer:
    """A layer of one opaque colour filling `box` (left, top, width, height), put on top of `parent`."""
    left, top, width, height = box
    layer = parent.create_pixel_layer(Image.new("RGBA", (width, height), (*colour, 255)), top=top, left=left)
    layer.name = name  # the setter, which also writes the Unicode name: the constructor's is MacRoman only
    layer.visible = visible
    layer.opacity = opacity
    return layer


def group(parent: Parent, name: str, *, visible: bool = True, opacity: int = 255) -> Group:
    made = parent.create_group()
    made.name = name
    made.visible = visible
    made.opacity = opacity
    return made


def body(mode: str = "RGBA", depth: int = 8) -> PSDImage:
    """A PSD with only the character's body on it, covering where the face goes."""
    psd = PSDImage.new(mode, SIZE, depth=depth)  # type: ignore[arg-type]
    rect(psd, "体", BODY, (0, 8, 40, 22))
    return psd


def toolkit(mode: str = "RGBA", depth: int = 8) -> PSDImage:
    """The PSDToolKit layout: 体, then 顔 holding 眉, 口 (*あ … *ん, ん shown) and 目 (*開き shown, *閉じ)."""
    psd = body(mode, depth)
    face = group(psd, "顔")
    rect(face, "眉", BROW, (14, 8, 12, 2))
    mouth = group(face, "口")
    for shape in MOUTHS:
        rect(mouth, f"*{KANA[shape]}", MOUTH_COLOURS[shape], MOUTH_BOX, visible=shape == "closed")
    eyes = group(face, "目")
    rect(eyes, "*開き", OPEN, EYES_BOX)
    rect(eyes, "*閉じ", CLOSED, EYES_BOX, visible=False)
    return psd


def saved(psd: PSDImage, path: Path) -> Path:
    psd.save(path)
    return path


def patched(path: Path, offset: int, value: bytes) -> Path:
    """The PSD at `path` with its bytes at `offset` replaced by `value`: a header that lies."""
    data = bytearray(path.read_bytes())
    data[offset : offset + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def pixel(image: Image.Image, at: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(at)
    assert isinstance(value, tuple)
    return value


@pytest.fixture
def never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """psd-tools must not be asked to parse the file: the header alone refuses it."""

    class Unreachable:
        @staticmethod
        def open(*args: object, **kwargs: object) -> None:
            raise AssertionError("psd-tools was asked to parse a file the header check should have refused")

    monkeypatch.setattr(psd_module, "PSDImage", Unreachable)


# The convention and the explicit paths


@pytest.mark.parametrize(("mode", "depth"), [("RGBA", 8), ("RGBA", 16)])
def test_psdtoolkit_names_give_every_state_its_own_layer_and_the_base_the_rest(
    tmp_path: Path, mode: str, depth: int
) -> None:
    portrait = read_psd(saved(toolkit(mode, depth), tmp_path / "zunda.psd"))

    assert portrait.source == str(tmp_path / "zunda.psd")
    assert portrait.base.mode == "RGBA" and portrait.base.size == SIZE
    # The base is the body and the brows; the mouth shown by default (ん) and the open eyes are not in it.
    assert pixel(portrait.base, MOUTH_AT) == (*BODY, 255)
    assert pixel(portrait.base, EYES_AT) == (*BODY, 255)
    assert pixel(portrait.base, BROW_AT) == (*BROW, 255)
    left, top, width, height = MOUTH_BOX
    for shape in MOUTHS:
        layer = portrait.mouths[shape]
        assert layer.size == SIZE and layer.mode == "RGBA"
        assert pixel(layer, MOUTH_AT) == (*MOUTH_COLOURS[shape], 255), shape
        assert layer.getbbox() == (left, top, left + width, top + height), "each state is its layer alone"
    assert pixel(portrait.eyes["open"], EYES_AT) == (*OPEN, 255)
    assert pixel(portrait.eyes["closed"], EYES_AT) == (*CLOSED, 255)
    assert pixel(portrait.eyes["closed"], MOUTH_AT) == CLEAR
    assert pixel(portrait.state("a", "closed"), MOUTH_AT) == (*MOUTH_COLOURS["a"], 255)
    assert pixel(portrait.state("a", "closed"), BROW_AT) == (*BROW, 255)


def test_latin_names_in_any_case_and_spacing_are_found_too(tmp_path: Path) -> None:
    psd = body()
    mouth = group(psd, " Mouth ")
    rect(mouth, "* A", MOUTH_COLOURS["a"], MOUTH_BOX)
    rect(mouth, "*Closed", MOUTH_COLOURS["closed"], MOUTH_BOX, visible=False)
    eyes = group(psd, "*EYES")
    rect(eyes, "!Open", OPEN, EYES_BOX)

    portrait = read_psd(saved(psd, tmp_path / "latin.psd"))

    assert pixel(portrait.mouths["a"], MOUTH_AT) == (*MOUTH_COLOURS["a"], 255)
    assert pixel(portrait.mouths["closed"], MOUTH_AT) == (*MOUTH_COLOURS["closed"], 255)
    assert pixel(portrait.eyes["open"], EYES_AT) == (*OPEN, 255)
    assert pixel(portrait.eyes["closed"], EYES_AT) == (*OPEN, 255), "no closed eyes: they never blink"
    assert pixel(portrait.base, MOUTH_AT) == (*BODY, 255)


def test_explicit_layers_name_the_states_of_a_psd_named_otherwise(tmp_path: Path) -> None:
    psd = body()
    rect(psd, "Layer 7", MOUTH_COLOURS["a"], MOUTH_BOX)
    rect(psd, "Layer 8", MOUTH_COLOURS["closed"], MOUTH_BOX, visible=False)
    other = group(psd, "Group 2")
    rect(other, "Layer 3", OPEN, EYES_BOX)
    rect(other, "*Layer 4", CLOSED, EYES_BOX, visible=False)
    layers = PortraitLayers.model_validate(
        {"mouthA": "Layer 7", "mouthClosed": "layer 8", "eyesOpen": "Group 2/Layer 3", "eyesClosed": "Group 2/Layer 4"}
    )

    portrait = read_psd(saved(psd, tmp_path / "odd.psd"), layers)

    assert pixel(portrait.mouths["a"], MOUTH_AT) == (*MOUTH_COLOURS["a"], 255)
    assert pixel(portrait.mouths["closed"], MOUTH_AT) == (*MOUTH_COLOURS["closed"], 255)
    assert pixel(portrait.mouths["o"], MOUTH_AT) == (*MOUTH_COLOURS["a"], 255), "o stands in from a, the nearest"
    assert pixel(portrait.eyes["open"], EYES_AT) == (*OPEN, 255)
    assert pixel(portrait.eyes["closed"], EYES_AT) == (*CLOSED, 255)
    assert pixel(portrait.base, MOUTH_AT) == (*BODY, 255), "the mapped layers are not in the base"
    assert pixel(portrait.base, EYES_AT) == (*BODY, 255)


def test_an_explicit_layer_overrides_the_convention_for_its_state_only(tmp_path: Path) -> None:
    layers = PortraitLayers.model_validate({"mouthA": "顔/口/*い"})

    portrait = read_psd(saved(toolkit(), tmp_path / "zunda.psd"), layers)

    assert pixel(portrait.mouths["a"], MOUTH_AT) == (*MOUTH_COLOURS["i"], 255)
    assert pixel(portrait.mouths["o"], MOUTH_AT) == (*MOUTH_COLOURS["o"], 255)


@pytest.mark.parametrize(
    ("mapping", "field", "where"),
    [
        ({"mouthA": "口/あ"}, "spec.cast[].portrait.layers.mouthA", "it has: 顔, 体"),
        ({"eyesClosed": "顔/目/ウインク"}, "spec.cast[].portrait.layers.eyesClosed", "顔/目 has: *閉じ, *開き"),
    ],
)
def test_a_mapped_layer_that_is_not_there_names_the_field_and_what_there_is(
    tmp_path: Path, mapping: dict[str, str], field: str, where: str
) -> None:
    file = saved(toolkit(), tmp_path / "zunda.psd")

    with pytest.raises(PortraitError) as raised:
        read_psd(file, PortraitLayers.model_validate(mapping))

    message = str(raised.value)
    assert message.startswith(f"{field}: no layer {next(iter(mapping.values()))} in {file}")
    assert where in message


def test_missing_mouths_are_filled_from_the_nearest_shape_and_missing_eyes_never_blink(tmp_path: Path) -> None:
    psd = body()
    mouth = group(psd, "くち")
    rect(mouth, "*あ", MOUTH_COLOURS["a"], MOUTH_BOX)
    rect(mouth, "*う", MOUTH_COLOURS["u"], MOUTH_BOX, visible=False)

    portrait = read_psd(saved(psd, tmp_path / "two-mouths.psd"))

    shown = {shape: pixel(portrait.mouths[shape], MOUTH_AT)[:3] for shape in MOUTHS}
    assert shown == {
        "a": MOUTH_COLOURS["a"],
        "i": MOUTH_COLOURS["u"],
        "u": MOUTH_COLOURS["u"],
        "e": MOUTH_COLOURS["a"],
        "o": MOUTH_COLOURS["u"],
        "closed": MOUTH_COLOURS["u"],
    }
    assert portrait.eyes["open"].getbbox() is None, "without eyes layers the eyes stay in the base"
    assert portrait.eyes["closed"].getbbox() is None


def test_of_several_mouth_groups_the_one_shown_is_used(tmp_path: Path) -> None:
    psd = body()
    expressions = group(psd, "表情")
    for name, visible, colour in (("*通常", True, MOUTH_COLOURS["a"]), ("*笑顔", False, MOUTH_COLOURS["e"])):
        expression = group(expressions, name, visible=visible)
        rect(group(expression, "口"), "*あ", colour, MOUTH_BOX)

    portrait = read_psd(saved(psd, tmp_path / "faces.psd"))

    assert pixel(portrait.mouths["a"], MOUTH_AT) == (*MOUTH_COLOURS["a"], 255)


def test_with_only_closed_eyes_found_the_choice_shown_beside_them_is_the_open_eyes(tmp_path: Path) -> None:
    psd = body()
    rect(group(psd, "口"), "あ", MOUTH_COLOURS["a"], MOUTH_BOX)
    eyes = group(psd, "目パチ")
    rect(eyes, "*ぱっちり", OPEN, EYES_BOX)
    rect(eyes, "*閉じ", CLOSED, EYES_BOX, visible=False)
    layers = PortraitLayers.model_validate({"eyesOpen": "目パチ/ぱっちり"})

    for portrait in (read_psd(saved(psd, tmp_path / "blink.psd")), read_psd(tmp_path / "blink.psd", layers)):
        assert pixel(portrait.eyes["open"], EYES_AT) == (*OPEN, 255)
        assert pixel(portrait.eyes["closed"], EYES_AT) == (*CLOSED, 255)
        assert pixel(portrait.base, EYES_AT) == (*BODY, 255)


def test_a_psd_without_mouth_layers_is_refused(tmp_path: Path) -> None:
    file = saved(body(), tmp_path / "mute.psd")

    with pytest.raises(PortraitError, match="has no mouth layers") as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


# What the base is made of


def test_the_base_holds_what_shows_and_nothing_hidden(tmp_path: Path) -> None:
    psd = toolkit()
    rect(psd, "帽子", (1, 1, 1), HAT_BOX, visible=False)
    hidden = group(psd, "眼鏡", visible=False)
    rect(hidden, "レンズ", (2, 2, 2), EYES_BOX)
    rect(psd, "!影", (3, 3, 3), (0, 29, 40, 1), visible=False)
    rect(psd, "*服A", (4, 4, 4), (0, 26, 40, 2), visible=False)
    rect(psd, "*服B", (5, 5, 5), (0, 26, 40, 2), visible=False)
    rect(psd, "体:flipx", (6, 6, 6), (0, 8, 40, 22))

    portrait = read_psd(saved(psd, tmp_path / "dressed.psd"))

    assert pixel(portrait.base, HAT_AT) == CLEAR, "a hidden layer"
    assert pixel(portrait.base, EYES_AT) == (*BODY, 255), "a visible layer in a hidden group"
    assert pixel(portrait.base, (5, 29)) == (3, 3, 3, 255), "`!` shows whatever its visibility"
    assert pixel(portrait.base, (5, 27)) == (5, 5, 5, 255), "a radio set with no choice visible shows its topmost"
    assert pixel(portrait.base, (5, 10)) == (*BODY, 255), "a :flipx layer shows only when flipped"


def test_the_other_choices_of_a_states_radio_set_are_not_in_the_base(tmp_path: Path) -> None:
    psd = body()
    mouth = group(psd, "口")
    rect(mouth, "*あ", MOUTH_COLOURS["a"], MOUTH_BOX, visible=False)
    rect(mouth, "*にやり", (11, 11, 11), MOUTH_BOX)
    rect(mouth, "!輪郭", (12, 12, 12), (0, 29, 40, 1))

    portrait = read_psd(saved(psd, tmp_path / "grin.psd"))

    assert pixel(portrait.base, MOUTH_AT) == (*BODY, 255), "the grin would show under every mouth"
    assert pixel(portrait.base, (5, 29)) == (12, 12, 12, 255), "what is not a choice stays"


def test_a_state_layer_alone_keeps_the_opacity_of_the_groups_around_it(tmp_path: Path) -> None:
    psd = body()
    rect(group(group(psd, "顔", opacity=128), "口"), "*あ", MOUTH_COLOURS["a"], MOUTH_BOX)

    portrait = read_psd(saved(psd, tmp_path / "faint.psd"))

    assert pixel(portrait.mouths["a"], MOUTH_AT) == (*MOUTH_COLOURS["a"], 128)


def test_a_radio_set_shows_its_visible_choice(tmp_path: Path) -> None:
    psd = toolkit()
    rect(psd, "*服A", (4, 4, 4), (0, 26, 40, 2))
    rect(psd, "*服B", (5, 5, 5), (0, 26, 40, 2), visible=False)

    portrait = read_psd(saved(psd, tmp_path / "dressed.psd"))

    assert pixel(portrait.base, (5, 27)) == (4, 4, 4, 255)


def test_layers_are_placed_at_their_offsets_cut_to_the_canvas_and_faded_by_their_opacity(tmp_path: Path) -> None:
    psd = toolkit()
    rect(psd, "はみ出し", (7, 7, 7), (-10, -10, 12, 12))
    rect(psd, "半透明", (8, 8, 8), (30, 0, 10, 4), opacity=128)
    veil = group(psd, "ベール", opacity=128)
    rect(veil, "布", (9, 9, 9), (30, 4, 10, 2))

    portrait = read_psd(saved(psd, tmp_path / "placed.psd"))

    assert pixel(portrait.base, (0, 0)) == (7, 7, 7, 255)
    assert pixel(portrait.base, (1, 1)) == (7, 7, 7, 255)
    assert pixel(portrait.base, (2, 2)) == CLEAR
    assert pixel(portrait.base, (35, 1)) == (8, 8, 8, 128)
    assert pixel(portrait.base, (35, 5)) == (9, 9, 9, 128)


def test_a_layer_whose_transparency_is_a_pixel_mask_keeps_it(tmp_path: Path) -> None:
    # An RGB document carries no transparency channel: psd-tools' writer keeps a layer's alpha as its pixel mask.
    psd = toolkit(mode="RGB")
    half = Image.new("RGBA", (10, 2), (*OPEN, 255))
    half.paste((0, 0, 0, 0), (5, 0, 10, 2))
    psd.create_pixel_layer(half, top=0, left=0).name = "髪飾り"

    portrait = read_psd(saved(psd, tmp_path / "masked.psd"))

    assert pixel(portrait.base, (1, 1)) == (*OPEN, 255)
    assert pixel(portrait.base, (7, 1)) == CLEAR
    assert pixel(portrait.mouths["a"], MOUTH_AT) == (*MOUTH_COLOURS["a"], 255)


# Hostile files


def test_a_header_claiming_a_huge_canvas_is_refused_before_parsing(tmp_path: Path, never_parsed: None) -> None:
    file = saved(toolkit(), tmp_path / "bomb.psd")
    patched(file, 14, (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big"))

    with pytest.raises(PortraitError, match="30000x30000 pixels") as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (4, (2).to_bytes(2, "big"), "is a PSB"),
        (4, (7).to_bytes(2, "big"), "version 7"),
        (22, (32).to_bytes(2, "big"), "32-bit channels"),
        (22, (1).to_bytes(2, "big"), "1-bit channels"),
        (12, (57).to_bytes(2, "big"), "declares 57 channels"),
        (24, (4).to_bytes(2, "big"), "CMYK colour mode"),
        (0, b"8BPX", "not a PSD"),
    ],
)
def test_a_header_this_reader_cannot_use_is_refused_before_parsing(
    tmp_path: Path, never_parsed: None, offset: int, value: bytes, reason: str
) -> None:
    file = patched(saved(toolkit(), tmp_path / "odd.psd"), offset, value)

    with pytest.raises(PortraitError, match=reason) as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path, never_parsed: None) -> None:
    file = saved(toolkit(), tmp_path / "huge.psd")
    with file.open("r+b") as handle:
        handle.truncate(MAX_PSD_BYTES + 1)  # sparse: no disk spent

    with pytest.raises(PortraitError, match="a portrait PSD may be at most") as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


def test_too_many_layers_are_refused(tmp_path: Path) -> None:
    one = body()
    one.save(tmp_path / "one.psd")
    # Through psd-tools' records rather than its layer API, which takes over a minute for 2,100 layers.
    many = PSDImage.open(tmp_path / "one.psd")
    info = many._record.layer_and_mask_information.layer_info
    assert info is not None
    count = MAX_LAYERS + 100
    info.layer_records.extend([info.layer_records[0]] * (count - 1))
    info.channel_image_data.extend([info.channel_image_data[0]] * (count - 1))
    info.layer_count = count
    file = saved(many, tmp_path / "many.psd")

    with pytest.raises(PortraitError, match=f"has {count:,} layers") as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


def test_a_layer_larger_than_a_portrait_may_be_is_refused_before_it_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    psd = toolkit()
    rect(psd, "背景", (13, 13, 13), (-5, 0, 50, 30))
    file = saved(psd, tmp_path / "wide.psd")
    monkeypatch.setattr(psd_module, "MAX_PORTRAIT_PIXELS", SIZE[0] * SIZE[1])  # the canvas passes, the layer not

    with pytest.raises(PortraitError, match="layer '背景' is 50x30 pixels") as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


def test_the_pixels_decoded_for_one_portrait_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = saved(toolkit(), tmp_path / "zunda.psd")
    monkeypatch.setattr(psd_module, "MAX_DECODED_PIXELS", 40 * 22 + 12 * 2)  # the body and the brows, no more

    with pytest.raises(PortraitError, match="a portrait may decode at most") as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


@pytest.mark.parametrize(
    ("contents", "reason"),
    [
        (bytes(range(256)) * 40, "is not a PSD"),
        (b"", "is not a PSD"),
        (b"8BPS", "is not a PSD"),
    ],
)
def test_garbage_is_refused_naming_the_file(tmp_path: Path, contents: bytes, reason: str) -> None:
    file = tmp_path / "garbage.psd"
    file.write_bytes(contents)

    with pytest.raises(PortraitError, match=reason) as raised:
        read_psd(file)
    assert str(file) in str(raised.value)


@pytest.mark.parametrize("keep", [26, 60, 200, 600])
def test_a_damaged_psd_is_refused_naming_the_file(tmp_path: Path, keep: int) -> None:
    whole = saved(toolkit(), tmp_path / "whole.psd").read_bytes()
    file = tmp_path / "cut.psd"
    file.write_bytes(whole[:keep] + b"\xff" * 64)

    with pytest.raises(PortraitError, match="damaged or unsupported PSD") as raised:
        read_psd(file)
    assert str(raised.value).startswith(str(file))


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PortraitError, match="cannot be read") as raised:
        read_psd(tmp_path / "nowhere.psd")
    assert str(tmp_path / "nowhere.psd") in str(raised.value)
