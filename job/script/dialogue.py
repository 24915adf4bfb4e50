"""The built-in dialogue (spec.script.format: dialogue): two or three presenters take turns as TV news does.

The lead greets and names the programme, each presenter introduces themself, and the stories go round the cast:
the one who presents a story reads its facts (the same words a monologue gives it, or the LLM's) and hands over
to the next presenter by name; the next one adds a short bridge, thanking them by name, and presents the next story.
After the last story another presenter thanks the one who read it, and the lead signs off for the whole cast. The
bridges say nothing about the news: every fact comes from the stories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from api.v1alpha1 import Script as ScriptSpec
from job.model import Script, Segment, Story
from job.script.templates import Language, lead, split_sentences, story_words, welcome

# Bridges vary from story to story so that the same words do not come round every time.
_THANKS = {
    "ja": (
        "{p}さん、ありがとうございます。",
        "{p}さん、ありがとうございました。",
        "はい、{p}さん、ありがとうございます。",
    ),
    "en": ("Thank you, {p}.", "Thanks, {p}.", "Thank you for that, {p}."),
}
_HANDOVER = {
    "ja": ("では、{n}さん、お願いします。", "続いては{n}さんです。", "ここからは{n}さんにお願いします。"),
    "en": ("Over to you, {n}.", "{n} has the next story.", "{n}, over to you."),
}


def write_dialogue(
    stories: Sequence[Story],
    spec: ScriptSpec,
    *,
    title: str,
    aired_at: datetime,
    cast: Sequence[str],
    story_texts: Sequence[str] | None = None,
    turns: Sequence[Sequence[Turn]] | None = None,
) -> Script:
    """The dialogue of `cast` (two or three names, the lead first) about these stories; with `story_texts` (an LLM's
    words, one per story), those are what each story's presenter reads after its transition; with `turns` (an LLM's
    dialogue, per story, job/script/llm.py), those are each story's lines, the templates' transition before the
    first."""
    if len(cast) < 2:
        raise ValueError("a dialogue needs at least two presenters")
    if not stories:
        raise ValueError("a script needs at least one story")
    if story_texts is not None and len(story_texts) != len(stories):
        raise ValueError(f"{len(story_texts)} texts for {len(stories)} stories")
    if turns is not None and (len(turns) != len(stories) or not all(turns)):
        raise ValueError(f"turns for {len(turns)} stories (each needs one at least) where there are {len(stories)}")
    language: Language = spec.language
    lines = _Lines(language, spec.max_sentence_chars)
    count = len(stories)

    lines.say(cast[0], welcome(language, title, aired_at) + _introduce(language, cast[0]))
    for name in cast[1:-1]:
        lines.say(name, _introduce(language, name))
    lines.say(cast[-1], _introduce(language, cast[-1]) + _count(language, count))
    segments = [lines.segment("intro")]

    for index, story in enumerate(stories):
        if turns is not None:
            for number, turn in enumerate(turns[index]):  # the model's dialogue
                lines.say(turn.speaker, (lead(language, index, count) if number == 0 else "") + turn.text)
            segments.append(lines.segment("story", story))
            continue
        presenter = cast[index % len(cast)]
        following = cast[(index + 1) % len(cast)]
        words = story_words(language, story, index, count)
        if story_texts is not None:
            words = lead(language, index, count) + story_texts[index]
        if index < count - 1:
            words += ("" if language == "ja" else " ") + _pick(_HANDOVER, language, index).format(n=following)
        lines.say(presenter, words)
        lines.say(following, _pick(_THANKS, language, index).format(p=presenter))
        segments.append(lines.segment("story", story))

    outro = _sign_off(language, title, cast)
    lines.say(cast[0], outro[0])
    lines.say(cast[1], outro[1])
    segments.append(lines.segment("outro"))
    return Script(
        language=language,
        title=title,
        anchor_name=cast[0],
        aired_at=aired_at,
        segments=tuple(segments),
        cast=tuple(cast),
        format="dialogue",
    )


@dataclass(frozen=True)
class Turn:
    """One presenter's words in a dialogue a model wrote."""

    speaker: str
    text: str


class _Lines:
    """Sentences and who says each, gathered until they make a segment."""

    def __init__(self, language: Language, limit: int) -> None:
        self.language, self.limit = language, limit
        self.sentences: list[str] = []
        self.speakers: list[str] = []

    def say(self, speaker: str, words: str) -> None:
        sentences = split_sentences(words, self.language, self.limit)
        self.sentences += sentences
        self.speakers += [speaker] * len(sentences)

    def segment(self, kind: Literal["intro", "story", "outro"], story: Story | None = None) -> Segment:
        made = Segment(kind, tuple(self.sentences), story, tuple(self.speakers))
        self.sentences, self.speakers = [], []
        return made


def _pick(choices: Mapping[str, tuple[str, ...]], language: Language, index: int) -> str:
    options = choices[language]
    return options[index % len(options)]


def _introduce(language: Language, name: str) -> str:
    return f"{name}です。" if language == "ja" else f" I'm {name}."


def _count(language: Language, count: int) -> str:
    if language == "ja":
        return f"今回は{count}本のニュースをお伝えします。"
    return " Here is one story for you." if count == 1 else f" Here are {count} stories for you."


def _sign_off(language: Language, title: str, cast: Sequence[str]) -> tuple[str, str]:
    """The lead's sign-off naming the whole cast, and the second presenter's farewell."""
    if language == "ja":
        names = "と".join(cast) if len(cast) == 2 else "、".join(cast[:-1]) + "と" + cast[-1]
        return f"以上、{title}でした。お相手は{names}でした。", "それでは、また次回お会いしましょう。"
    others = " and ".join(cast[1:])
    return f"That's all for {title}. I'm {cast[0]}, with {others}.", "Thank you for watching, and see you next time."
