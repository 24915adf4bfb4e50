"""Text wrapping as a pure function, measured in characters: 禁則, phrase breaks, Latin words, the ellipsis."""

from __future__ import annotations

from job.video.wrap import wrap, wrap_all


def _width(text: str) -> float:
    return float(len(text))


def test_japanese_wraps_anywhere_but_never_starts_a_line_with_closing_marks() -> None:
    lines = wrap("今日は晴れです。明日は「雨」でしょう。", 8, _width, 5)
    assert "".join(lines) == "今日は晴れです。明日は「雨」でしょう。"
    assert lines == ["今日は晴れです。", "明日は「雨」で", "しょう。"], "ょ took し along to the next line"
    assert wrap("あいうえおかき「くけ", 8, _width, 3) == ["あいうえおかき", "「くけ"], "「 never ends a line"


def test_a_full_width_space_near_the_end_of_a_line_is_where_a_headline_breaks() -> None:
    assert wrap("気温が下がる見通し　北日本で初雪", 12, _width, 3) == ["気温が下がる見通し", "北日本で初雪"]
    assert wrap("見通し　北日本では初雪の可能性", 12, _width, 3) == ["見通し　北日本では初雪の", "可能性"], "too early"


def test_latin_words_break_at_spaces_and_long_words_are_split() -> None:
    assert wrap("the quick brown fox jumps", 10, _width, 5) == ["the quick", "brown fox", "jumps"]
    assert wrap("see https://example.com/a/very/long/path now", 12, _width, 6) == [
        "see",
        "https://exam",
        "ple.com/a/ve",
        "ry/long/path",
        "now",
    ]
    assert wrap("日本語とEnglishの混在", 8, _width, 3) == ["日本語と", "Englishの", "混在"]


def test_text_beyond_the_last_line_is_cut_with_an_ellipsis() -> None:
    assert wrap("one two three four five six", 9, _width, 2) == ["one two", "three…"]
    assert wrap("あいうえおかきくけこさしすせそ", 5, _width, 2) == ["あいうえお", "かきくけ…"]
    assert wrap("短い", 5, _width, 0) == []


def test_nothing_to_wrap_is_no_lines() -> None:
    """Text the font could not draw reaches here empty: no lines, never an empty one."""
    for text in ("", " ", "   ", " \u3000 "):
        assert wrap(text, 8, _width, 3) == [], repr(text)
        assert wrap_all(text, 8, _width, 3) == [], repr(text)
