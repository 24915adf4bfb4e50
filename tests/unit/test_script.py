"""The script stage: templates per language, date and time in the broadcast's zone, TTS-sized sentences."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from api.v1alpha1 import Script as ScriptSpec
from job.model import Story
from job.script.templates import split_sentences, write_script

TOKYO = ZoneInfo("Asia/Tokyo")


def _story(title: str, summary: str = "", source: str = "Example News") -> Story:
    return Story(title=title, link=f"https://news.example.com/{len(title)}", source=source, summary=summary)


def _spec(**fields: object) -> ScriptSpec:
    return ScriptSpec.model_validate(fields)


def test_japanese_script_has_greeting_with_local_date_one_segment_per_story_and_sign_off() -> None:
    stories = [
        _story("新しい防災計画を発表", "東京都は24日、新しい防災計画を発表しました。避難所を2割増やします。"),
        _story("自動運転バスが運行開始", "山あいの町で実証運行が始まりました。"),
    ]
    aired = datetime(2026, 11, 24, 7, 5, tzinfo=TOKYO)
    script = write_script(stories, _spec(anchorName="ずんだもん"), title="朝のニュース", aired_at=aired)
    kinds = [s.kind for s in script.segments]
    assert kinds == ["intro", "story", "story", "outro"]
    intro = "".join(script.segments[0].sentences)
    assert "おはようございます" in intro and "11月24日、火曜日" in intro and "7時05分" in intro
    assert "ずんだもん" in intro and "2本" in intro
    assert script.segments[1].story is stories[0]
    assert "最初のニュースです。" in script.segments[1].sentences
    assert "最後のニュースです。" in script.segments[2].sentences
    assert any("避難所を2割増やします。" in s for s in script.segments[1].sentences)
    assert "朝のニュース" in "".join(script.segments[-1].sentences)


def test_greeting_follows_the_broadcast_time_zone_not_utc() -> None:
    # 22:30 UTC is 07:30 the next morning in Tokyo.
    utc_evening = datetime(2026, 11, 23, 22, 30, tzinfo=ZoneInfo("UTC"))
    script = write_script([_story("t")], _spec(), title="n", aired_at=utc_evening.astimezone(TOKYO))
    intro = "".join(script.segments[0].sentences)
    assert "おはようございます" in intro and "11月24日" in intro


def test_english_script_uses_english_templates() -> None:
    aired = datetime(2026, 11, 24, 19, 0, tzinfo=ZoneInfo("Europe/London"))
    stories = [
        _story("Night buses approved", "The council voted on Monday. Five routes will run."),
        _story("Caves"),
    ]
    script = write_script(stories, _spec(language="en", anchorName="Alex"), title="Anchor News", aired_at=aired)
    intro = " ".join(script.segments[0].sentences)
    assert intro.startswith("Good evening, and welcome to Anchor News.")
    assert "Tuesday, 24 November, 19:00" in intro and "I'm Alex" in intro
    assert script.segments[1].sentences[0] == "First, from Example News: Night buses approved."
    assert script.segments[2].sentences[0].startswith("And finally")


@pytest.mark.parametrize(("language", "limit"), [("ja", 20), ("ja", 40), ("en", 30), ("en", 60)])
def test_every_sentence_fits_the_tts_limit(language: str, limit: int) -> None:
    long_ja = (
        "これは、とても長い文章で、読点がたくさんあり、音声合成のために分割する必要がある文章で、まだ続きます。" * 3
    )
    long_en = "This sentence, which goes on and on, has many clauses; it keeps going, and going, and going. " * 3
    text = long_ja if language == "ja" else long_en
    sentences = split_sentences(text, language, limit)  # type: ignore[arg-type]
    assert all(len(s) <= limit for s in sentences)
    assert "".join(sentences).replace(" ", "") == text.replace(" ", "")


def test_japanese_splits_at_sentence_ends_and_newlines() -> None:
    assert split_sentences("一つ目。二つ目！三つ目？\n四つ目", "ja", 90) == [
        "一つ目。",
        "二つ目！",
        "三つ目？",
        "四つ目",
    ]


def test_english_does_not_split_after_abbreviations_or_initials() -> None:
    text = "The U.S. Senate voted. Mr. Smith agreed! J. R. Smith left. Price is 3.5 now."
    assert split_sentences(text, "en", 90) == [
        "The U.S. Senate voted.",
        "Mr. Smith agreed!",
        "J. R. Smith left.",
        "Price is 3.5 now.",
    ]


def test_long_summaries_are_shortened_to_the_opening_sentences() -> None:
    summary = "".join(f"{n}番目の文です。" for n in range(1, 30))
    script = write_script([_story("見出し", summary)], _spec(), title="n", aired_at=datetime(2026, 1, 1, tzinfo=TOKYO))
    spoken = "".join(script.segments[1].sentences)
    assert "1番目の文です。" in spoken and "3番目の文です。" in spoken and "4番目" not in spoken


def test_no_stories_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one story"):
        write_script([], _spec(), title="n", aired_at=datetime(2026, 1, 1, tzinfo=TOKYO))


def test_trailing_marks_stay_with_their_sentence() -> None:
    assert split_sentences("本当ですか！？そうです…。「やった！」と話しました。次です!?", "ja", 90) == [
        "本当ですか！？",
        "そうです…。",
        "「やった！」と話しました。",  # a quotation that goes on into its sentence is not cut after its 」
        "次です!?",
    ]
    assert split_sentences("彼は言った。「行こう。」そして歩いた。", "ja", 90) == [
        "彼は言った。",
        "「行こう。」",
        "そして歩いた。",
    ]
    assert split_sentences("Really?! Wait... !? Fine.", "en", 90) == ["Really?!", "Wait... !?", "Fine."]


def test_pieces_with_nothing_to_say_join_a_neighbour_instead_of_standing_alone() -> None:
    # The engine speaks "！？", "…", "※" or "（）" as no sound at all: alone, each would be a mute, empty cue.
    assert split_sentences("始めます。！？\n…\n※\n（）\n次です。", "ja", 90) == ["始めます。！？…※（）", "次です。"]
    assert split_sentences("！？\n※ 速報です。", "ja", 90) == ["！？※ 速報です。"]
    assert split_sentences("Done. ... !?", "en", 90) == ["Done. ... !?"]
    assert split_sentences("！？…\n※（）", "ja", 90) == []


@pytest.mark.parametrize("limit", [20, 21, 25, 40])
def test_a_cut_for_length_never_strands_punctuation(limit: int) -> None:
    text = "あ" * (limit - 1) + "！？」" + "い" * (limit + 3) + "、「" + "う" * 5 + "…。"
    sentences = split_sentences(text, "ja", limit)
    assert "".join(sentences) == text
    for sentence in sentences:
        assert len(sentence) <= limit
        assert any(ch.isalnum() for ch in sentence), sentence
        assert sentence[0] not in "！？」、…。" and sentence[-1] != "「", sentence


@pytest.mark.parametrize(("language", "seed"), [("ja", 1), ("ja", 2), ("en", 3)])
def test_every_sentence_has_something_to_say_and_fits(language: str, seed: int) -> None:
    rng = random.Random(seed)
    if language == "ja":
        words, marks, joiner = (
            ["ニュース", "東京", "です", "3", "発表"],
            ["。", "！？", "…", "※", "（）", "、", "」", "「"],
            "",
        )
    else:
        words, marks, joiner = ["news", "Tokyo", "is", "3", "out"], [".", "!?", "...", "*", "()", ",", '"'], " "
    text = joiner.join(rng.choice(words) if rng.random() < 0.6 else rng.choice(marks) for _ in range(400))
    sentences = split_sentences(text, language, 20)  # type: ignore[arg-type]
    assert "".join(sentences).replace(" ", "") == text.replace(" ", "")
    assert all(len(s) <= 20 and any(ch.isalnum() for ch in s) for s in sentences)


def test_a_dialogue_goes_round_the_cast_and_each_presenter_hands_over_by_name() -> None:
    from job.script.dialogue import write_dialogue

    stories = [Story(f"Story {n}", f"https://n.example/{n}", "Wire", f"Fact {n} happened.") for n in range(4)]
    evening = datetime(2026, 12, 4, 18, tzinfo=ZoneInfo("UTC"))
    script = write_dialogue(stories, ScriptSpec(language="en"), title="Evening News", aired_at=evening,
                            cast=["Ann", "Bo", "Cy"])  # fmt: skip
    assert (script.anchor_name, script.presenters, script.format) == ("Ann", ("Ann", "Bo", "Cy"), "dialogue")
    intro, *segments, outro = script.segments
    assert intro.speakers[0] == "Ann" and set(intro.speakers) == {"Ann", "Bo", "Cy"}
    for number, segment in enumerate(segments):
        presenter, following = ("Ann", "Bo", "Cy")[number % 3], ("Ann", "Bo", "Cy")[(number + 1) % 3]
        said = list(zip(segment.speakers, segment.sentences, strict=True))
        assert any(who == presenter and f"Fact {number} happened." in text for who, text in said)  # the facts
        assert any(who == following and presenter in text for who, text in said)  # the next one thanks them
        if number < len(segments) - 1:
            assert any(who == presenter and following in text for who, text in said)  # the hand-over, by name
        facts = " ".join(text for who, text in said if who != presenter)
        assert "Fact" not in facts and "Story" not in facts  # the bridges add no news
    assert outro.speakers[0] == "Ann" and "Bo and Cy" in outro.sentences[-2] + outro.sentences[-1] + outro.sentences[0]


def test_a_dialogue_needs_two_presenters() -> None:
    from job.script.dialogue import write_dialogue

    with pytest.raises(ValueError, match="at least two presenters"):
        write_dialogue([Story("T", "l", "s", "x.")], ScriptSpec(), title="t",
                       aired_at=datetime(2026, 12, 4, tzinfo=ZoneInfo("UTC")), cast=["solo"])  # fmt: skip
