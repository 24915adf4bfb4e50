"""Outside text: what is kept of it. Most of the cleaning is tested through whole feeds in test_news.py and through
a model's answers in test_llm.py; here, what neither a voice nor a subtitle should carry, and the title made for an
item that has none."""

from __future__ import annotations

import pytest

from job.shared.text import headline, model_words, plain_text


@pytest.mark.parametrize(
    ("text", "title", "rest"),
    [
        ("The council met on Monday. It approved the plan.", "The council met on Monday.", "It approved the plan."),
        ("U.S. stocks fell on Monday. Oil rose.", "U.S. stocks fell on Monday.", "Oil rose."),  # not "U.S."
        (
            "速報です。北海道で震度４。津波の心配はありません。",
            "速報です。北海道で震度４。",
            "津波の心配はありません。",
        ),
        ("No full stop anywhere #tag", "No full stop anywhere #tag", ""),
        ("", "", ""),
    ],
)
def test_the_title_is_the_first_sentence_and_the_rest_is_the_text(text: str, title: str, rest: str) -> None:
    assert headline(text, 300) == (title, rest)


def test_a_first_sentence_too_long_for_a_title_is_shortened_and_the_text_kept_whole() -> None:
    text = "word " * 100 + "end. Next sentence."
    title, rest = headline(text, 60)
    assert len(title) <= 60 and title.endswith("…") and text.startswith(title[:-1])
    assert rest == text


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("Read more at https://example.com/a?b=c&d=e.", "Read more at."),
        ("The report (https://example.com/r.pdf) is out", "The report is out"),
        ("See www.example.com/page for details", "See for details"),
        ("詳細は https://example.jp/ja/ を参照。", "詳細はを参照。"),
        ("Python 3.14 is out at python.org today", "Python 3.14 is out at python.org today"),  # a name, not a link
        ("🚀 Launch succeeds 👍🏽 as 🇯🇵 team cheers", "Launch succeeds as team cheers"),
        ("家族👨‍👩‍👧で参加🎉しました", "家族で参加しました"),  # a ZWJ sequence goes whole
        ("Tab\there\x07 and bell", "Tab here and bell"),
        ("&lt;b&gt;Bold&lt;/b&gt; move", "Bold move"),
    ],
)
def test_feed_text_keeps_no_address_emoji_or_control_character(raw: str, kept: str) -> None:
    assert plain_text(raw, {"type": "text/html"}) == kept


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("**Breaking:** the _vote_ is `today`", "Breaking: the vote is today"),
        ("## Headline\n- first point\n* second point", "Headline first point second point"),
        ("See [the report](https://example.com/r) now", "See the report now"),
        ("2 * 3 = 6 and a_b_c", "2 * 3 = 6 and a_b_c"),  # not emphasis
    ],
)
def test_a_models_markdown_is_unwrapped_and_its_words_kept(raw: str, kept: str) -> None:
    assert model_words(raw, limit=300) == kept


def test_hostile_runs_of_spaces_and_unclosed_emphasis_are_read_in_one_pass() -> None:
    """Read quadratically, these took 28 s (40,000 spaces) and 9 s (20,000 openers); at these sizes that would be
    hours, far past the suite's timeout: the test fails by hanging if a pattern goes back to scanning from every
    position."""
    assert plain_text(" " * 400_000 + "words", {"type": "text/plain"}, limit=30_000) == "words"
    assert model_words("*a " * 100_000 + "end", limit=20_000).endswith("*a *a end")
    assert model_words("**bold** and _it_", limit=100) == "bold and it"
