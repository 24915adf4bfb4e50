"""The script stage: stories in, the anchor's words out, split into sentences short enough for TTS.

The built-in templates greet with the date and time in the broadcast's time zone, give each story a segment
(headline, then the first sentences of its summary) with a transition, and sign off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from api.v1alpha1 import Script as ScriptSpec
from job.model import Script, Segment, Story

Language = Literal["ja", "en"]

# How much of a story's summary is read out: enough for the gist, short enough for a news round-up.
_SUMMARY_SENTENCES = 3
_SUMMARY_CHARS = {"ja": 160, "en": 360}

_WEEKDAYS_JA = "月火水木金土日"
_ORDINALS_EN = ("First", "Next", "Next", "Also today", "Next", "Then", "Next", "Meanwhile", "Next", "Next")

_JA_END = "。！？!?"
# Marks that belong to the words before them: a sentence ends after the whole run of them ("本当ですか！？」…"),
# and a cut never leaves them at the head of the next piece.
_CLOSERS = "」』）)］]】〉》〕｝}”’\"'"
_TRAILING = _JA_END + "．.…‥、，,；;：:" + _CLOSERS
_OPENERS = "「『（(［[【〈《〔｛{“‘"
# A Japanese sentence ends at a run of end marks and the marks that trail them, unless a quotation goes on into
# its sentence (「やった！」と話しました); a line break ends one too.
_JA_SPLIT = re.compile(
    rf"((?>[{re.escape(_JA_END)}][{re.escape(_TRAILING)}]*+))(?!(?<=[{re.escape(_CLOSERS)}])(?:と|って))|\n+"
)
_EN_END = re.compile(r"[.!?][\"')\]]?\s+")
# Words after which a full stop does not end an English sentence ("U.S. Senate", "Mr. Smith", "J. Smith").
_EN_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "vs",
    "no",
    "jr",
    "sr",
    "prof",
    "gen",
    "gov",
    "sen",
    "rep",
}


def write_script(
    stories: Sequence[Story],
    spec: ScriptSpec,
    *,
    title: str,
    aired_at: datetime,
    cast: Sequence[str] = (),
    story_texts: Sequence[str] | None = None,
) -> Script:
    """The script for these stories, aired at `aired_at` (aware, broadcast time zone): the built-in templates', or,
    with `story_texts` (an LLM's words, one per story, job/script/llm.py), those words after each story's transition.

    `cast` names the presenters, the lead first (without one, spec.anchorName alone); the lead says everything
    (a dialogue is job/script/dialogue.py's)."""
    if not stories:
        raise ValueError("a script needs at least one story")
    if story_texts is not None and len(story_texts) != len(stories):
        raise ValueError(f"{len(story_texts)} texts for {len(stories)} stories")
    cast = tuple(cast) or (spec.anchor_name,)
    segments = _monologue(stories, spec, title=title, aired_at=aired_at, anchor=cast[0], story_texts=story_texts)
    return Script(
        language=spec.language, title=title, anchor_name=cast[0], aired_at=aired_at, segments=segments, cast=cast
    )


def _monologue(
    stories: Sequence[Story],
    spec: ScriptSpec,
    *,
    title: str,
    aired_at: datetime,
    anchor: str,
    story_texts: Sequence[str] | None,
) -> tuple[Segment, ...]:
    language: Language = spec.language
    limit = spec.max_sentence_chars
    intro = _intro(language, title, anchor, aired_at, len(stories))
    segments = [Segment("intro", tuple(split_sentences(intro, language, limit)))]
    for index, story in enumerate(stories):
        words = story_words(language, story, index, len(stories))
        if story_texts is not None:
            words = lead(language, index, len(stories)) + story_texts[index]
        segments.append(Segment("story", tuple(split_sentences(words, language, limit)), story))
    outro = _outro(language, title, anchor)
    segments.append(Segment("outro", tuple(split_sentences(outro, language, limit))))
    return tuple(segments)


def _intro(language: Language, title: str, anchor: str, at: datetime, count: int) -> str:
    opening = welcome(language, title, at)
    if language == "ja":
        return f"{opening}担当は{anchor}です。今回は{count}本のニュースをお伝えします。"
    stories = "one story" if count == 1 else f"{count} stories"
    return f"{opening} I'm {anchor}, and here are {stories} for you."


def welcome(language: Language, title: str, at: datetime) -> str:
    """The greeting for the time of day, the programme and the date and time it airs."""
    if language == "ja":
        greeting = "おはようございます" if 4 <= at.hour < 10 else "こんにちは" if at.hour < 18 else "こんばんは"
        date = f"{at.month}月{at.day}日、{_WEEKDAYS_JA[at.weekday()]}曜日"
        return f"{greeting}。{title}の時間です。{date}、{at.hour}時{at.minute:02d}分になりました。"
    greeting = "Good morning" if 4 <= at.hour < 12 else "Good afternoon" if at.hour < 18 else "Good evening"
    return f"{greeting}, and welcome to {title}. It is {at:%A}, {at.day} {at:%B}, {at:%H:%M}."


def lead(language: Language, index: int, count: int) -> str:
    """The transition into story `index`, as words that stand before what is said about it."""
    last = index == count - 1 and count > 1
    if language == "ja":
        return "最初のニュースです。" if index == 0 else "最後のニュースです。" if last else "続いてのニュースです。"
    return ("And finally" if last else _ORDINALS_EN[min(index, len(_ORDINALS_EN) - 1)]) + ". "


def story_words(language: Language, story: Story, index: int, count: int) -> str:
    """What is said about story `index` of `count`: its transition, headline, source and the first of its summary."""
    summary = _opening(story.summary, language)
    last = index == count - 1 and count > 1
    if language == "ja":
        headline = story.title if story.title.endswith(tuple(_JA_END)) else f"{story.title}。"
        source = f"{story.source}によりますと、" if story.source else ""
        body = f"{source}{summary}" if summary else ""
        return f"{lead(language, index, count)}{headline}{body}"
    opening = "And finally" if last else _ORDINALS_EN[min(index, len(_ORDINALS_EN) - 1)]
    source = f"from {story.source}" if story.source else "in the news"
    headline = story.title if story.title.endswith((".", "!", "?")) else f"{story.title}."
    return f"{opening}, {source}: {headline} {summary}".strip()


def _outro(language: Language, title: str, anchor: str) -> str:
    if language == "ja":
        return f"以上、{title}でした。お相手は{anchor}でした。それでは、また次回お会いしましょう。"
    return f"That's all for {title}. I'm {anchor}. Thank you for watching, and see you next time."


def _opening(summary: str, language: Language) -> str:
    """The first sentences of a summary, within the language's budget; never a cut-off half sentence if avoidable."""
    sentences = split_sentences(summary, language, limit=10_000)
    budget = _SUMMARY_CHARS[language]
    taken: list[str] = []
    for sentence in sentences[:_SUMMARY_SENTENCES]:
        if taken and sum(map(len, taken)) + len(sentence) > budget:
            break
        taken.append(sentence)
    text = ("" if language == "ja" else " ").join(taken)
    if len(text) > budget:
        text = text[:budget].rstrip("、, ") + ("…。" if language == "ja" else "…")
    elif text and language == "ja" and not text.endswith(tuple(_JA_END)):
        text += "。"
    return text


def split_sentences(text: str, language: Language, limit: int) -> list[str]:
    """Sentences at natural boundaries (runs of 。！？ and newlines for ja), each at most `limit` characters.

    A piece with nothing to say ("！？", "…", "※", "（）") is not a sentence of its own: the engine speaks it as no
    sound at all, so it joins the sentence before it (or, at the start, the one after it)."""
    if language == "ja":
        parts = _JA_SPLIT.split(text)  # text, end, text, end, ..., text; `end` is None at a line break
        pieces = [parts[i] + (parts[i + 1] or "") for i in range(0, len(parts) - 1, 2)] + [parts[-1]]
    else:
        pieces = _split_english(text)
    joiner = "" if language == "ja" else " "
    sentences: list[str] = []
    pending = ""  # symbols met before the first sentence
    for piece in pieces:
        piece = " ".join(piece.split())
        if not piece:
            continue
        if not _speakable(piece):
            if sentences:
                sentences[-1] += joiner + piece
            else:
                pending += (joiner if pending else "") + piece
            continue
        sentences.append((pending + joiner + piece) if pending else piece)
        pending = ""
    return [fitted for sentence in sentences for fitted in _fit(sentence, language, limit)]


def _speakable(text: str) -> bool:
    """Whether the text has anything to read out: a letter or a digit, in any script."""
    return any(ch.isalnum() for ch in text)


def _split_english(text: str) -> list[str]:
    pieces, start = [], 0
    for end in _EN_END.finditer(text):
        words = text[start : end.start()].split()
        last = words[-1].rstrip(".").split(".")[-1].lower() if words else ""
        if text[end.start()] == "." and (len(last) == 1 or last in _EN_ABBREVIATIONS):
            continue
        pieces.append(text[start : end.end()])
        start = end.end()
    pieces.append(text[start:])
    return pieces


def _fit(sentence: str, language: Language, limit: int) -> list[str]:
    """Split a too-long sentence at the pause (、 , ; : and the like) nearest its middle; cut elsewhere as a last
    resort. Either way the cut keeps each mark with the words it belongs to and leaves something to say on both
    sides, whenever the sentence allows it."""
    if len(sentence) <= limit:
        return [sentence]
    spoken = [i for i, ch in enumerate(sentence) if ch.isalnum()]

    def clean(position: int) -> bool:
        """Whether both parts keep something to say, no mark loses the words it closes or opens."""
        head, tail = sentence[:position].rstrip(), sentence[position:].lstrip()
        return (
            bool(head and tail and spoken)
            and spoken[0] < len(head)
            and spoken[-1] >= len(sentence) - len(tail)
            and tail[0] not in _TRAILING
            and head[-1] not in _OPENERS
        )

    pauses = "、，,；;：:" if language == "ja" else ",;:"
    middle = len(sentence) // 2
    candidates = [_past_trailing(sentence, i + 1) for i, ch in enumerate(sentence[:-1]) if ch in pauses]
    if language == "en" and not candidates:
        candidates = [i for i, ch in enumerate(sentence) if ch == " "]
    target = middle
    candidates = [i for i in candidates if clean(i)]
    if not candidates:  # no usable pause: the clean cut nearest the hard limit, else the hard limit itself
        target = min(limit, middle)
        candidates = [i for i in range(1, len(sentence)) if clean(i)] or [target]
    cut = min(candidates, key=lambda i: abs(i - target))
    head, tail = sentence[:cut].strip(), sentence[cut:].strip()
    if not head or not tail:
        head, tail = sentence[:limit], sentence[limit:]
    return _fit(head, language, limit) + _fit(tail, language, limit)


def _past_trailing(sentence: str, position: int) -> int:
    """The position after any marks that close what comes before `position` ("、」" stays together)."""
    while position < len(sentence) and sentence[position] in _TRAILING:
        position += 1
    return position
