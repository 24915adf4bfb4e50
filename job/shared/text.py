"""Outside text made fit to read aloud and to set on a slide, whether a feed or a language model wrote it: HTML
stripped, entities decoded (twice-escaped ones too), web addresses, emoji and invisible characters dropped,
whitespace squeezed the way Japanese and English each need, and long text cut at a sentence, word or clause
boundary. A model's words also lose their Markdown (`model_words`)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from html.parser import HTMLParser

import emoji

TITLE_CHARS = 300
"""Longest title kept."""
SOURCE_CHARS = 100
"""Longest source (feed) name kept."""
# Raw text handed to the HTML cleaner is cut first: cleaning is linear, but there is no point in cleaning
# megabytes to keep two thousand characters.
_RAW_TEXT_FACTOR = 20
_MESSAGE_CHARS = 600
_HEADLINE_MIN_CHARS = 12

_BREAK = "\u2029"  # marks a block boundary (paragraph, list item, <br>) until whitespace is squeezed
_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt", "figcaption"}
    | {"figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p"}
    | {"pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
)
_HIDDEN_TAGS = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "head", "title", "svg", "math"}
)
# Entities or tags that survive one round of HTML decoding mean the feed escaped its HTML twice.
_ENTITY = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_LEFTOVER_TAG = re.compile(
    r"</?(?:p|br|div|span|a|b|i|u|em|strong|img|font|li|ul|ol|h[1-6]|blockquote|small|sup|sub)\b[^<>]*>", re.I
)
_WHITESPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uffef]")
_CJK_STOPS = "。．！？」』）】〉》"
# Invisible characters that only get in the way of speech and layout: control characters (whitespace
# controls excepted, they are squeezed later), zero-width space, word joiner, BOM, soft hyphen.
_INVISIBLE: dict[int, None] = {
    c: None for c in range(0xA0) if unicodedata.category(chr(c)) == "Cc" and not chr(c).isspace()
}
_INVISIBLE.update(dict.fromkeys([0x200B, 0x2060, 0xFEFF, 0x00AD]))
# A web address is never read out ("h t t p s colon slash slash …") nor set as a subtitle; where a sentence names
# one, the words around it stay. Bare domains ("python.org") are words and stay too.
_WEB_ADDRESS = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)(?:[^\s<>\"'「」『』（）()、。]*[^\s<>\"'「」『』（）()、。.,!?:;])?", re.I
)
# An address in brackets goes with its brackets ("(https://…)" leaves no "()"), and with the spaces around it.
# It starts only where a run of whitespace does ((?<!\s)): tried from inside every run, a long one would cost
# its length squared.
_UNSAYABLE = re.compile(
    rf"(?<!\s)\s*(?:[(（\[]\s*(?:{_WEB_ADDRESS.pattern})\s*[)）\]]|{_WEB_ADDRESS.pattern}|\ufffc)\s*", re.I
)
_CLOSING_MARKS = "、。，,.!?！？:：;；)）]」』"
# Markdown a model writes although told not to: emphasis, code, headings, bullets, links (the text kept).
_MARKDOWN_LINK = re.compile(r"!?\[([^\]\n]{0,500})\]\([^)\s]{0,2048}\)")
# Emphasis spans one line and a few hundred characters at most: an opener without a closer then costs a bounded
# look ahead, not the rest of the text.
_MARKDOWN_MARKS = re.compile(
    r"(\*{1,3}|_{2,3}|`+|~~)(?=\S)([^\n]{1,300}?)(?<=\S)\1|(?<!\w)(_)(?=\S)([^\n]{1,300}?)(?<=\S)_(?!\w)"
)
_MARKDOWN_LINE = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|[-*+•][ \t]+|>[ \t]?)", re.M)
_SENTENCE_END = re.compile(r"[。！？]+[」』）)\"”’]*|[.!?]+[\"”’)\]]*(?=\s)")


class _TextExtractor(HTMLParser):
    """The text of an HTML fragment: entities decoded, script/style and the like dropped, block
    boundaries marked."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(_BREAK)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(_BREAK)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _strip_html(markup: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return "".join(extractor.parts)


