"""Parsing a feed document with feedparser in a separate, reused process, within a deadline and a memory cap.

feedparser is pure Python, and a hostile document can make it slow, make it raise, or make it swallow memory
(entities that expand quadratically pass its filter). So it runs in a process of its own: one deadline covers
starting that process, handing it the document and parsing; its address space is capped while it parses; a
parse that overruns either is ended by killing the process, and whatever the library raises becomes a one-line
reason (`ParseFailed`), never an exception of the caller. The process imports this module and the text cleaner
only, not the rest of the job.
"""

from __future__ import annotations

import atexit
import calendar
import contextlib
import io
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import unicodedata
import xml.sax
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import feedparser

from job.shared.text import SOURCE_CHARS, TITLE_CHARS, headline, one_line, plain_text, shorten
from job.shared.urls import without_userinfo

_LINK_CHARS = 2048
_GUID_CHARS = 500
_PIPE_CHUNK = 1 << 16


class ParseFailed(Exception):
    """Why a document gave no feed; the message follows the feed's URL in its report."""


@dataclass(frozen=True)
class Entry:
    """One feed entry, cleaned, as the parser process hands it back."""

    title: str
    link: str
    guid: str
    summary: str
    published: float | None
    """POSIX timestamp."""
    image: str = ""
    """The entry's picture (media:content, media:thumbnail or an image enclosure): an absolute http(s) URL, or ""."""


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    entries: tuple[Entry, ...]
    problem: str | None = None
    """Why the document is not a usable feed."""


@dataclass(frozen=True)
class ParseJob:
    data: bytes
    headers: dict[str, str]
    max_entries: int
    max_text_chars: int
    max_memory: int
    """Bytes of address space the parser process may use while it parses this document."""

    @classmethod
    def of(
        cls,
        data: bytes,
        *,
        content_type: str | None,
        location: str | None,
        max_entries: int,
        max_text_chars: int,
        max_memory: int,
    ) -> ParseJob:
        """A document with its HTTP Content-Type (charset) and final URL (base of relative links), if any."""
        headers = {}
        if content_type:
            headers["content-type"] = content_type
        if location:  # without its user:password, which relative links would otherwise carry onto the page
            headers["content-location"] = without_userinfo(location)
        return cls(data, headers, max_entries, max_text_chars, max_memory)


@dataclass(frozen=True)
class _Deadline:
    seconds: float
    end: float
    """time.monotonic() when it passes."""

    @classmethod
    def after(cls, seconds: float) -> _Deadline:
        return cls(seconds, time.monotonic() + seconds)

    @property
    def remaining(self) -> float:
        return self.end - time.monotonic()


class _OutOfMemory(ParseFailed):
    """The document needed more memory than the parser process may use."""


