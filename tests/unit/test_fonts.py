"""Font resolution and glyph coverage: Japanese must be drawable, and nothing the font lacks is ever drawn."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fontTools.ttLib import TTCollection, TTFont

from job.model import ConfigError
from job.video.fonts import NO_JAPANESE_FONT, Font, contains_cjk, drawable, open_font, resolve_font

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NOTO = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
needs_dejavu = pytest.mark.skipif(not DEJAVU.is_file(), reason="DejaVu Sans (fonts-dejavu-core) is not installed")
JAPANESE = "気象庁、週末にかけて全国的に気温が下がる見通し。「カタカナ」（ー）"


def _resolve_without_system_fonts(
    setting: str | None, tmp_path: Path, env: dict[str, str] | None = None, *, japanese: bool = False
) -> Font:
    """resolve_font, with the system's font directories replaced by an empty one."""
    empty = tmp_path / "no-fonts"
    empty.mkdir(exist_ok=True)
    return resolve_font(setting, env=env or {}, japanese=japanese, system_fonts=(), system_dirs=(empty,))


def _ipaex(tmp_path: Path) -> Font:
    font = _resolve_without_system_fonts(None, tmp_path)
    assert font.path.name == "ipaexg.ttf", "anchor[fonts] (japanize-matplotlib) ships IPAexGothic"
    return font


def test_without_a_setting_the_ipaex_gothic_of_anchor_fonts_covers_japanese(tmp_path: Path) -> None:
    font = _ipaex(tmp_path)
    assert font.name == "IPAexGothic"
    assert font.has_japanese
    assert font.covers(JAPANESE + "Breaking news: 25% up, €3…") == set()
    assert font.covers("ニュース😀🇯🇵") == {"😀", "🇯", "🇵"}


@needs_dejavu
def test_a_latin_font_reports_japanese_missing_and_is_refused_for_a_japanese_broadcast() -> None:
    font = resolve_font(DEJAVU.name, base_dir=DEJAVU.parent, env={})
    assert font.path == DEJAVU and font.name == "DejaVu Sans"
    assert font.covers("日本語 News。") == {"日", "本", "語", "。"}
    assert not font.has_japanese
    with pytest.raises(ConfigError) as refused:
        resolve_font(DEJAVU.name, base_dir=DEJAVU.parent, env={}, japanese=True)
    message = str(refused.value)
    assert message.startswith("spec.video.font: DejaVu Sans")
    assert str(DEJAVU) in message and NO_JAPANESE_FONT in message


@needs_dejavu
def test_anchor_font_is_used_when_the_spec_sets_none_and_refused_when_it_lacks_japanese(tmp_path: Path) -> None:
    env = {"ANCHOR_FONT": str(DEJAVU)}
    assert _resolve_without_system_fonts(None, tmp_path, env).path == DEJAVU
    with pytest.raises(ConfigError, match=r"^ANCHOR_FONT: .*no Japanese glyphs"):
        _resolve_without_system_fonts(None, tmp_path, env, japanese=True)
    # The spec's setting wins over the environment.
    assert _resolve_without_system_fonts(str(_ipaex(tmp_path).path), tmp_path, env).name == "IPAexGothic"


def test_settings_that_name_no_font_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^spec.video.font: no font file at {tmp_path}/fonts/missing.ttf$"):
        resolve_font("fonts/missing.ttf", base_dir=tmp_path, env={})
    (tmp_path / "notes.ttf").write_text("not a font")
    with pytest.raises(ConfigError, match=r"^spec.video.font: .*notes.ttf is not a usable TTF, OTF or TTC font"):
        resolve_font("notes.ttf", base_dir=tmp_path, env={})
    with pytest.raises(ConfigError, match=r"^ANCHOR_FONT: no font file at /nowhere/font.otf"):
        resolve_font(None, env={"ANCHOR_FONT": "/nowhere/font.otf"})


def test_system_fonts_are_searched_for_japanese_ones_before_the_bundled_font(tmp_path: Path) -> None:
    fonts_dir = tmp_path / "share-fonts" / "opentype" / "ipaexfont-gothic"
    fonts_dir.mkdir(parents=True)
    system_copy = fonts_dir / "ipaexg.ttf"
    shutil.copy(_ipaex(tmp_path).path, system_copy)
    font = resolve_font(None, env={}, system_fonts=(), system_dirs=(tmp_path / "share-fonts",))
    assert font.path == system_copy


@needs_dejavu
def test_a_collection_opens_on_its_japanese_face_and_a_bold_sibling_is_found(tmp_path: Path) -> None:
    collection = TTCollection()
    collection.fonts = [TTFont(DEJAVU), TTFont(_ipaex(tmp_path).path)]
    collection.save(tmp_path / "Mixed-Regular.ttc")
    shutil.copy(tmp_path / "Mixed-Regular.ttc", tmp_path / "Mixed-Bold.ttc")
    font = open_font(tmp_path / "Mixed-Regular.ttc")
    assert (font.index, font.name) == (1, "IPAexGothic")
    assert font.bold is not None and font.bold.path.name == "Mixed-Bold.ttc" and font.bold.index == 1
    assert font.has_japanese
    assert font.pillow(40).getname()[0] == "IPAexGothic"


@pytest.mark.skipif(not NOTO.is_file(), reason="Debian's fonts-noto-cjk is not installed")
def test_noto_sans_cjk_opens_on_its_jp_face_with_its_bold_file() -> None:
    font = open_font(NOTO)
    assert font.index == 0 and "JP" in font.name
    assert font.bold is not None and font.bold.path.name == "NotoSansCJK-Bold.ttc"


def test_drawable_strips_what_the_font_lacks_and_says_what(tmp_path: Path) -> None:
    font = _ipaex(tmp_path)
    assert drawable(font, "速報：\t円安が\n進む") == ("速報： 円安が 進む", set())
    text, missing = drawable(font, "株価😀 急騰 🚀🚀 \x00です")
    assert text == "株価 急騰 です"
    assert missing == {"😀", "🚀", "\x00"}
    assert font.covers(text) == set()


def test_cjk_is_detected_in_any_script() -> None:
    assert contains_cjk("Tokyo (東京) stocks")
    assert contains_cjk("カタカナ") and contains_cjk("서울")
    assert not contains_cjk("Zürich café — “quoted” …")
