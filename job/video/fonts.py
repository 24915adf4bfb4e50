"""Fonts for the slides: find one that can draw the broadcast's language, and never draw a glyph it lacks.

A slide with tofu (the empty boxes a font draws for characters it has no glyph for) is a failed render, so:

- `resolve_font` picks the font: spec.video.font, else ANCHOR_FONT, else a Japanese-capable system font (Debian's
  fonts-noto-cjk, IPAex), else the IPAexGothic that the `anchor[fonts]` extra installs. When Japanese must be
  drawn and the font has no Japanese glyphs, it refuses with a ConfigError instead of rendering boxes.
- `Font.covers` reads the font's character map (once per file, with fontTools) and `drawable` removes whatever
  the font lacks (emoji, rare symbols from hostile feeds) from each string before it is drawn. What is left may
  be nothing at all (a headline of emoji): the slides draw nothing for it, never a box.
"""

from __future__ import annotations

import importlib.util
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont, TTLibError
from PIL import ImageFont

from job.model import ConfigError

NO_JAPANESE_FONT = (
    "no font with Japanese glyphs: set spec.video.font or ANCHOR_FONT to a CJK font (e.g. Debian fonts-noto-cjk) "
    "or install anchor[fonts]"
)
# Hiragana, katakana, common kanji and full-width punctuation: a font that has these can set Japanese news.
JAPANESE_SAMPLE = "日本語のニュースをお伝えします。カタカナ「」（）・ー"
_JAPANESE_CODEPOINTS = frozenset(map(ord, JAPANESE_SAMPLE))