class ParserProcess:
    """One long-lived Python process that runs feedparser. Reusing it keeps the cost per feed to a few
    milliseconds; a parse that overruns its time, or runs out of its memory cap, is stopped by killing the
    process (the next parse starts a fresh one).

    It is a plain subprocess speaking JSON over its stdin/stdout rather than a multiprocessing worker: spawn
    re-imports the caller's __main__ in the child, which runs an unguarded script a second time.
    Documents go in as bytes after a JSON header line; answers come back as one JSON line (never pickle)."""

    _BOOTSTRAP = (
        "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
        "import job.news.parser_process as p; p._parser_main()"
    )

    def __init__(self, command: Sequence[str] | None = None) -> None:
        """`command` starts the process; by default `_parser_main` in a fresh interpreter with our import path."""
        self._command = list(command) if command is not None else None
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def parse(self, job: ParseJob, *, timeout: float) -> ParsedFeed:
        """The parsed document, within `timeout` seconds of the moment this parse has the process: starting a
        new process, handing it the document and parsing all count, so a hostile feed costs at most that.
        (Parses wait for each other: the time spent waiting for another feed's parse is not counted.)"""
        with self._lock:
            deadline = _Deadline.after(timeout)
            try:
                process = self._deliver(job, deadline)
                line = _read_line(process, deadline)
            except TimeoutError:
                self._stop()
                raise ParseFailed(
                    f"parsing took longer than {timeout:g} s (the document is too large or too complex)"
                ) from None
            if not line:
                code = process.poll()
                self._stop()
                raise ParseFailed(f"the feed parser process died (exit code {code})")
            try:
                return _answer(line, job.max_memory)
            except _OutOfMemory:
                self._stop()  # whatever it still holds goes with it
                raise

    @property
    def pid(self) -> int | None:
        """The process's id, None when none is running: one process serves feed after feed."""
        with self._lock:
            return self._process.pid if self._process is not None else None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _deliver(self, job: ParseJob, deadline: _Deadline) -> subprocess.Popen[bytes]:
        process = self._ready(deadline)
        try:
            _send(process, job, deadline)
        except BrokenPipeError:  # the process died since the last feed (not TimeoutError, another OSError)
            self._stop()
            process = self._ready(deadline)
            _send(process, job, deadline)
        return process

    def _ready(self, deadline: _Deadline) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        # -I: no user site or PYTHON* variables; the parent's import path is handed over explicitly.
        command = self._command or [sys.executable, "-I", "-c", self._BOOTSTRAP, json.dumps(sys.path)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self._process.stdin is not None:
            os.set_blocking(self._process.stdin.fileno(), False)  # _send waits with select, up to the deadline
        try:
            ready = _read_line(self._process, deadline) == b"ready\n"
        except TimeoutError:
            self._stop()
            raise ParseFailed(f"the feed parser process did not start within {deadline.seconds:g} s") from None
        if not ready:
            self._stop()
            raise ParseFailed("the feed parser process did not start")
        return self._process

    def _stop(self) -> None:
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(timeout=10)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._process = None


def _send(process: subprocess.Popen[bytes], job: ParseJob, deadline: _Deadline) -> None:
    """Hand `job` to the process, or TimeoutError when it has not taken all of it by `deadline` (BrokenPipeError
    when it is gone)."""
    if process.stdin is None:
        raise BrokenPipeError("no pipe to the parser process")
    header = {"size": len(job.data), "headers": job.headers, "max_memory": job.max_memory}
    header |= {"max_entries": job.max_entries, "max_text_chars": job.max_text_chars}
    fd = process.stdin.fileno()
    for part in (json.dumps(header).encode() + b"\n", job.data):
        pending = memoryview(part)
        while pending:
            remaining = deadline.remaining
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                raise TimeoutError
            with contextlib.suppress(BlockingIOError):  # less room than select promised: nothing written, wait again
                pending = pending[os.write(fd, pending[:_PIPE_CHUNK]) :]


def _read_line(process: subprocess.Popen[bytes], deadline: _Deadline) -> bytes:
    """The process's next line (b"" when it died), or TimeoutError when none has come by `deadline`."""
    if process.stdout is None:
        return b""
    fd = process.stdout.fileno()
    received = bytearray()
    while not received.endswith(b"\n"):
        remaining = deadline.remaining
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b""
        received += chunk
    return bytes(received)


def _answer(line: bytes, max_memory: int) -> ParsedFeed:
    try:
        answer = json.loads(line)
        if "out_of_memory" in answer:
            raise _OutOfMemory(
                f"the parser ran out of its {max_memory / (1 << 20):g} MiB memory cap"
                " (the document is too large or too complex)"
            )
        if "failed" in answer:
            raise ParseFailed(f"the feed parser failed: {answer['failed']}")
        feed = answer["parsed"]
        entries = tuple(Entry(**entry) for entry in feed["entries"])
        return ParsedFeed(str(feed["title"]), entries, feed["problem"])
    except (ValueError, KeyError, TypeError):
        raise ParseFailed("the feed parser process gave an unexpected answer") from None


PARSER = ParserProcess()
atexit.register(PARSER.close)


def _parser_main() -> None:
    """The parser process: parse documents until the other end closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends us.
    jobs = sys.stdin.buffer
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answers
    answers.write(b"ready\n")
    answers.flush()
    while header := jobs.readline():
        request = json.loads(header)
        data = jobs.read(request["size"])
        job = ParseJob(
            data, request["headers"], request["max_entries"], request["max_text_chars"], request["max_memory"]
        )
        _cap_memory(job.max_memory)
        try:
            answer = json.dumps({"parsed": asdict(_parse_document(job))})  # ASCII JSON: no raw newline inside
        except MemoryError:
            # What the parse built is still held by the traceback: lift the cap to have room to say so, then go.
            _cap_memory(None)
            answers.write(b'{"out_of_memory": true}\n')
            answers.flush()
            return
        except Exception as exc:  # any failure of the library on hostile input is a report, not a crash
            answer = json.dumps({"failed": one_line(f"{type(exc).__name__}: {exc}")[:300]})
        answers.write(answer.encode() + b"\n")
        answers.flush()


def _cap_memory(limit: int | None) -> None:
    """Cap this process's address space (None: lift the cap), so that a document that needs more, such as one
    whose entities expand quadratically, makes the parse raise MemoryError here instead of growing the process
    until the pod's memory limit kills the whole job."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if limit is None or (hard != resource.RLIM_INFINITY and limit > hard):
        limit = hard
    with contextlib.suppress(ValueError, OSError):  # a platform that refuses (macOS may) parses uncapped
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _parse_document(job: ParseJob) -> ParsedFeed:
    # A stream, never bytes or str: given those, feedparser would treat them as a URL or a file name to open.
    parsed = feedparser.parse(
        io.BytesIO(job.data), response_headers=job.headers, resolve_relative_uris=True, sanitize_html=True
    )
    feed = parsed.get("feed") or {}
    title = shorten(plain_text(feed.get("title", ""), feed.get("title_detail")), SOURCE_CHARS)
    entries = parsed.get("entries") or []
    if not entries:
        if parsed.get("version") and not isinstance(parsed.get("bozo_exception"), xml.sax.SAXException):
            return ParsedFeed(title, ())  # a feed with nothing in it (perhaps with a wrong charset)
        return ParsedFeed(title, (), problem=f"not an RSS or Atom feed{_why_not_a_feed(job.data, parsed)}")
    base = job.headers.get("content-location", "")
    cleaned = tuple(_entry(raw, job.max_text_chars, base) for raw in entries[: job.max_entries])
    return ParsedFeed(title, cleaned)


def _why_not_a_feed(data: bytes, parsed: Mapping[str, Any]) -> str:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head:
        return " (the document is empty)"
    if head.startswith((b"<!doctype html", b"<html")):
        return " (it is an HTML page)"
    error = parsed.get("bozo_exception")
    if isinstance(error, xml.sax.SAXParseException):
        return f" (XML error at line {error.getLineNumber()}: {error.getMessage()})"
    return ""


def _entry(raw: Mapping[str, Any], max_chars: int, base: str = "") -> Entry:
    """One entry, cleaned; `base` is the feed's own URL, which relative picture URLs are resolved against (the
    entry's link when the feed came from a file)."""
    title = shorten(plain_text(raw.get("title", ""), raw.get("title_detail")), TITLE_CHARS)
    summary = shorten(_body(raw, max_chars), max_chars)
    if not title:
        title, summary = headline(summary, TITLE_CHARS)
    link = _web_link(raw.get("link"))
    guid = one_line(str(raw.get("id") or ""))[:_GUID_CHARS] or link
    return Entry(title, link, guid, summary, _timestamp(raw), _picture(raw, base or link))


def _body(raw: Mapping[str, Any], max_chars: int) -> str:
    """The entry's text: the full content rather than the summary when it says more. feedparser files a Media
    RSS caption (media:description, the alt text of a picture: Mastodon puts one on every described image) as
    plain-text content too; it describes the picture, not the story, so it is only the text of last resort."""
    has_media = "media_content" in raw or "media_thumbnail" in raw
    texts = [plain_text(raw.get("summary", ""), raw.get("summary_detail"), limit=max_chars)]
    captions: list[str] = []
    for part in raw.get("content") or []:
        text = plain_text(part.get("value", ""), part, limit=max_chars)
        (captions if has_media and part.get("type") == "text/plain" else texts).append(text)
    return max(texts, key=len) or max(captions, key=len, default="")


def _timestamp(raw: Mapping[str, Any]) -> float | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = raw.get(key)
        if value:
            try:
                return float(calendar.timegm(value))  # feedparser's struct_time is UTC
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _web_link(value: object) -> str:
    link = str(value or "").strip()
    if len(link) > _LINK_CHARS or urlsplit(link).scheme.lower() not in ("http", "https"):
        return ""
    return link


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")


def _picture(raw: Mapping[str, Any], base: str) -> str:
    """The entry's own picture, best first: a Media RSS media:content that is an image, a media:thumbnail, then an
    enclosure (RSS <enclosure>, Atom link rel="enclosure") of an image type. "" when it names none that is an
    http(s) URL."""
    candidates = [item.get("url") for item in _dicts(raw.get("media_content")) if _is_image(item)]
    candidates += [item.get("url") for item in _dicts(raw.get("media_thumbnail"))]
    enclosures = _dicts(raw.get("enclosures"))  # feedparser files Atom's link rel="enclosure" here too
    candidates += [item.get("href") for item in enclosures if str(item.get("type") or "").lower().startswith("image/")]
    for candidate in candidates:
        url = web_url(candidate, base)
        if url:
            return url
    return ""


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _is_image(item: Mapping[str, Any]) -> bool:
    """A media:content is a picture when it says so (medium="image" or an image/* type), or says nothing and its
    URL ends like one."""
    medium, kind = str(item.get("medium") or "").lower(), str(item.get("type") or "").lower()
    if medium or kind:
        return medium == "image" or kind.startswith("image/")
    return urlsplit(str(item.get("url") or "")).path.lower().endswith(_IMAGE_SUFFIXES)


def web_url(value: object, base: str = "") -> str:
    """`value` resolved against `base`, when that gives an http(s) URL (never data:, javascript:, file:...),
    normalised (urlsplit's dropped tabs and newlines stay dropped) and without user:password; "" for text with
    control or invisible formatting characters, which no honest URL has."""
    text = str(value or "").strip()
    if not text or len(text) > _LINK_CHARS or any(unicodedata.category(c) in ("Cc", "Cf") for c in text):
        return ""
    try:
        parts = urlsplit(urljoin(base, text) if base else text)
    except ValueError:
        return ""
    url = without_userinfo(urlunsplit(parts))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or len(url) > _LINK_CHARS:
        return ""
    return url
