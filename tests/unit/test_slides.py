"""The slides drawn directly: text the font cannot draw (emoji, zero-width and control characters, rare kanji)
is left out of every picture, slides and burned-in subtitles alike, and a block left with nothing draws nothing.

The slides of an ordinary broadcast (layout, images, tofu in mixed text) are checked in test_render.py."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from api.v1alpha1 import Video
from job.model import Script, Segment, Story
from job.video.canvas import Block, Canvas, Painter, Picture
from job.video.fonts import Font, open_font, resolve_font
from job.video.slides import Studio, airtime

AIRED = datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
CREDIT = "VOICEVOX:ずんだもん"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
EMOJI = "🔥🔥🔥"
INVISIBLE = "\u200b\ufeff\u2060\x01\x7f\u00ad"
"""Zero-width space, byte order mark, word joiner, two control characters, a soft hyphen: nothing to see."""
RARE_KANJI = "\U0002a6d6\U00020001"
"""CJK Extension B characters that IPAexGothic (and Noto Sans CJK JP) have no glyph for."""
GLYPHLESS = ("", " \u3000 ", EMOJI, "😀", INVISIBLE, RARE_KANJI, f"{EMOJI} {INVISIBLE}\u3000{RARE_KANJI}")


@pytest.fixture(scope="module")
def ipaex() -> Font:
    return resolve_font(None, env={}, system_fonts=(), system_dirs=())


def _script(story: Story, *, title: str = "アンカーニュース", anchor: str = "ずんだもん") -> Script:
    segments = (
        Segment("intro", ("おはようございます。",)),
        Segment("story", ("最初のニュースです。",), story),
        Segment("outro", ("以上です。",)),
    )
    return Script("ja", title, anchor, AIRED, segments)


def _story(title: str, summary: str = "", source: str = "地域新聞") -> Story:
    return Story(title, "https://news.example/1", source, summary, AIRED)


def _pictures(studio: Studio, sentence: str) -> list[Picture]:
    slides = [studio.slide(n) for n in range(3)]
    return [*slides, *(studio.with_subtitle(slide, sentence) for slide in slides)]


# -- the parts (job/video/canvas.py) --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", GLYPHLESS)
def test_text_without_a_single_glyph_wraps_and_fits_to_no_lines(ipaex: Font, text: str) -> None:
    painter = Painter(ipaex)
    assert painter.clean(text) == ""
    assert painter.lines(text, 40, 600, 3) == []
    for balanced in (False, True):
        assert painter.fit(text, [(66, 3), (56, 4)], 600, bold=True, balanced=balanced) == (66, [], False)


@pytest.mark.skipif(not DEJAVU.is_file(), reason="DejaVu Sans is not installed")
def test_invisible_characters_are_dropped_even_from_a_font_that_maps_them() -> None:
    font = open_font(DEJAVU)
    assert not font.covers("\u200b\ufeff\u2060"), "DejaVu Sans has glyphs for zero-width characters"
    painter = Painter(font)
    assert painter.clean(f"{INVISIBLE}Tokyo\u200b news{INVISIBLE}") == "Tokyo news"
    assert painter.clean(INVISIBLE) == ""
    assert not painter.missing & {"\u200b", "\ufeff", "\u2060", "\u00ad"}, "what the font has is not missing"


def test_an_empty_block_takes_no_room_and_draws_nothing(ipaex: Font) -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    canvas = Canvas(image, Painter(ipaex))
    empty = Block((), 40, (255, 255, 255), space=30, bold=True)
    assert empty.empty and empty.height == 0
    assert canvas.stack([empty, empty], 100, 10, centred=True) == 10
    assert canvas.stack([empty], 0, 10) == 10
    assert image.getcolors() == [(200 * 100, (0, 0, 0))] and canvas.picture().texts == ()
    rule = Block((), 0, (255, 0, 0), space=5, rule=(40, 4))
    assert not rule.empty and rule.height == 9
    assert canvas.stack([empty, rule, empty], 100, 10, centred=True) == 10 + 9
    assert image.getpixel((100, 16)) == (255, 0, 0)
    assert Block((), 0, (255, 0, 0), rule=(0, 4)).empty and Block((), 0, (255, 0, 0), rule=(40, 0)).empty


def test_drawing_a_line_without_glyphs_draws_and_records_nothing(ipaex: Font) -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    canvas = Canvas(image, Painter(ipaex))
    for text in GLYPHLESS:
        assert canvas.text((10, 50), text, 30, (255, 255, 255), bold=True, anchor="lm") == 0.0
    assert image.getcolors() == [(200 * 100, (0, 0, 0))]
    assert canvas.picture() == Picture(image, (), ())


# -- whole slides ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", ["1920x1080", "1280x720", "1080x1920"])
@pytest.mark.parametrize("text", GLYPHLESS[2:])
def test_glyphless_text_draws_exactly_what_no_text_draws(ipaex: Font, resolution: str, text: str) -> None:
    """Title, summary, source, programme title and anchor name all undrawable: every picture is drawn, pixel for
    pixel as if they were empty, and a subtitle with nothing to show leaves the slide bare."""
    video = Video.model_validate({"resolution": resolution})
    studio = Studio(_script(_story(text, text, text), title=text, anchor=text), video, ipaex, CREDIT)
    blank = Studio(_script(_story("", "", ""), title="", anchor=""), video, ipaex, CREDIT)
    pictures, blanks = _pictures(studio, text), _pictures(blank, "")
    for picture, empty in zip(pictures, blanks, strict=True):
        assert picture.texts == empty.texts and picture.boxes == empty.boxes
        assert picture.image.tobytes() == empty.image.tobytes()
    assert all(pictures[n + 3] is pictures[n] for n in range(3)), "no subtitle band over the slide"
    drawn = [line for picture in pictures for line in picture.texts]
    assert any(CREDIT in line for line in drawn) and any(line.startswith("2026年11月24日") for line in drawn)
    assert all(line and not ipaex.covers(line) for line in drawn), drawn
    (warning,) = studio.warnings()
    assert all(f"U+{ord(c):04X}" in warning for c in ipaex.covers(text) - {" ", "\u3000"}), warning


def test_an_empty_headline_takes_no_room_on_its_card(ipaex: Font) -> None:
    studio = Studio(_script(_story(EMOJI)), Video.model_validate({"resolution": "1920x1080"}), ipaex, CREDIT)
    layout, image = studio.layout, studio.slide(1).image.convert("RGB")
    left, top, _, _ = layout.card
    x = left + layout.px(40) + 4  # inside the accent rule under the headline
    rule = next(y for y in range(top, layout.height) if image.getpixel((x, y)) == studio.palette.accent)
    assert rule == top + layout.px(40) + layout.px(16), "the rule is where the headline would have started"


def test_missing_glyphs_are_left_out_alike_on_the_slide_and_in_the_subtitle(ipaex: Font) -> None:
    title = f"株価が急騰{EMOJI}　市場は{RARE_KANJI}「過熱」{INVISIBLE}"
    studio = Studio(_script(_story(title)), Video.model_validate({"resolution": "1920x1080"}), ipaex, CREDIT)
    slide = studio.slide(1)
    subtitled = studio.with_subtitle(slide, title)
    on_card = [line for line in slide.texts if "株価" in line]
    on_band = list(subtitled.texts[len(slide.texts) :])
    assert on_card == on_band == ["株価が急騰　市場は「過熱」"]
    (warning,) = studio.warnings()
    assert "🔥 (U+1F525)" in warning and "U+2A6D6" in warning and "U+200B" in warning


def test_dates_are_written_the_way_each_language_writes_them() -> None:
    assert airtime(AIRED, "ja") == "2026年11月24日（火）7:00"
    assert airtime(AIRED, "en") == "Tuesday, 24 November 2026, 07:00"


def test_a_mark_left_doubled_by_a_dropped_emoji_is_drawn_once(ipaex: Font) -> None:
    painter = Painter(ipaex)
    assert painter.clean(f"最初のニュースです。{EMOJI}。") == "最初のニュースです。"
    assert painter.clean(f"Wow! {EMOJI} !") == "Wow!"
    assert painter.clean("Wait... 「」。。") == "Wait... 「」。。", "marks the text itself repeats are its own"