# Where Debian's packages put Japanese-capable fonts, best first (fonts-noto-cjk, fonts-ipaexfont-gothic).
SYSTEM_FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf"),
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
)
SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"),)
# Names of other Japanese-capable fonts worth finding anywhere under the system font directories.
_CJK_FILE_PATTERNS = ("*CJK*Regular*", "*CJK*", "ipaexg*", "ipag*")
_LATIN_FALLBACKS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"),
)
_FONT_SUFFIXES = {".ttf", ".otf", ".ttc", ".otc"}
# Runs of whitespace other than U+3000, the ideographic space Japanese headlines use between phrases.
_WHITESPACE = re.compile(r"[^\S\u3000]+")
# Unicode categories of characters that draw nothing: controls (Cc) and format characters (Cf: U+200B, U+FEFF...).
_INVISIBLE = frozenset({"Cc", "Cf"})
# Punctuation that a removed emoji can leave doubled ("。🔥。").
_MARKS = frozenset("。、．，・.,!?！？")
_CJK = re.compile(r"[\u2e80-\u30ff\u3190-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


@dataclass(frozen=True)
class Font:
    """One face of a font file (`index` picks the face of a .ttc collection), and its bold face if there is one."""

    path: Path
    index: int = 0
    name: str = ""
    bold: Font | None = None

    def covers(self, text: str) -> set[str]:
        """The characters of `text` that this font (or its bold face) has no glyph for: the ones to leave out."""
        missing = {c for c in set(text) if ord(c) not in _codepoints(self.path, self.index)}
        if self.bold is not None:
            missing |= self.bold.covers(text)
        return missing

    @property
    def has_japanese(self) -> bool:
        return not self.covers(JAPANESE_SAMPLE)

    def pillow(self, size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
        """The face at `size` pixels for Pillow; the bold face when asked for and there is one."""
        face = self.bold if bold and self.bold is not None else self
        return _pillow_font(face.path, face.index, size)


def contains_cjk(text: str) -> bool:
    """Whether `text` has Chinese, Japanese or Korean characters, which a Latin-only font cannot draw."""
    return _CJK.search(text) is not None


def drawable(font: Font, text: str) -> tuple[str, set[str]]:
    """`text` as it may be drawn with `font`: whitespace runs made one space (Japanese full-width spaces kept
    where the font has them), characters the font lacks removed, and so are invisible control and format
    characters (zero-width spaces, byte order marks, bidi marks) even where the font maps them, so that text
    made only of them is empty in every font rather than an invisible line taking room.

    Returns the cleaned text (possibly empty) and the characters the font lacks (whitespace is never reported).
    """
    plain = _WHITESPACE.sub(" ", text).strip()
    missing = font.covers(plain)
    if "\u3000" in missing:
        plain = plain.replace("\u3000", " ")
    missing -= {" ", "\u3000"}
    dropped = missing | {c for c in set(plain) if unicodedata.category(c) in _INVISIBLE}
    if not dropped:
        return plain, set()
    return _WHITESPACE.sub(" ", _without(plain, dropped)).strip(), missing


def _without(text: str, dropped: set[str]) -> str:
    """`text` less the `dropped` characters; a mark that a dropped run left doubled is kept once ("です。🔥。"
    reads "です。", not "です。。")."""
    kept: list[str] = []
    after_gap = False
    for char in text:
        if char in dropped:
            after_gap = True
            continue
        if char.isspace():
            kept.append(char)
            continue
        previous = next((c for c in reversed(kept) if not c.isspace()), "")
        if not (after_gap and char == previous and char in _MARKS):
            kept.append(char)
        after_gap = False
    return "".join(kept)


def resolve_font(
    setting: str | None,
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] = os.environ,
    japanese: bool = False,
    system_fonts: Sequence[Path] = SYSTEM_FONTS,
    system_dirs: Sequence[Path] = SYSTEM_FONT_DIRS,
) -> Font:
    """The font to draw with: the setting (spec.video.font, relative to base_dir), else ANCHOR_FONT, else a
    Japanese-capable system font, else the IPAexGothic of anchor[fonts], else a Latin font.

    `japanese`: the text to draw includes Japanese, so a font without Japanese glyphs is a ConfigError rather
    than a video full of boxes. A font the user chose is never silently replaced by another.
    """
    if setting:
        path = Path(setting).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return _chosen(path, "spec.video.font", japanese)
    if env.get("ANCHOR_FONT"):
        return _chosen(Path(env["ANCHOR_FONT"]).expanduser(), "ANCHOR_FONT", japanese)
    for path in (*system_fonts, *_cjk_fonts_under(system_dirs), *_bundled_ipaex()):
        font = _try_open(path)
        if font is not None and font.has_japanese:
            return font
    if japanese:
        raise ConfigError(NO_JAPANESE_FONT)
    for path in (*_LATIN_FALLBACKS, *_any_font_under(system_dirs)):
        font = _try_open(path)
        if font is not None:
            return font
    raise ConfigError("no font found: set spec.video.font or ANCHOR_FONT to a TTF, OTF or TTC font file")


def _chosen(path: Path, setting: str, japanese: bool) -> Font:
    if not path.is_file():
        raise ConfigError(f"{setting}: no font file at {path}")
    try:
        font = open_font(path)
    except ValueError as exc:
        raise ConfigError(f"{setting}: {path} is not a usable TTF, OTF or TTC font ({exc})") from None
    if japanese and not font.has_japanese:
        raise ConfigError(f"{setting}: {font.name or path.name} ({path}) has no Japanese glyphs; {NO_JAPANESE_FONT}")
    return font


def open_font(path: Path) -> Font:
    """The font in `path`, with its Japanese face for a collection (.ttc) and its bold sibling file if any.

    Raises ValueError when the file is not a font that both fontTools and Pillow can read.
    """
    index, name = _preferred_face(path)
    _codepoints(path, index)  # reads the character map now, so a broken cmap fails here
    _pillow_font(path, index, 16)
    bold = None
    for sibling in _bold_siblings(path):
        try:
            bold_index, bold_name = _preferred_face(sibling)
            _codepoints(sibling, bold_index)
            _pillow_font(sibling, bold_index, 16)
        except ValueError:
            continue
        bold = Font(sibling, bold_index, bold_name)
        break
    return Font(path, index, name, bold)


def _try_open(path: Path) -> Font | None:
    if not path.is_file():
        return None
    try:
        return open_font(path)
    except ValueError:
        return None


def _preferred_face(path: Path) -> tuple[int, str]:
    """The face to use and its name: in a collection, the Japanese face ("... JP"), else one that has Japanese
    glyphs, else the first."""
    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            collection = TTCollection(str(path), lazy=True)
            try:
                names = [_family(face) for face in collection.fonts]
            finally:
                collection.close()
            if not names:
                raise ValueError("the collection has no fonts")
            for index, name in enumerate(names):
                if re.search(r"\bJP\b|Japanese", name):
                    return index, name
            for index, name in enumerate(names):
                if _codepoints(path, index) >= _JAPANESE_CODEPOINTS:
                    return index, name
            return 0, names[0]
        with TTFont(str(path), lazy=True) as font:
            return 0, _family(font)
    except (TTLibError, OSError, KeyError, AssertionError, IndexError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def _family(font: TTFont) -> str:
    if "name" not in font:
        return ""
    name = font["name"].getDebugName(4) or font["name"].getDebugName(1)
    return str(name or "")


@lru_cache(maxsize=32)
def _codepoints(path: Path, index: int) -> frozenset[int]:
    """The code points the face maps to a glyph; read once per face, since a CJK font's cmap is large."""
    try:
        with TTFont(str(path), fontNumber=index, lazy=True) as font:
            cmap = font.getBestCmap()
    except (TTLibError, OSError, KeyError, AssertionError, IndexError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    if not cmap:
        raise ValueError("the font has no Unicode character map")
    return frozenset(cmap)


@lru_cache(maxsize=64)
def _pillow_font(path: Path, index: int, size: int) -> ImageFont.FreeTypeFont:
    try:
        # The basic layout is deterministic and needs no libraqm; Japanese and Latin need no shaping.
        return ImageFont.truetype(str(path), size, index=index, layout_engine=ImageFont.Layout.BASIC)
    except OSError as exc:
        raise ValueError(f"Pillow cannot read it: {exc}") from None


def _bold_siblings(path: Path) -> list[Path]:
    """Bold faces shipped beside a regular one: NotoSansCJK-Regular.ttc → NotoSansCJK-Bold.ttc, X.ttf → X-Bold.ttf."""
    names = [path.name.replace("Regular", "Bold")] if "Regular" in path.name else []
    names.append(f"{path.stem}-Bold{path.suffix}")
    return [path.with_name(n) for n in names if n != path.name and path.with_name(n).is_file()]


def _cjk_fonts_under(directories: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for pattern in _CJK_FILE_PATTERNS:
            found += sorted(p for p in directory.rglob(pattern) if p.suffix.lower() in _FONT_SUFFIXES)
    # Regular weights first: a Bold file found by "*CJK*" is only a last resort for the body text.
    return sorted(dict.fromkeys(found), key=lambda p: ("Bold" in p.name, "Mono" in p.name))


def _any_font_under(directories: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for directory in directories:
        if directory.is_dir():
            found += sorted(p for p in directory.rglob("*") if p.suffix.lower() in _FONT_SUFFIXES)
    return found


def _bundled_ipaex() -> list[Path]:
    """IPAexGothic from the japanize-matplotlib package (anchor[fonts]), found without importing matplotlib."""
    spec = importlib.util.find_spec("japanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) / "fonts" / "ipaexg.ttf" for location in spec.submodule_search_locations]
