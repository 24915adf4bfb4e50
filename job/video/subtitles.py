"""SRT and WebVTT subtitles from the render's cues, and parsers for both (the tests read the files back).

In a dialogue each cue names its speaker: WebVTT with a voice span (`<v 四国めたん>…`, which players use to style and
announce the speaker), SRT, which has no such thing, with the name before the words ("四国めたん: …").

A cue's text is one line: whitespace runs (but Japanese full-width spaces) become single spaces, so a cue can
never contain the blank line that ends a cue in both formats. WebVTT escapes & < > (which also rules out "-->"
in a cue); SRT has no escaping, so its "-->" is replaced by an arrow that cannot be mistaken for a timing line.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from job.model import Cue

# Runs of whitespace other than U+3000, the ideographic space Japanese headlines use between phrases.
_WHITESPACE = re.compile(r"[^\S\u3000]+")
_VOICE = re.compile(r"^<v(?:\.[^\s>]+)*\s+(?P<name>[^>]*)>")
_TIMING = re.compile(
    r"^\s*(?P<start>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})\s+-->\s+(?P<end>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})(?:\s.*)?$"
)


def cue_text(text: str) -> str:
    """The text as a cue carries it: one line, no "-->". Japanese full-width spaces are kept."""
    return _WHITESPACE.sub(" ", text).strip().replace("-->", "→")


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{number}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n{_named(cue)}\n"
        for number, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [
        f"{number}\n{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{_voiced(cue)}\n"
        for number, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def _named(cue: Cue) -> str:
    text = cue_text(cue.text)
    return f"{cue_text(cue.speaker)}: {text}" if cue.speaker else text


def _voiced(cue: Cue) -> str:
    text = _escape_vtt(cue_text(cue.text))
    return f"<v {_escape_vtt(cue_text(cue.speaker))}>{text}" if cue.speaker else text


def parse_srt(text: str) -> list[Cue]:
    """The cues of an SRT file; text lines of a cue are joined with a space."""
    return [cue for block in _blocks(text) if (cue := _cue(block, unescape=False)) is not None]


def parse_vtt(text: str) -> list[Cue]:
    """The cues of a WebVTT file (header, NOTE, STYLE and REGION blocks skipped; entities unescaped; a voice span
    at the start of a cue is its speaker)."""
    blocks = _blocks(text)
    if not blocks or not blocks[0][0].startswith("WEBVTT"):
        raise ValueError("not a WebVTT file: it must start with WEBVTT")
    return [cue for block in blocks[1:] if (cue := _cue(block, unescape=True)) is not None]


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _blocks(text: str) -> list[list[str]]:
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block]


def _cue(block: list[str], *, unescape: bool) -> Cue | None:
    for position, line in enumerate(block[:2]):
        if timing := _TIMING.match(line):
            text = " ".join(line.strip() for line in block[position + 1 :])
            if not unescape:
                return Cue(_seconds(timing["start"]), _seconds(timing["end"]), text)
            voice = _VOICE.match(text)
            speaker = html.unescape(voice["name"]) if voice else ""
            text = html.unescape(_VOICE.sub("", text, count=1).replace("</v>", ""))
            return Cue(_seconds(timing["start"]), _seconds(timing["end"]), text, speaker)
    return None


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    seconds = float(parts[-1]) + 60 * int(parts[-2])
    if len(parts) == 3:
        seconds += 3600 * int(parts[0])
    return seconds
