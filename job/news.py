"""The news stage: read RSS/Atom feeds without trusting them, and turn their entries into clean `Story` objects.

A feed is someone else's server sending someone else's document, so everything about reading one is bounded:

* where we connect: the host is resolved once and every address is checked against an SSRF guard (loopback,
  private, link-local and cloud-metadata, CGNAT, unspecified, multicast and reserved addresses are refused
  unless the broadcast allows them); the connection is then pinned to the checked address, so a second DNS
  answer cannot rebind it elsewhere. Redirects are followed by hand, and every hop is checked the same way.
* how long: a connect timeout, a per-read timeout, and an overall deadline that shuts the socket down when it
  passes, so a server that drips a byte at a time cannot hold the broadcast.
* how much: bytes on the wire, bytes after decompression (decompression bombs), entries considered, and the
  length of every text kept.
* the parser: feedparser is pure Python, and a hostile document can make it slow or make it raise; it runs in
  a separate process that is killed when it overruns, and whatever it raises is reported, not propagated.

Whatever goes wrong with one feed becomes that feed's `FeedReport.error`, one line that names the feed's URL
(without credentials or token-like query values); the broadcast goes on with the other feeds.
"""

from __future__ import annotations

import atexit
import calendar
import html
import io
import json
import os
import re
import select
import signal
import ssl
import stat
import subprocess
import sys
import threading
import time
import unicodedata
import xml.sax
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

import feedparser
import requests
import urllib3

from api.netguard import AddressPolicy, AddressRefused, Deadline, GuardError, PinnedAdapter, resolve
from job.model import ConfigError, FeedReport, Story

if TYPE_CHECKING:
    from api.v1alpha1 import Feed, Sources

_USER_AGENT = "anchor/0.1 (+news anchor)"
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
_TITLE_CHARS = 300
_SOURCE_CHARS = 100
_LINK_CHARS = 2048
_GUID_CHARS = 500
# Raw text handed to the HTML cleaner is cut first: cleaning is linear, but there is no point in cleaning
# megabytes to keep two thousand characters.
_RAW_TEXT_FACTOR = 20
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES = 64 * 1024
_PARALLEL_FEEDS = 4
_FUTURE_SLACK = timedelta(days=1)
_MESSAGE_CHARS = 600
_ALLOW_HINT = (
    "to allow it, set sources.allowPrivateAddresses or list its network in sources.allowedAddresses"
    " (anchor news: --allow-private)"
)


@dataclass(frozen=True)
class FeedLimits:
    """What one feed may cost. The defaults suit production; tests shrink them."""

    connect_timeout: float = 5.0
    """Seconds to establish a connection (per address tried)."""
    read_timeout: float = 15.0
    """Seconds a read may wait for data, and also the overall deadline for the whole download, redirects
    included: a server that keeps sending a byte now and then is cut off when it passes."""
    max_bytes: int = 5 * 1024 * 1024
    """Largest body on the wire (and largest local file)."""
    max_decoded_bytes: int = 20 * 1024 * 1024
    """Largest body after gzip/deflate/br decompression: a small download can expand enormously."""
    max_redirects: int = 5
    """Most redirects followed."""
    max_entries: int = 200
    """Entries considered per feed (the first ones in the document)."""
    parse_timeout: float = 10.0
    """Seconds feedparser may spend on one document; it runs in a worker process that is killed after this."""
    max_text_chars: int = 2000
    """Longest story summary kept after cleaning (titles are capped at 300)."""


# -- public API ------------------------------------------------------------------------------------------


