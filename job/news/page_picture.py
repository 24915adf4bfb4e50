"""The picture an article's page names for itself (og:image, else twitter:image), read from the page's head alone.

Only a bounded prefix of the page is downloaded, through job.news.fetch's guarded download (the address policy, pinned
addresses, redirects checked hop by hop, one deadline for all of it), and it is read with the standard library's
HTML parser, in pieces, stopping at the end of the head: never regular expressions, never the whole page.
"""

from __future__ import annotations

import codecs
import time
from html.parser import HTMLParser

from api.netguard import AddressPolicy
from job.news.fetch import FetchLimits, fetch_prefix, media_type
from job.news.parser_process import web_url

HEAD_BYTES = 512 * 1024
"""The most of a page read (after decompression): its head comes first, and is rarely a tenth of this."""
PARSE_SECONDS = 2.0
"""The most time spent parsing one page's prefix, checked between pieces of it: a crafted page cannot hold the run."""
_NAMES = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")
"""The meta tags that name a page's picture, best first."""
_PAGE_TYPES = ("", "text/html", "application/xhtml+xml")
_PIECE_CHARS = 8 * 1024


def page_picture(url: str, *, policy: AddressPolicy, limits: FetchLimits, max_bytes: int = HEAD_BYTES) -> str:
    """The absolute http(s) URL of the picture the page at `url` names in its head, or "" when it names none (or
    is no HTML page). Raises FetchFailed when the page cannot be read."""
    page = fetch_prefix(url, policy=policy, limits=limits, max_bytes=max_bytes, types=_PAGE_TYPES)
    if page.location is None or media_type(page.content_type) not in _PAGE_TYPES:
        return ""
    return picture_in_head(page.data, page.location, encoding=_charset(page.content_type))


def picture_in_head(html: bytes, base: str, *, encoding: str = "utf-8", budget: float = PARSE_SECONDS) -> str:
    """The picture that the head of `html` (a page at `base`, perhaps cut short) names, as an absolute http(s) URL
    (relative to the page's <base href> when it has one), or ""."""
    try:
        text = html.decode(encoding, errors="replace")
    except LookupError:
        text = html.decode("utf-8", errors="replace")
    parser = _Head()
    end = time.monotonic() + budget
    # In pieces, so that the parse stops at the end of the head and within its time; never close(): at the end of
    # a prefix, an unfinished tag is where the download was cut, not an error to report.
    for start in range(0, len(text), _PIECE_CHARS):
        parser.feed(text[start : start + _PIECE_CHARS])
        if parser.ended or time.monotonic() > end:
            break
    named = next((parser.found[name] for name in _NAMES if name in parser.found), "")
    return web_url(named, web_url(parser.base, base) or base)


class _Head(HTMLParser):
    """Collects a page head's picture meta tags and its <base href>, up to </head> or <body>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, str] = {}
        self.base = ""
        self.ended = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.ended:
            return
        if tag == "body":
            self.ended = True
            return
        values = {name: (value or "").strip() for name, value in attrs}
        if tag == "meta":
            key = (values.get("property") or values.get("name") or "").lower()
            if key in _NAMES and values.get("content"):
                self.found.setdefault(key, values["content"])
        elif tag == "base" and not self.base:
            self.base = values.get("href", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.ended = True


def _charset(content_type: str | None) -> str:
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
            try:
                return codecs.lookup(charset).name
            except LookupError:
                break
    return "utf-8"
