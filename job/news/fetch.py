"""Fetching a feed without trusting its server: the bytes of one document, from http(s) or a local file.

* where we connect: the host is resolved once and every address is checked against an SSRF guard (loopback,
  private, link-local and cloud-metadata, CGNAT, unspecified, multicast and reserved addresses are refused
  unless the broadcast allows them); the connection is then pinned to the checked address, so a second DNS
  answer cannot rebind it elsewhere. Redirects are followed by hand, and every hop is checked the same way.
* how long: a connect timeout, a per-read timeout, and an overall deadline that shuts the socket down when it
  passes, so a server that drips a byte at a time cannot hold the broadcast.
* how much: bytes on the wire and bytes after decompression (decompression bombs).

Every failure is a `FetchFailed` whose message is one line for a user, never an exception text of requests or
urllib3 (they carry the full URL, query string included).
"""

from __future__ import annotations

import os
import re
import ssl
import stat
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests
import urllib3

from api.netguard import AddressPolicy, AddressRefused, Deadline, GuardError, PinnedAdapter, resolve
from job.shared.text import one_line

_USER_AGENT = "anchor/0.1 (+news anchor)"
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES = 64 * 1024
ALLOW_HINT = (
    "to allow it, set sources.allowPrivateAddresses or list its network in sources.allowedAddresses"
    " (anchor news: --allow-private)"
)


class FetchLimits(Protocol):
    """What fetching needs of `job.news.FeedLimits` (documented there)."""

    @property
    def connect_timeout(self) -> float: ...
    @property
    def read_timeout(self) -> float: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def max_decoded_bytes(self) -> int: ...
    @property
    def max_redirects(self) -> int: ...
    @property
    def document(self) -> str: ...
    @property
    def allow_hint(self) -> str: ...


class FetchFailed(Exception):
    """Why a feed could not be fetched; the message follows the feed's URL in its report."""


@dataclass(frozen=True)
class Document:
    data: bytes
    content_type: str | None
    """The HTTP Content-Type (charset), None for files."""
    location: str | None
    """The final URL, the base of relative links; None for files."""
    name: str
    """The host or file name: the story source when the feed has no title."""


def fetch(
    source: str, *, base_dir: Path | None, policy: AddressPolicy, limits: FetchLimits, session: requests.Session | None
) -> Document:
    scheme = source.split(":", 1)[0].lower() if "://" in source else ""
    if scheme in ("http", "https"):
        return _download(source.strip(), policy=policy, limits=limits, session=session)
    if scheme == "file" or not scheme:
        return _read_file(source, base_dir, limits)
    raise FetchFailed(f"unsupported URL scheme {scheme!r}: use http, https, file or a path")