def read_sources(
    sources: Sources, *, now: datetime, base_dir: Path | None = None, limits: FeedLimits = FeedLimits()
) -> list[FeedReport]:
    """Read every feed of a broadcast's `sources`: one report per feed, in the spec's order.

    Feeds are downloaded a few at a time; each is bounded by `limits` on its own."""
    max_age = timedelta(hours=sources.max_age_hours) if sources.max_age_hours else None

    def read(feed: Feed) -> FeedReport:
        return read_feed(
            feed.url,
            feed_name=feed.name,
            max_items=feed.max_items or sources.max_items_per_feed,
            max_age=max_age,
            now=now,
            base_dir=base_dir,
            allow_private=sources.allow_private_addresses,
            allowed_networks=sources.allowed_addresses,
            limits=limits,
        )

    workers = max(1, min(_PARALLEL_FEEDS, len(sources.feeds)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="anchor-feed") as pool:
        return list(pool.map(read, sources.feeds))


def read_feed(
    url: str,
    *,
    feed_name: str | None = None,
    max_items: int,
    max_age: timedelta | None,
    now: datetime,
    base_dir: Path | None = None,
    allow_private: bool = False,
    allowed_networks: Sequence[str] = (),
    limits: FeedLimits = FeedLimits(),
    session: requests.Session | None = None,
) -> FeedReport:
    """Read one feed: an http(s) URL, a file:// URL, or a path (relative paths are taken from `base_dir`,
    else the working directory).

    Returns at most `max_items` stories, newest first (undated ones last), without duplicates and without
    stories published more than `max_age` before `now`. Never raises for a problem with the feed: the
    report's `error` says what went wrong. Raises ConfigError only for an invalid `allowed_networks` entry.

    `session`, when given, contributes its headers and TLS settings (verify, cert); its transport adapters
    are not used, because every connection must go to an address the guard has checked.
    """
    shown = _display_url(url)
    try:
        policy = AddressPolicy.of(allow_private, allowed_networks)
    except ValueError as exc:
        raise ConfigError(f"sources.allowedAddresses: {exc}") from None
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    try:
        document = _fetch(url, base_dir=base_dir, policy=policy, limits=limits, session=session)
        feed = _PARSER.parse(_ParseJob.of(document, limits), timeout=limits.parse_timeout)
    except _FeedProblem as problem:
        return FeedReport(shown, error=_one_line(f"{shown}: {problem}"))
    except Exception as exc:  # the contract: one feed's failure never stops the broadcast
        return FeedReport(shown, error=_one_line(f"{shown}: unexpected error: {type(exc).__name__}"))
    if feed.problem:
        return FeedReport(shown, error=_one_line(f"{shown}: {feed.problem}"))
    source = _shorten(_squeeze(feed_name or ""), _SOURCE_CHARS) or feed.title or document.name
    stories = _stories(feed.entries, source=source, now=now, max_age=max_age)
    return FeedReport(shown, tuple(stories[: max(0, max_items)]))


def select_stories(reports: Sequence[FeedReport], count: int) -> list[Story]:
    """The broadcast's stories: every feed's stories, newest first (undated last), the same story reported
    by several feeds kept once, at most `count`."""
    stories = [story for report in reports for story in report.stories]
    return _unique(_newest_first(stories), across_feeds=True)[: max(0, count)]


def _display_url(url: str) -> str:
    """`url` as it may be shown in logs and results: no user:password@, no fragment, and the values of query
    parameters that look like credentials (token=, key=, sig=..., or long random strings) replaced."""
    if "://" not in url:
        return _one_line(url)
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(name, "REDACTED" if _looks_secret(name, value) else value) for name, value in pairs])
    return _one_line(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


# -- stories: filtering, ordering, duplicates ------------------------------------------------------------


def _stories(entries: Sequence[_Entry], *, source: str, now: datetime, max_age: timedelta | None) -> list[Story]:
    stories = []
    oldest = now - max_age if max_age else None
    for entry in entries:
        if not entry.title:
            continue
        published = _published(entry.published, now)
        if oldest is not None and published is not None and published < oldest:
            continue
        stories.append(Story(entry.title, entry.link, source, entry.summary, published, entry.guid))
    return _unique(_newest_first(stories), across_feeds=False)


def _published(timestamp: float | None, now: datetime) -> datetime | None:
    """An aware UTC datetime; a date more than a day ahead (a wrong clock or time zone) counts as now."""
    if timestamp is None:
        return None
    try:
        published = datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return now.astimezone(UTC) if published > now + _FUTURE_SLACK else published


def _newest_first(stories: Sequence[Story]) -> list[Story]:
    # sorted() is stable: undated stories, and stories of the same minute, keep the feeds' own order.
    return sorted(stories, key=lambda s: (s.published is None, -s.published.timestamp() if s.published else 0.0))


def _unique(stories: Sequence[Story], *, across_feeds: bool) -> list[Story]:
    """Drop later stories that share a guid, a link or a normalised title with an earlier one."""
    seen: set[str] = set()
    kept = []
    for story in stories:
        keys = _identities(story, across_feeds=across_feeds)
        if seen.isdisjoint(keys):
            kept.append(story)
        seen.update(keys)
    return kept


def _identities(story: Story, *, across_feeds: bool) -> set[str]:
    keys = set()
    # Within a feed a guid is unique by definition; across feeds only a guid that is globally unique by
    # construction (a URL, urn: or tag:) says anything, since many feeds number their items 1, 2, 3...
    if story.guid and (not across_feeds or re.match(r"(?i)(https?://|urn:|tag:)", story.guid)):
        keys.add("guid:" + story.guid)
    if story.link:
        keys.add("link:" + _normal_link(story.link))
    title = "".join(c for c in unicodedata.normalize("NFKC", story.title).casefold() if c.isalnum())
    if title:
        keys.add("title:" + title)
    return keys


def _normal_link(link: str) -> str:
    parts = urlsplit(link)
    host = (parts.hostname or "").removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}?{parts.query}"