def plain_text(value: object, detail: object = None, *, limit: int = TITLE_CHARS) -> str:
    """Plain text of a feed field: HTML stripped (when feedparser says it is HTML, or cannot say), entities
    decoded, whitespace normalised. Not yet shortened; raw input beyond a multiple of `limit` is ignored."""
    raw = str(value or "")[: limit * _RAW_TEXT_FACTOR]
    kind = str(detail.get("type", "")) if isinstance(detail, Mapping) else ""
    text = _strip_html(raw) if "html" in kind or not kind else raw
    if _ENTITY.search(text):
        text = html.unescape(text)
    if _LEFTOVER_TAG.search(text):
        text = _strip_html(text)
    return squeeze(_without_addresses_and_emoji(text))


def model_words(text: str, *, limit: int) -> str:
    """A language model's words, cleaned as feed text is (markup, entities, web addresses, emoji, control
    characters) after their Markdown is unwrapped: `**bold**` and `[text](url)` keep their words."""
    raw = text[: limit * _RAW_TEXT_FACTOR]
    raw = _MARKDOWN_LINK.sub(r"\1", raw)
    raw = _MARKDOWN_LINE.sub("", raw)
    raw = _MARKDOWN_MARKS.sub(lambda m: m.group(2) or m.group(4), raw)
    return plain_text(raw, limit=limit)


def _without_addresses_and_emoji(text: str) -> str:
    return _UNSAYABLE.sub(_gap, emoji.replace_emoji(text, "\ufffc"))


def _gap(match: re.Match[str]) -> str:
    """What stands where an address or emoji was: nothing between two CJK characters or before a closing mark
    ("see https://… ." keeps no space before its full stop), else a space."""
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    return "" if (_CJK.match(before) and _CJK.match(after)) or (after and after in _CLOSING_MARKS) else " "


def squeeze(text: str) -> str:
    """One space for each run of whitespace (NBSP, ideographic space U+3000 and the like included); none
    for a line break inside Japanese or Chinese text, where it is only source formatting; none after a
    sentence-ending mark at a block boundary between CJK characters."""
    text = text.translate(_INVISIBLE)

    def space(match: re.Match[str]) -> str:
        before = text[match.start() - 1] if match.start() > 0 else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if _CJK.match(before) and _CJK.match(after):
            run = match.group()
            if _BREAK in run:
                return "" if before in _CJK_STOPS else " "
            if "\n" in run or "\r" in run:
                return ""
        return " "

    return _WHITESPACE.sub(space, text).strip()


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: cut after the last whole sentence if that keeps at least half,
    else at a word (or Japanese clause) boundary with "…", else hard with "…"."""
    if len(text) <= limit:
        return text
    floor = limit // 2
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit + 1) if floor <= m.end() <= limit]
    if ends:
        return text[: ends[-1]]
    room = limit - 1  # for the "…"
    space = text.rfind(" ", floor, room + 1)
    if space > 0:
        return text[:space].rstrip(" ,;:、，") + "…"
    clause = max(text.rfind(mark, floor, room) for mark in "、，,")
    if clause > 0:
        return text[:clause] + "…"
    return text[:room] + "…"


def headline(text: str, limit: int) -> tuple[str, str]:
    """A title for an item that has none (RSS 2.0 allows that; microblog posts, Mastodon's among them, never
    have one), made from its text: the first sentence, and the rest of the text to go with it, so that nothing
    is read twice. A first sentence longer than `limit` is shortened, and the text is then kept whole.

    A sentence of fewer than a dozen characters ("U.S.", "Dr.", "速報です。") runs on into the next one."""
    first = text
    for end in _SENTENCE_END.finditer(text):
        if end.end() >= _HEADLINE_MIN_CHARS:
            first = text[: end.end()]
            break
    if len(first) > limit:
        return shorten(first, limit), text
    return first, text[len(first) :].strip()


def one_line(text: str) -> str:
    return shorten(_WHITESPACE.sub(" ", text.translate(_INVISIBLE)).strip(), _MESSAGE_CHARS)