def _read_file(source: str, base_dir: Path | None, limits: FetchLimits) -> Document:
    if "://" in source:
        parts = urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise FetchFailed("a file:// URL must name a file on this machine (file:///path/to/feed.xml)")
        path = Path(url2pathname(parts.path))
    else:
        path = Path(source)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type check below then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FetchFailed(f"no such file: {path}") from None
    except OSError as exc:
        raise FetchFailed(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FetchFailed(f"{path} is not a regular file")
        if info.st_size > limits.max_bytes:
            raise FetchFailed(_too_large("the file", limits))
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limits.max_bytes + 1)
    except OSError as exc:
        raise FetchFailed(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limits.max_bytes:
        raise FetchFailed(_too_large("the file", limits))
    return Document(data, None, None, path.name)


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


BodyReader = Callable[[requests.Response, FetchLimits, Deadline], bytes]
"""Reads an answer's body within the limits and the download's deadline."""


def _download(
    url: str,
    *,
    policy: AddressPolicy,
    limits: FetchLimits,
    session: requests.Session | None,
    read: BodyReader | None = None,
) -> Document:
    """GET `url`, following redirects by hand so that every hop passes the guard, within `limits`; the body is
    read whole (refused over the limits) unless `read` says otherwise."""
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
                    data = (read or _read_body)(reply, limits, deadline)
                    name = urlsplit(current).hostname or ""
                    return Document(data, reply.headers.get("Content-Type"), current, name)
            except FetchFailed as problem:
                if hop == 0:
                    raise
                raise FetchFailed(f"redirected to {display_url(current)}: {problem}") from None
        raise FetchFailed(f"more than {limits.max_redirects} redirects")


def fetch_prefix(
    url: str, *, policy: AddressPolicy, limits: FetchLimits, max_bytes: int, types: Collection[str]
) -> Document:
    """GET `url` as fetch() does, keeping at most `max_bytes` of the body after decompression (the rest is never
    read), and none of it unless its media type is one of `types` ("" for an answer without one)."""

    def read(reply: requests.Response, limits: FetchLimits, deadline: Deadline) -> bytes:
        if media_type(reply.headers.get("Content-Type")) not in types:
            return b""
        return _read_prefix(reply, max_bytes, limits, deadline)

    return _download(url, policy=policy, limits=limits, session=None, read=read)


def _read_prefix(reply: requests.Response, max_bytes: int, limits: FetchLimits, deadline: Deadline) -> bytes:
    raw = reply.raw
    chunks: list[bytes] = []
    size = 0
    try:
        # read1 decompresses at most the amount asked for, so a compressed bomb never inflates past the prefix;
        # the bytes on the wire are bounded too, for a body that decompresses to next to nothing.
        while size < max_bytes and raw.tell() <= limits.max_bytes and not deadline.expired:
            chunk = raw.read1(min(_CHUNK_BYTES, max_bytes - size), decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise FetchFailed(_describe_failure(exc, host=None, limits=limits, deadline=deadline)) from None
    return b"".join(chunks)[:max_bytes]  # a prefix cut by the deadline is still a prefix


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower-case, without parameters ("" when there is none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _redirect_target(current: str, reply: requests.Response, visited: set[str]) -> str:
    location = (reply.headers.get("Location") or "").strip()
    if not location:
        raise FetchFailed(f"HTTP {reply.status_code} redirect without a Location header")
    try:
        target = urldefrag(urljoin(current, location)).url
        scheme = urlsplit(target).scheme.lower()
    except ValueError:
        raise FetchFailed(f"HTTP {reply.status_code} redirect to an invalid URL") from None
    if scheme not in ("http", "https"):
        raise FetchFailed(f"redirected to a {scheme}: URL, refused: only http and https redirects are followed")
    if target in visited:
        raise FetchFailed(f"redirect loop: {display_url(target)} redirects back to itself")
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
    raise FetchFailed(f"HTTP {code} {phrase}".rstrip())


@contextmanager
def _exchange(
    url: str, *, policy: AddressPolicy, limits: FetchLimits, deadline: Deadline, transport: _Transport
) -> Iterator[requests.Response]:
    """One request: resolve and check the host, then send to the first checked address that accepts."""
    try:
        request = requests.Request("GET", url, headers=dict(transport.headers)).prepare()
        parts = urlsplit(request.url or "")
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (requests.RequestException, ValueError, UnicodeError):
        raise FetchFailed("not a valid URL") from None
    if not host:
        raise FetchFailed("the URL has no host")
    # requests names the URL's host, not the address we connect to: say it ourselves (IDNA-encoded, with
    # the port as written).
    request.headers["Host"] = parts.netloc.rpartition("@")[2]
    try:
        addresses = resolve(host, port, policy)
    except AddressRefused as refused:
        raise FetchFailed(f"{refused}; {limits.allow_hint}") from None
    except GuardError as problem:
        raise FetchFailed(str(problem)) from None
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
    raise FetchFailed(_describe_failure(failure, host=host, limits=limits, deadline=deadline))


def _read_body(reply: requests.Response, limits: FetchLimits, deadline: Deadline) -> bytes:
    declared = reply.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchFailed(_too_large("the response", limits))
    raw = reply.raw
    chunks = []
    decoded = 0
    try:
        # read1 returns whatever has arrived (a drip cannot make it wait for a full chunk), and urllib3
        # decompresses at most the amount asked for per call, so a bomb never inflates beyond one chunk.
        while chunk := raw.read1(_CHUNK_BYTES, decode_content=True):
            decoded += len(chunk)
            if raw.tell() > limits.max_bytes:
                raise FetchFailed(_too_large("the response", limits))
            if decoded > limits.max_decoded_bytes:
                raise FetchFailed(
                    f"the response decompresses to more than {_size(limits.max_decoded_bytes)} (a decompression bomb?)"
                )
            if deadline.expired:
                break
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise FetchFailed(_describe_failure(exc, host=None, limits=limits, deadline=deadline)) from None
    if deadline.expired:
        # The deadline's shutdown can look like a clean end of the body: never parse a truncated download.
        raise FetchFailed(deadline.message)
    return b"".join(chunks)


def _could_not_connect(exc: BaseException) -> bool:
    return isinstance(exc, requests.ConnectTimeout) or any(
        isinstance(cause, urllib3.exceptions.NewConnectionError) for cause in _causes(exc)
    )


def _describe_failure(exc: BaseException | None, *, host: str | None, limits: FetchLimits, deadline: Deadline) -> str:
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


def display_url(url: str) -> str:
    """`url` as it may be shown in logs and results: no user:password@, no fragment, and the values of query
    parameters that look like credentials (token=, key=, sig=..., or long random strings) replaced."""
    if "://" not in url:
        return one_line(url)
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
    return one_line(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def _looks_secret(name: str, value: str) -> bool:
    if re.search(r"(?i)token|key|secret|sig|pass|auth|cred|session|code", name):
        return True
    return (
        len(value) >= 20
        and re.fullmatch(r"[A-Za-z0-9_\-.~+/=%]+", value) is not None
        and (re.search(r"[0-9]", value) is not None and re.search(r"[A-Za-z]", value) is not None)
    )


def _too_large(what: str, limits: FetchLimits) -> str:
    return f"{what} is larger than {_size(limits.max_bytes)}, the most {limits.document} may be"


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MiB"
    if n >= 1024:
        return f"{n / 1024:g} KiB"
    return f"{n} bytes"