# -- fetching --------------------------------------------------------------------------------------------


class _FeedProblem(Exception):
    """Why one feed gave nothing; the message follows the feed's URL in its report."""


@dataclass(frozen=True)
class _Document:
    data: bytes
    content_type: str | None
    """The HTTP Content-Type (charset), None for files."""
    location: str | None
    """The final URL, the base of relative links; None for files."""
    name: str
    """The host or file name: the story source when the feed has no title."""


def _fetch(
    source: str, *, base_dir: Path | None, policy: AddressPolicy, limits: FeedLimits, session: requests.Session | None
) -> _Document:
    scheme = source.split(":", 1)[0].lower() if "://" in source else ""
    if scheme in ("http", "https"):
        return _download(source.strip(), policy=policy, limits=limits, session=session)
    if scheme == "file" or not scheme:
        return _read_file(source, base_dir, limits)
    raise _FeedProblem(f"unsupported URL scheme {scheme!r}: use http, https, file or a path")


def _read_file(source: str, base_dir: Path | None, limits: FeedLimits) -> _Document:
    if "://" in source:
        parts = urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise _FeedProblem("a file:// URL must name a file on this machine (file:///path/to/feed.xml)")
        path = Path(url2pathname(parts.path))
    else:
        path = Path(source)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type check below then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _FeedProblem(f"no such file: {path}") from None
    except OSError as exc:
        raise _FeedProblem(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _FeedProblem(f"{path} is not a regular file")
        if info.st_size > limits.max_bytes:
            raise _FeedProblem(f"the file is larger than {_size(limits.max_bytes)}, the most a feed may be")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limits.max_bytes + 1)
    except OSError as exc:
        raise _FeedProblem(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limits.max_bytes:
        raise _FeedProblem(f"the file is larger than {_size(limits.max_bytes)}, the most a feed may be")
    return _Document(data, None, None, path.name)


@dataclass(frozen=True)
class _Transport:
    """What every request of one download carries: headers and TLS settings (from the caller's session)."""

    headers: Mapping[str, str]
    verify: bool | str
    cert: str | tuple[str, str] | None

    @classmethod
    def of(cls, session: requests.Session | None, url: str) -> _Transport:
        session = session or requests.Session()
        # Honours REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE as requests itself would. Proxies are not used: the
        # guard must know the address it connects to, and a proxy would resolve names on its own.
        settings = session.merge_environment_settings(url, {}, True, session.verify, session.cert)
        headers = {
            name: value if isinstance(value, str) else value.decode("latin-1")
            for name, value in session.headers.items()
        }
        headers.update({"User-Agent": _USER_AGENT, "Accept": _ACCEPT})
        verify = settings["verify"]
        return cls(headers, verify if isinstance(verify, str) else bool(verify), settings["cert"])


def _download(url: str, *, policy: AddressPolicy, limits: FeedLimits, session: requests.Session | None) -> _Document:
    """GET `url`, following redirects by hand so that every hop passes the guard, within `limits`."""
    transport = _Transport.of(session, url)
    visited = {urldefrag(url).url}
    current = url
    with Deadline(limits.read_timeout) as deadline:
        for hop in range(limits.max_redirects + 1):
            try:
                with _exchange(current, policy=policy, limits=limits, deadline=deadline, transport=transport) as reply:
                    if reply.status_code in _REDIRECT_CODES:
                        current = _redirect_target(current, reply, visited)
                        continue
                    _check_status(reply)
                    data = _read_body(reply, limits, deadline)
                    name = urlsplit(current).hostname or ""
                    return _Document(data, reply.headers.get("Content-Type"), current, name)
            except _FeedProblem as problem:
                if hop == 0:
                    raise
                raise _FeedProblem(f"redirected to {_display_url(current)}: {problem}") from None
        raise _FeedProblem(f"more than {limits.max_redirects} redirects")


def _redirect_target(current: str, reply: requests.Response, visited: set[str]) -> str:
    location = (reply.headers.get("Location") or "").strip()
    if not location:
        raise _FeedProblem(f"HTTP {reply.status_code} redirect without a Location header")
    try:
        target = urldefrag(urljoin(current, location)).url
        scheme = urlsplit(target).scheme.lower()
    except ValueError:
        raise _FeedProblem(f"HTTP {reply.status_code} redirect to an invalid URL") from None
    if scheme not in ("http", "https"):
        raise _FeedProblem(f"redirected to a {scheme}: URL, refused: only http and https redirects are followed")
    if target in visited:
        raise _FeedProblem(f"redirect loop: {_display_url(target)} redirects back to itself")
    visited.add(target)
    return target


def _check_status(reply: requests.Response) -> None:
    code = reply.status_code
    if 200 <= code < 300:
        return
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    raise _FeedProblem(f"HTTP {code} {phrase}".rstrip())


@contextmanager
def _exchange(
    url: str, *, policy: AddressPolicy, limits: FeedLimits, deadline: Deadline, transport: _Transport
) -> Iterator[requests.Response]:
    """One request: resolve and check the host, then send to the first checked address that accepts."""
    try:
        request = requests.Request("GET", url, headers=dict(transport.headers)).prepare()
        parts = urlsplit(request.url or "")
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (requests.RequestException, ValueError, UnicodeError):
        raise _FeedProblem("not a valid URL") from None
    if not host:
        raise _FeedProblem("the URL has no host")
    # requests names the URL's host, not the address we connect to: say it ourselves (IDNA-encoded, with
    # the port as written).
    request.headers["Host"] = parts.netloc.rpartition("@")[2]
    try:
        addresses = resolve(host, port, policy)
    except AddressRefused as refused:
        raise _FeedProblem(f"{refused}; {_ALLOW_HINT}") from None
    except GuardError as problem:
        raise _FeedProblem(str(problem)) from None
    failure: requests.RequestException | None = None
    for address in addresses:
        if deadline.expired:
            break
        adapter = PinnedAdapter(address, deadline)
        try:
            reply = adapter.send(
                request,
                stream=True,
                timeout=(min(limits.connect_timeout, deadline.remaining), min(limits.read_timeout, deadline.remaining)),
                verify=transport.verify,
                cert=transport.cert,
            )
        except requests.RequestException as exc:
            adapter.close()
            failure = exc
            if _could_not_connect(exc):
                continue  # the next address may answer
            break
        try:
            yield reply
        finally:
            reply.close()
            adapter.close()
        return
    raise _FeedProblem(_describe_failure(failure, host=host, limits=limits, deadline=deadline))


def _read_body(reply: requests.Response, limits: FeedLimits, deadline: Deadline) -> bytes:
    declared = reply.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _FeedProblem(f"the response is larger than {_size(limits.max_bytes)}, the most a feed may be")
    raw = reply.raw
    chunks = []
    decoded = 0
    try:
        # read1 returns whatever has arrived (a drip cannot make it wait for a full chunk), and urllib3
        # decompresses at most the amount asked for per call, so a bomb never inflates beyond one chunk.
        while chunk := raw.read1(_CHUNK_BYTES, decode_content=True):
            decoded += len(chunk)
            if raw.tell() > limits.max_bytes:
                raise _FeedProblem(f"the response is larger than {_size(limits.max_bytes)}, the most a feed may be")
            if decoded > limits.max_decoded_bytes:
                raise _FeedProblem(
                    f"the response decompresses to more than {_size(limits.max_decoded_bytes)} (a decompression bomb?)"
                )
            if deadline.expired:
                break
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _FeedProblem(_describe_failure(exc, host=None, limits=limits, deadline=deadline)) from None
    if deadline.expired:
        # The deadline's shutdown can look like a clean end of the body: never parse a truncated download.
        raise _FeedProblem(deadline.message)
    return b"".join(chunks)


def _could_not_connect(exc: BaseException) -> bool:
    return isinstance(exc, requests.ConnectTimeout) or any(
        isinstance(cause, urllib3.exceptions.NewConnectionError) for cause in _causes(exc)
    )


def _describe_failure(exc: BaseException | None, *, host: str | None, limits: FeedLimits, deadline: Deadline) -> str:
    """A one-line cause for a failed exchange. Exception texts are not used as such: requests and urllib3
    put the full URL, query string included, into theirs."""
    if deadline.expired or exc is None:
        return deadline.message
    causes = list(_causes(exc))
    server = host or "the server"
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the TLS certificate of {server} was not accepted: {cause.verify_message}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake with {server} failed ({cause.reason or 'SSL error'})"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"{server} refused the connection"
    # urllib3's NewConnectionError is a ConnectTimeoutError too (for compatibility): ask for the timeout alone.
    if isinstance(exc, requests.ConnectTimeout) or any(
        isinstance(c, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(c, urllib3.exceptions.NewConnectionError)
        for c in causes
    ):
        return f"no connection to {server} within {limits.connect_timeout:g} s"
    if isinstance(exc, requests.ReadTimeout) or any(isinstance(c, urllib3.exceptions.ReadTimeoutError) for c in causes):
        return f"{server} sent nothing for {limits.read_timeout:g} s"
    if any(isinstance(c, urllib3.exceptions.DecodeError) for c in causes):
        return "the response's compressed body is corrupt"
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return f"the connection to {server} failed: {cause.strerror}"
    if any(isinstance(c, urllib3.exceptions.ProtocolError) for c in causes):
        return f"{server} closed the connection or answered with broken HTTP"
    return f"the request failed ({type(exc).__name__})"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: causes, contexts, urllib3's `reason`, exceptions passed as arguments."""
    pending = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args)
        pending.extend(item for item in linked if isinstance(item, BaseException))


# -- parsing, in a worker process ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One feed entry, cleaned, as the parser process hands it back."""

    title: str
    link: str
    guid: str
    summary: str
    published: float | None
    """POSIX timestamp."""


@dataclass(frozen=True)
class _ParsedFeed:
    title: str
    entries: tuple[_Entry, ...]
    problem: str | None = None
    """Why the document is not a usable feed."""


@dataclass(frozen=True)
class _ParseJob:
    data: bytes
    headers: dict[str, str]
    max_entries: int
    max_text_chars: int

    @classmethod
    def of(cls, document: _Document, limits: FeedLimits) -> _ParseJob:
        headers = {}
        if document.content_type:
            headers["content-type"] = document.content_type
        if document.location:
            headers["content-location"] = document.location
        return cls(document.data, headers, limits.max_entries, limits.max_text_chars)


class _ParserProcess:
    """One long-lived Python process that runs feedparser. Reusing it keeps the cost per feed to a few
    milliseconds; a parse that overruns its time is stopped by killing the process (the next parse starts a
    fresh one).

    It is a plain subprocess speaking JSON over its stdin/stdout rather than a multiprocessing worker: spawn
    re-imports the caller's __main__ in the child, which runs an unguarded script a second time.
    Documents go in as bytes after a JSON header line; answers come back as one JSON line (never pickle)."""

    _START_TIMEOUT = 60.0
    _BOOTSTRAP = "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); import job.news; job.news._parser_main()"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def parse(self, job: _ParseJob, *, timeout: float) -> _ParsedFeed:
        with self._lock:
            process = self._ready()
            try:
                _send(process, job)
            except OSError:  # the process died since the last feed
                self._stop()
                process = self._ready()
                _send(process, job)
            try:
                line = _read_line(process, timeout)
            except TimeoutError:
                self._stop()
                raise _FeedProblem(
                    f"parsing took longer than {timeout:g} s (the document is too large or too complex)"
                ) from None
            if not line:
                code = process.poll()
                self._stop()
                raise _FeedProblem(f"the feed parser process died (exit code {code})")
        return _answer(line)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ready(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        # -I: no user site or PYTHON* variables; the parent's import path is handed over explicitly.
        command = [sys.executable, "-I", "-c", self._BOOTSTRAP, json.dumps(sys.path)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            ready = _read_line(self._process, self._START_TIMEOUT) == b"ready\n"
        except TimeoutError:
            ready = False
        if not ready:
            self._stop()
            raise _FeedProblem("the feed parser process did not start")
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


def _send(process: subprocess.Popen[bytes], job: _ParseJob) -> None:
    if process.stdin is None:
        raise OSError("no pipe to the parser process")
    header = {"size": len(job.data), "headers": job.headers}
    header |= {"max_entries": job.max_entries, "max_text_chars": job.max_text_chars}
    process.stdin.write(json.dumps(header).encode() + b"\n")
    process.stdin.write(job.data)
    process.stdin.flush()


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The process's next line (b"" when it died), or TimeoutError when none comes within `timeout`."""
    if process.stdout is None:
        return b""
    fd = process.stdout.fileno()
    end = time.monotonic() + timeout
    received = bytearray()
    while not received.endswith(b"\n"):
        remaining = end - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b""
        received += chunk
    return bytes(received)


def _answer(line: bytes) -> _ParsedFeed:
    try:
        answer = json.loads(line)
        if "failed" in answer:
            raise _FeedProblem(f"the feed parser failed: {answer['failed']}")
        feed = answer["parsed"]
        entries = tuple(_Entry(**entry) for entry in feed["entries"])
        return _ParsedFeed(str(feed["title"]), entries, feed["problem"])
    except (ValueError, KeyError, TypeError):
        raise _FeedProblem("the feed parser process gave an unexpected answer") from None


_PARSER = _ParserProcess()
atexit.register(_PARSER.close)


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
        job = _ParseJob(data, request["headers"], request["max_entries"], request["max_text_chars"])
        try:
            answer: dict[str, object] = {"parsed": asdict(_parse_document(job))}
        except Exception as exc:  # any failure of the library on hostile input is a report, not a crash
            answer = {"failed": _one_line(f"{type(exc).__name__}: {exc}")[:300]}
        answers.write(json.dumps(answer).encode() + b"\n")  # ASCII JSON: no raw newline inside
        answers.flush()


def _parse_document(job: _ParseJob) -> _ParsedFeed:
    # A stream, never bytes or str: given those, feedparser would treat them as a URL or a file name to open.
    parsed = feedparser.parse(
        io.BytesIO(job.data), response_headers=job.headers, resolve_relative_uris=True, sanitize_html=True
    )
    feed = parsed.get("feed") or {}
    title = _shorten(_text(feed.get("title", ""), feed.get("title_detail")), _SOURCE_CHARS)
    entries = parsed.get("entries") or []
    if not entries:
        if parsed.get("version") and not isinstance(parsed.get("bozo_exception"), xml.sax.SAXException):
            return _ParsedFeed(title, ())  # a feed with nothing in it (perhaps with a wrong charset)
        return _ParsedFeed(title, (), problem=f"not an RSS or Atom feed{_why_not_a_feed(job.data, parsed)}")
    cleaned = tuple(_entry(raw, job.max_text_chars) for raw in entries[: job.max_entries])
    return _ParsedFeed(title, cleaned)


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


def _entry(raw: Mapping[str, Any], max_chars: int) -> _Entry:
    title = _shorten(_text(raw.get("title", ""), raw.get("title_detail")), _TITLE_CHARS)
    # Prefer the full content over the summary when it says more.
    bodies = [_text(raw.get("summary", ""), raw.get("summary_detail"), limit=max_chars)]
    bodies += [_text(part.get("value", ""), part, limit=max_chars) for part in raw.get("content") or []]
    summary = _shorten(max(bodies, key=len), max_chars)
    link = _web_link(raw.get("link"))
    guid = _one_line(str(raw.get("id") or ""))[:_GUID_CHARS] or link
    return _Entry(title, link, guid, summary, _timestamp(raw))


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


# -- cleaning text ---------------------------------------------------------------------------------------

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


def _text(value: object, detail: object = None, *, limit: int = _TITLE_CHARS) -> str:
    """Plain text of a feed field: HTML stripped (when feedparser says it is HTML, or cannot say), entities
    decoded, whitespace normalised. Not yet shortened; raw input beyond a multiple of `limit` is ignored."""
    raw = str(value or "")[: limit * _RAW_TEXT_FACTOR]
    kind = str(detail.get("type", "")) if isinstance(detail, Mapping) else ""
    text = _strip_html(raw) if "html" in kind or not kind else raw
    if _ENTITY.search(text):
        text = html.unescape(text)
    if _LEFTOVER_TAG.search(text):
        text = _strip_html(text)
    return _squeeze(text)


def _squeeze(text: str) -> str:
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


def _shorten(text: str, limit: int) -> str:
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


def _one_line(text: str) -> str:
    return _shorten(_WHITESPACE.sub(" ", text.translate(_INVISIBLE)).strip(), _MESSAGE_CHARS)


def _looks_secret(name: str, value: str) -> bool:
    if re.search(r"(?i)token|key|secret|sig|pass|auth|cred|session|code", name):
        return True
    return (
        len(value) >= 20
        and re.fullmatch(r"[A-Za-z0-9_\-.~+/=%]+", value) is not None
        and (re.search(r"[0-9]", value) is not None and re.search(r"[A-Za-z]", value) is not None)
    )


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MiB"
    if n >= 1024:
        return f"{n / 1024:g} KiB"
    return f"{n} bytes"
