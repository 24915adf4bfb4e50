"""Feed text: what is kept of it. Most of the cleaning is tested through whole feeds in test_news.py; here, the
title made for an item that has none."""

from __future__ import annotations

import pytest

from job.news.text import headline


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
