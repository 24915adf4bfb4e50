"""The news stage: real-looking feeds from disk and from a feed server on 127.0.0.1, servers and documents that
misbehave on purpose, the address guard, and how stories are cleaned, filtered, ordered and de-duplicated."""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3.util.connection

from api.v1alpha1 import Sources
from job.model import ConfigError, FeedReport, Story
from job.news.reader import FeedLimits, read_feed, read_sources, select_stories
from tests.unit.test_feedparser_process import quadratic_entities

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
NOW = datetime(2026, 11, 24, tzinfo=UTC)  # 09:00 in Tokyo
TWO_DAYS = timedelta(hours=48)
LOCAL = ["127.0.0.1/32"]
QUICK = FeedLimits(connect_timeout=2.0, read_timeout=5.0)
USER_AGENT = "anchor/0.1 (+news anchor)"
GUARD_HINT = "sources.allowPrivateAddresses"


# -- a feed server on 127.0.0.1 --------------------------------------------------------------------------


@dataclass
class Seen:
    path: str
    host: str
    user_agent: str


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.seen: list[Seen] = []
        self.stop = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@functools.cache
def many_entries() -> bytes:
    items = "".join(
        f"<item><title>Story {i}</title><link>https://many.example.com/{i}</link>"
        f"<description>Entry number {i} of a very long feed.</description></item>"
        for i in range(10_000)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Many</title>{items}</channel></rss>'.encode()


@functools.cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed to about 64 KiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()


# A document that makes feedparser 6.0.14 itself raise ValueError (chr() of a code point beyond Unicode in its
# lenient parser; kurtmckee/feedparser#599): a library failure of an unexpected type, not a malformed-feed flag.
CRASHES_FEEDPARSER = (
    b'<rss version="2.0"><channel><title>x</title><item><title>&#1114112;</title></item></channel></rss>'
)
EMPTY_FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>'


class FeedHandler(BaseHTTPRequestHandler):
    server: FeedServer

    def do_GET(self) -> None:
        self.server.seen.append(Seen(self.path, self.headers.get("Host", ""), self.headers.get("User-Agent", "")))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client hung up, as it should
            self._route(self.path.split("?", 1)[0])

    def _route(self, path: str) -> None:
        if path.startswith("/feeds/") and (FEEDS / path.removeprefix("/feeds/")).is_file():
            file = FEEDS / path.removeprefix("/feeds/")
            kind = "text/html; charset=utf-8" if file.suffix == ".html" else "application/rss+xml"
            self._reply(200, file.read_bytes(), kind)
        elif path == "/gzip":
            self._reply(200, zlib_gzip((FEEDS / "atom-en.xml").read_bytes()), headers={"Content-Encoding": "gzip"})
        elif path == "/broken":
            self._reply(200, b"\x00\x01 this is { not a feed", "application/rss+xml")
        elif path == "/empty":
            self._reply(200, EMPTY_FEED)
        elif path == "/crash":
            self._reply(200, CRASHES_FEEDPARSER)
        elif path == "/many":
            self._reply(200, many_entries())
        elif path == "/laughs":
            self._reply(200, quadratic_entities())
        elif path.startswith("/status/"):
            self._reply(int(path.removeprefix("/status/")), b"oops", "text/plain")
        elif path in ("/loop/a", "/loop/b"):
            self._redirect("/loop/b" if path == "/loop/a" else "/loop/a")
        elif path.startswith("/hops/"):
            left = int(path.removeprefix("/hops/"))
            self._redirect(f"/hops/{left - 1}") if left else self._reply(200, (FEEDS / "atom-en.xml").read_bytes())
        elif path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
        elif path == "/to-internal-name":
            self._redirect("http://internal.example.test/feed.xml")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(64 << 20))
            self.end_headers()
        elif path == "/huge-streamed":
            self._stream(b"<!-- padding padding padding -->\n" * 2048, chunks=128)
        elif path == "/bomb":
            self._reply(200, gzip_bomb(), headers={"Content-Encoding": "gzip"})
        elif path == "/drip-body":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self._drip()
        elif path == "/drip-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Slow: ")
            self._drip()
        else:
            self._reply(404, b"not found", "text/plain")

    def _reply(
        self,
        status: int,
        body: bytes,
        kind: str = "application/rss+xml; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stream(self, chunk: bytes, *, chunks: int) -> None:
        """A body without Content-Length, ended by closing the connection (HTTP/1.0)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        for _ in range(chunks):
            self.wfile.write(chunk)

    def _drip(self) -> None:
        """One byte every 0.2 s for up to 40 s, until the client hangs up or the server stops."""
        for _ in range(200):
            if self.server.stop.wait(0.2):
                return
            self.wfile.write(b"a")

    def log_message(self, format: str, *args: object) -> None:
        pass


def zlib_gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def serve(server: FeedServer) -> Iterator[FeedServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    yield from serve(FeedServer())


def read(url: str, **options: Any) -> FeedReport:
    """read_feed with the test defaults: 127.0.0.1 allowed, no age limit, quick limits."""
    settings: dict[str, Any] = {
        "max_items": 20,
        "max_age": None,
        "now": NOW,
        "allowed_networks": LOCAL,
        "limits": QUICK,
    }
    return read_feed(url, **(settings | options))


def assert_error(report: FeedReport, *fragments: str) -> str:
    assert report.error is not None, report
    assert report.stories == ()
    assert "\n" not in report.error
    assert report.error.startswith(report.url)
    for fragment in fragments:
        assert fragment in report.error, report.error
    return report.error


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection urllib3 attempts during the test. Connections to 127.0.0.0/8 go ahead; any other is
    refused here, so that nothing leaves the machine even if the guard under test were broken."""
    opened: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def record(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        if not address[0].startswith("127."):
            raise ConnectionRefusedError(f"the test refuses to connect to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", record)
    return opened


@dataclass
class FakeDns:
    """Answers for invented names, so that no test asks a real resolver: each name has a queue of answers, each
    one or more comma-separated addresses (the last answer repeats; an empty queue: the name does not exist)."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    dns = FakeDns()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in dns.answers:
            return real(host, port, *args, **kwargs)
        dns.lookups.append(host)
        queue = dns.answers[host]
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port),
            )
            for address in answer.split(",")
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


# -- real-looking feeds ----------------------------------------------------------------------------------


def test_japanese_rss20_is_cleaned_filtered_and_ordered(server: FeedServer) -> None:
    report = read(f"{server.base}/feeds/rss20-ja.xml", max_age=TWO_DAYS)
    assert report.error is None
    titles = [s.title for s in report.stories]
    # Newest first; the story dated next year counts as now; the undated one comes last; the item without a
    # title is titled by its description. Dropped: the October story (older than two days) and the earlier
    # copy with the same guid.
    assert titles == [
        "来年の干支「午」にちなんだ展示、市立博物館で始まる",
        "【速報】 北海道東部で震度４ 津波の心配なし",
        "通勤電車、年末ダイヤで増便へ 首都圏の３路線",
        "米&欧の中央銀行、そろって政策金利を据え置き",
        "見出しのない項目です。",
        "新しい市民ホール、来春オープンへ 座席数は１２００席",
        "市立図書館、平日の開館時間を夜８時まで延長",
    ]
    future, quake, train, rates, untitled, hall, library = report.stories
    assert untitled.summary == "" and untitled.link.endswith("/20261124-untitled")
    assert future.published == NOW
    assert quake.published == datetime(2026, 11, 23, 23, 52, tzinfo=UTC)
    assert library.published is None
    assert {s.source for s in report.stories} == {"みなと新報 ニュース"}
    # content:encoded is longer than the description, so it is used: HTML, script and style gone.
    assert train.summary == (
        "鉄道各社は２３日、年末の混雑に備えて首都圏の３路線で臨時列車を増便すると発表しました。"
        "増便は１２月２６日から３０日までで、朝夕の時間帯を中心に１日あたり最大４０本を追加します。"
        "各社は「混雑の分散にご協力を」と呼びかけています。"
    )
    assert train.guid == "minato-20261124-train"
    assert train.link == "https://minato-shimpo.example.jp/articles/20261124-train"
    # Escaped HTML with entities inside; a line break in the source of Japanese text is no space.
    assert rates.summary == (
        "米連邦準備制度理事会（FRB）と欧州中央銀行（ECB）は、そろって政策金利を据え置くと発表しました。"
        '市場では"年内の利下げは見送り"との見方が広がっています。'
    )
    assert quake.summary == (
        "24日午前8時47分ごろ、北海道東部で震度４の揺れを観測しました。気象庁によりますと、この地震による津波の心配はありません。"
    )
    assert "「あいうえお」" in library.summary
    assert "完成予想図" not in hall.summary and hall.summary.endswith("と話していました。")
    for story in report.stories:
        assert not any(mark in story.title + story.summary for mark in ("<", "&amp;", "\u3000", "\xa0", "trackView"))


def test_age_limit_keeps_undated_stories(server: FeedServer) -> None:
    everything = read(f"{server.base}/feeds/rss20-ja.xml", max_age=None)
    recent = read(f"{server.base}/feeds/rss20-ja.xml", max_age=TWO_DAYS)
    assert "紅葉シーズン、観光客が過去最多に" in [s.title for s in everything.stories]
    assert len(everything.stories) == len(recent.stories) + 1
    assert everything.stories[-1].published is None and recent.stories[-1].published is None
    assert [s.title for s in read(f"{server.base}/feeds/rss20-ja.xml", max_items=2).stories] == [
        s.title for s in everything.stories[:2]
    ]


def test_english_atom_feed(server: FeedServer) -> None:
    report = read(f"{server.base}/feeds/atom-en.xml")
    assert report.error is None
    ferry, library, bakery, bikes = report.stories
    assert ferry.title == "Ferry service resumes after winter storm"
    assert ferry.link == "https://chronicle.example.com/2026/11/23/ferry-resumes"  # relative, against xml:base
    assert ferry.guid == "tag:chronicle.example.com,2026:ferry-resumes"
    assert ferry.published == datetime(2026, 11, 23, 21, 5, tzinfo=UTC)
    assert ferry.summary.startswith("Ferries to the outer islands are running again after a two-day suspension")
    assert "\n" not in ferry.summary and "  " not in ferry.summary
    assert library.published == datetime(2026, 11, 23, 20, 40, tzinfo=UTC)  # from <updated>, converted to UTC
    assert library.summary.startswith("Readers & families will be able to use the central library until 8 p.m.")
    assert bakery.summary == "A family bakery on Mill Street has won this year's national award for its sourdough."
    assert bikes.summary.endswith("said one councillor after the vote.")
    assert {s.source for s in report.stories} == {"Harbour City Chronicle"}


def test_rss10_rdf_feed_with_a_name_of_our_own(server: FeedServer) -> None:
    report = read(f"{server.base}/feeds/rdf-ja.xml", feed_name="やまなみ")
    assert report.error is None
    assert [s.title for s in report.stories] == [
        "小学校で地元の木を使った机を贈呈",
        "峠道で今季初の積雪、冬用タイヤの装着を呼びかけ",
        "特産のりんご、今年は甘みが強く出来は上々",
    ]
    assert report.stories[0].published == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert {s.source for s in report.stories} == {"やまなみ"}


def test_rss091_feed_keeps_the_document_order_of_undated_stories(server: FeedServer) -> None:
    report = read(f"{server.base}/feeds/rss091-en.xml")
    assert report.error is None
    assert [s.title for s in report.stories] == [
        "Café reopens in the restored mill house",
        "Footbridge over the river to close for repairs",
        "Choir raises £2,400 for the village hall roof",
    ]
    assert all(s.published is None for s in report.stories)
    assert report.stories[0].guid == "https://oldmill.example.org/news/cafe-reopens"  # no guid: the link
    # The external DTD it names was not fetched: nothing left the machine but requests to our server.
    assert [seen.path for seen in server.seen][-1] == "/feeds/rss091-en.xml"


def test_gzip_encoded_feed_and_request_headers(server: FeedServer) -> None:
    report = read(f"{server.base}/gzip")
    assert report.error is None and len(report.stories) == 4
    assert server.seen[-1].user_agent == USER_AGENT
    assert server.seen[-1].host == f"127.0.0.1:{server.server_port}"


def test_a_valid_feed_without_items_says_so(server: FeedServer) -> None:
    assert_error(read(f"{server.base}/empty"), "/empty: the feed has no items")


def test_local_files_relative_file_url_and_missing(tmp_path: Path) -> None:
    relative = read_feed("rss20-ja.xml", base_dir=FEEDS, max_items=3, max_age=None, now=NOW)
    assert relative.error is None and len(relative.stories) == 3
    as_url = read_feed((FEEDS / "atom-en.xml").as_uri(), max_items=3, max_age=None, now=NOW)
    assert as_url.error is None and as_url.stories[0].source == "Harbour City Chronicle"
    assert_error(read_feed("missing.xml", base_dir=tmp_path, max_items=3, max_age=None, now=NOW), "no such file")
    assert_error(read_feed(str(tmp_path), max_items=3, max_age=None, now=NOW), "not a regular file")
    big = tmp_path / "big.xml"
    big.write_bytes(b" " * 2048)
    limits = FeedLimits(max_bytes=1024)
    assert_error(read_feed(str(big), max_items=3, max_age=None, now=NOW, limits=limits), "larger than 1 KiB")


# -- documents and servers that misbehave ----------------------------------------------------------------


def test_broken_document_html_page_and_http_errors(server: FeedServer) -> None:
    assert_error(read(f"{server.base}/broken"), "/broken: not an RSS or Atom feed")
    assert_error(read(f"{server.base}/feeds/not-a-feed.html"), "not an RSS or Atom feed (it is an HTML page)")
    assert_error(read(f"{server.base}/status/500"), "/status/500: HTTP 500 Internal Server Error")
    assert_error(read(f"{server.base}/status/404"), "HTTP 404 Not Found")


def test_a_parser_exception_of_any_type_is_reported(server: FeedServer) -> None:
    assert_error(read(f"{server.base}/crash"), "/crash: the feed parser failed: ValueError")
    # The parser process survives its library's exceptions and goes on with the next feed.
    assert read(f"{server.base}/feeds/rss091-en.xml").error is None


def test_redirects_are_followed_up_to_the_limit(server: FeedServer) -> None:
    limits = FeedLimits(connect_timeout=2, read_timeout=5, max_redirects=3)
    assert read(f"{server.base}/hops/3", limits=limits).error is None
    assert_error(read(f"{server.base}/hops/4", limits=limits), "more than 3 redirects")
    assert_error(read(f"{server.base}/loop/a"), "redirect loop", "/loop/a")


def test_redirect_to_the_metadata_service_is_refused_without_connecting(
    server: FeedServer, connections: list[tuple[str, int]]
) -> None:
    error = assert_error(read(f"{server.base}/to-metadata"), "redirected to http://169.254.169.254/", "refused")
    assert "cloud metadata" in error and GUARD_HINT in error
    assert [host for host, _ in connections] == ["127.0.0.1"]


def test_redirect_to_a_name_that_resolves_inside_is_refused(
    server: FeedServer, connections: list[tuple[str, int]], fake_dns: FakeDns
) -> None:
    fake_dns.answers["internal.example.test"] = ["10.1.2.3"]
    assert_error(
        read(f"{server.base}/to-internal-name"), "internal.example.test resolves to 10.1.2.3, a private address"
    )
    assert [host for host, _ in connections] == ["127.0.0.1"]


def test_redirect_to_another_scheme_is_refused(server: FeedServer) -> None:
    assert_error(read(f"{server.base}/to-file"), "redirected to a file: URL, refused")


def test_response_larger_than_max_bytes(server: FeedServer) -> None:
    limits = FeedLimits(connect_timeout=2, read_timeout=5, max_bytes=256 * 1024)
    assert_error(read(f"{server.base}/huge-declared", limits=limits), "larger than 256 KiB")
    assert_error(read(f"{server.base}/huge-streamed", limits=limits), "larger than 256 KiB")


def test_gzip_bomb_is_stopped_by_the_decoded_size(server: FeedServer) -> None:
    limits = FeedLimits(connect_timeout=2, read_timeout=5, max_bytes=1 << 20, max_decoded_bytes=4 << 20)
    assert len(gzip_bomb()) < limits.max_bytes
    started = time.monotonic()
    assert_error(read(f"{server.base}/bomb", limits=limits), "decompresses to more than 4 MiB")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_slow_drip_is_cut_off_by_the_overall_deadline(server: FeedServer, path: str) -> None:
    # Every read gets a byte within 0.2 s, so only the overall deadline can end this.
    limits = FeedLimits(connect_timeout=1, read_timeout=1.0)
    started = time.monotonic()
    assert_error(read(f"{server.base}{path}", limits=limits), "took longer than 1 s in all")
    assert 0.9 < time.monotonic() - started < 3


def test_entries_considered_are_bounded(server: FeedServer) -> None:
    limits = FeedLimits(connect_timeout=2, read_timeout=5, max_entries=50)
    report = read(f"{server.base}/many", limits=limits, max_items=100)
    assert report.error is None
    assert [s.title for s in report.stories] == [f"Story {i}" for i in range(50)]


def test_parse_timeout_stops_the_parser_and_the_next_feed_still_parses(server: FeedServer) -> None:
    assert read(f"{server.base}/feeds/atom-en.xml").error is None  # the parser is up: 0.05 s is parsing alone
    limits = FeedLimits(connect_timeout=2, read_timeout=5, parse_timeout=0.05)
    assert_error(read(f"{server.base}/many", limits=limits), "parsing took longer than 0.05 s")
    assert read(f"{server.base}/feeds/atom-en.xml").error is None


def peak_rss_kib() -> int:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def test_a_document_that_would_need_gigabytes_fails_its_feed_alone(server: FeedServer) -> None:
    sources = Sources.model_validate(
        {
            "feeds": [{"url": f"{server.base}/laughs"}, {"url": f"{server.base}/feeds/atom-en.xml"}],
            "maxAgeHours": 0,
            "allowedAddresses": LOCAL,
        }
    )
    with contextlib.suppress(OSError):  # Linux: the peak RSS counts again from here
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    before = peak_rss_kib()
    started = time.monotonic()
    laughs, atom = read_sources(sources, now=NOW, limits=QUICK)
    assert time.monotonic() - started < QUICK.parse_timeout, "the memory cap, not the deadline, must end it"
    assert_error(laughs, "/laughs: the parser ran out of its 512 MiB memory cap")
    assert atom.error is None and len(atom.stories) == 4
    assert peak_rss_kib() - before < 64 * 1024, "the document grew this process, not only the parser's"


def test_connection_refused_and_unknown_host(fake_dns: FakeDns) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert_error(read(f"http://127.0.0.1:{port}/feed.xml"), "127.0.0.1 refused the connection")
    fake_dns.answers["nowhere.example.test"] = []
    assert_error(read("https://nowhere.example.test/feed.xml"), "could not resolve nowhere.example.test")


def test_credentials_and_tokens_never_appear_in_reports(server: FeedServer) -> None:
    url = (
        f"http://reader:hunter2@127.0.0.1:{server.server_port}/status/503?token=s3cr3t&page=2&sid=Zk93nB2qLx8wPv4mRt6Y"
    )
    report = read(url)
    error = assert_error(report, "HTTP 503 Service Unavailable", "page=2")
    for secret in ("reader", "hunter2", "s3cr3t", "Zk93nB2qLx8wPv4mRt6Y"):
        assert secret not in error and secret not in report.url


# -- the address guard -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata service address"),
        ("http://10.0.0.1/feed.xml", "10.0.0.1 is a private address"),
        ("http://[::1]:8080/feed.xml", "::1 is a loopback address"),
        ("http://0.0.0.0/feed.xml", "0.0.0.0 is an unspecified address"),
        ("http://localhost/feed.xml", "localhost resolves to"),
        ("http://100.64.1.2/feed.xml", "a shared (carrier-grade NAT) address"),
        ("http://[fd12:3456::1]/feed.xml", "a private address"),
        ("http://[fe80::1]/feed.xml", "a link-local address"),
        ("http://224.0.0.251/feed.xml", "a multicast address"),
        (
            "http://[::ffff:169.254.169.254]/feed.xml",
            "the cloud metadata service address (169.254.169.254 written as IPv6)",
        ),
        ("http://2130706433/feed.xml", "resolves to 127.0.0.1, a loopback address"),  # 127.0.0.1 in decimal
    ],
)
def test_guard_refuses_internal_addresses_without_connecting(
    url: str, expected: str, connections: list[tuple[str, int]]
) -> None:
    report = read_feed(url, max_items=5, max_age=None, now=NOW, limits=QUICK)
    assert_error(report, "refused", expected, GUARD_HINT)
    assert connections == []


def test_guard_refuses_the_local_test_server_unless_allowed(server: FeedServer) -> None:
    before = len(server.seen)
    url = f"{server.base}/feeds/atom-en.xml"
    assert_error(read(url, allowed_networks=()), "refused: 127.0.0.1 is a loopback address", GUARD_HINT)
    assert_error(read(url, allowed_networks=["10.0.0.0/8"]), "127.0.0.1 is a loopback address")
    assert len(server.seen) == before  # no request reached the server
    assert read(url, allowed_networks=(), allow_private=True).error is None
    assert read(url, allowed_networks=["127.0.0.0/8"]).error is None


def test_an_invalid_allowed_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"sources\.allowedAddresses: 'ten-dot' is not a network"):
        read_feed("https://feeds.example.test/", max_items=1, max_age=None, now=NOW, allowed_networks=["ten-dot"])


def test_connection_is_pinned_to_the_checked_address(
    server: FeedServer, fake_dns: FakeDns, connections: list[tuple[str, int]]
) -> None:
    # The first answer passes the guard; a rebinding resolver would answer the metadata address next time.
    fake_dns.answers["feeds.example.test"] = ["127.0.0.1", "169.254.169.254"]
    report = read(f"http://feeds.example.test:{server.server_port}/feeds/atom-en.xml")
    assert report.error is None and len(report.stories) == 4
    assert fake_dns.lookups == ["feeds.example.test"]
    assert connections == [("127.0.0.1", server.server_port)]
    assert server.seen[-1].host == f"feeds.example.test:{server.server_port}"


def test_the_next_address_is_tried_when_one_refuses(
    server: FeedServer, fake_dns: FakeDns, connections: list[tuple[str, int]]
) -> None:
    fake_dns.answers["feeds.example.test"] = ["127.0.0.2,127.0.0.1"]  # nothing listens on 127.0.0.2
    report = read(
        f"http://feeds.example.test:{server.server_port}/feeds/rss091-en.xml", allowed_networks=["127.0.0.0/8"]
    )
    assert report.error is None and len(report.stories) == 3
    assert [host for host, _ in connections] == ["127.0.0.2", "127.0.0.1"]


def test_a_name_with_any_internal_address_is_refused_as_a_whole(
    fake_dns: FakeDns, connections: list[tuple[str, int]]
) -> None:
    fake_dns.answers["mixed.example.test"] = ["93.184.215.14,10.0.0.5"]
    report = read_feed("https://mixed.example.test/feed.xml", max_items=5, max_age=None, now=NOW, limits=QUICK)
    assert_error(report, "refused: mixed.example.test resolves to 10.0.0.5, a private address")
    assert connections == []


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(folder / "ca.pem", folder / "feeds.pem", folder / "feeds.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    ca = [openssl, "req", "-x509", *ec, "-keyout", str(folder / "ca.key"), "-out", str(files.ca)]
    subprocess.run([*ca, "-subj", "/CN=anchor test CA"], check=True, capture_output=True)
    leaf = [openssl, "req", "-x509", *ec, "-keyout", str(files.key), "-out", str(files.certificate)]
    signed = ["-CA", str(files.ca), "-CAkey", str(folder / "ca.key"), "-subj", "/CN=feeds.example.test"]
    extensions = ["-addext", "subjectAltName=DNS:feeds.example.test", "-addext", "basicConstraints=critical,CA:FALSE"]
    subprocess.run([*leaf, *signed, *extensions], check=True, capture_output=True)
    return files


@pytest.fixture(scope="module")
def tls_server(tls_files: TlsFiles) -> Iterator[FeedServer]:
    httpd = FeedServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files.certificate, tls_files.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    yield from serve(httpd)


def test_https_is_pinned_with_sni_and_certificate_checked_for_the_name(
    tls_server: FeedServer, tls_files: TlsFiles, fake_dns: FakeDns, connections: list[tuple[str, int]]
) -> None:
    fake_dns.answers["feeds.example.test"] = ["127.0.0.1", "169.254.169.254"]
    fake_dns.answers["other.example.test"] = ["127.0.0.1"]
    session = requests.Session()
    session.verify = str(tls_files.ca)
    port = tls_server.server_port
    report = read(f"https://feeds.example.test:{port}/feeds/rdf-ja.xml", session=session)
    assert report.error is None and len(report.stories) == 3
    assert tls_server.seen[-1].host == f"feeds.example.test:{port}"
    assert connections == [("127.0.0.1", port)]
    # Same address, another name: the certificate is checked against the URL's name, not the address.
    mismatch = read(f"https://other.example.test:{port}/feeds/rdf-ja.xml", session=session)
    assert_error(mismatch, "TLS certificate of other.example.test was not accepted", "other.example.test")
    fake_dns.answers["feeds.example.test"] = ["127.0.0.1"]
    unknown_ca = read(f"https://feeds.example.test:{port}/feeds/rdf-ja.xml")
    assert_error(unknown_ca, "TLS certificate of feeds.example.test was not accepted")


# -- cleaning --------------------------------------------------------------------------------------------


def feed_file(folder: Path, *items: str, title: str = "テスト") -> Path:
    """An RSS 2.0 document with these <item> bodies, written to `folder`."""
    body = "".join(f"<item>{item}</item>" for item in items)
    document = f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{title}</title>{body}'
    path = folder / "feed.xml"
    path.write_text(document + "</channel></rss>", encoding="utf-8")
    return path


def only_story(folder: Path, description: str, *, title: str = "見出し", limits: FeedLimits = QUICK) -> Story:
    path = feed_file(
        folder, f"<title>{title}</title><link>https://example.com/a</link><description>{description}</description>"
    )
    report = read_feed(str(path), max_items=5, max_age=None, now=NOW, limits=limits)
    assert report.error is None and len(report.stories) == 1, report
    return report.stories[0]


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        (
            "<![CDATA[<p>First paragraph.</p><p>Second <b>bold</b> paragraph.</p>]]>",
            "First paragraph. Second bold paragraph.",
        ),
        (
            '<![CDATA[<script>var html = "<p>hidden</p>";</script>Visible text.<style>p { color: red }</style>]]>',
            "Visible text.",
        ),
        ("<![CDATA[Tom &amp;amp; Jerry]]>", "Tom & Jerry"),  # escaped twice by the feed
        ("<![CDATA[&lt;p&gt;Escaped twice&lt;/p&gt;]]>", "Escaped twice"),
        ("<![CDATA[1 &lt; 2 and 3 &gt; 2]]>", "1 < 2 and 3 > 2"),
        ("Caf&amp;eacute; &amp;#8212; &amp;#x2192;", "Café — →"),  # ☃ would be an emoji, and go
        ("line one\n    line two\t\tand\r\nthree", "line one line two and three"),
        ("東京都は\n      新たな計画を発表しました。", "東京都は新たな計画を発表しました。"),
        ("<![CDATA[<ul><li>東京</li><li>大阪</li></ul>]]>", "東京 大阪"),
        ("<![CDATA[<p>発表しました。</p><p>次のニュースです。</p>]]>", "発表しました。次のニュースです。"),
        ("全角\u3000スペースと\u00a0NBSP", "全角 スペースと NBSP"),
        ("zero\u200bwidth and soft\u00adhyphen", "zerowidth and softhyphen"),
    ],
)
def test_summary_cleaning(tmp_path: Path, description: str, expected: str) -> None:
    assert only_story(tmp_path, description).summary == expected


def test_title_cleaning(tmp_path: Path) -> None:
    story = only_story(tmp_path, "本文", title="<![CDATA[<b>速報</b>\u3000大雨&amp;強風に警戒]]>")
    assert story.title == "速報 大雨&強風に警戒"


def test_summary_is_cut_after_a_whole_sentence(tmp_path: Path) -> None:
    limits = FeedLimits(max_text_chars=60)
    english = only_story(
        tmp_path, "The council met on Monday. It approved the plan. Work starts in March next year.", limits=limits
    )
    assert english.summary == "The council met on Monday. It approved the plan."
    japanese = only_story(
        tmp_path,
        "市は新しい計画を発表しました。" * 3 + "工事は来年の春に始まる予定で、完成は再来年の秋になる見込みです。",
        limits=limits,
    )
    assert japanese.summary == "市は新しい計画を発表しました。" * 3


def test_summary_is_cut_at_a_word_or_clause_with_an_ellipsis(tmp_path: Path) -> None:
    limits = FeedLimits(max_text_chars=60)
    sentence = (
        "Residents of the old town gathered on the square on Sunday to celebrate the reopening of the market hall"
    )
    words = only_story(tmp_path, sentence, limits=limits).summary
    assert (
        len(words) <= 60 and words.endswith("…") and sentence.startswith(words[:-1]) and sentence[len(words) - 1] == " "
    )
    clause = only_story(tmp_path, "あ" * 40 + "、" + "い" * 40, limits=limits).summary
    assert clause == "あ" * 40 + "…"
    hard = only_story(tmp_path, "う" * 100, limits=limits).summary
    assert hard == "う" * 59 + "…"


def test_long_title_is_capped(tmp_path: Path) -> None:
    story = only_story(tmp_path, "本文", title="とても長い見出し" * 50)
    assert len(story.title) <= 300 and story.title.endswith("…")


def test_duplicates_within_a_feed_by_guid_link_and_title(tmp_path: Path) -> None:
    path = feed_file(
        tmp_path,
        "<title>Tokyo Marathon route changes</title><link>https://a.example.com/1</link><guid>a-1</guid>"
        "<pubDate>Mon, 23 Nov 2026 10:00:00 +0000</pubDate>",
        "<title>Tokyo marathon: route changes</title><link>https://a.example.com/2</link><guid>a-2</guid>"
        "<pubDate>Mon, 23 Nov 2026 09:00:00 +0000</pubDate>",  # same title, normalised
        "<title>Ｔｏｋｙｏ　Ｍａｒａｔｈｏｎ route changes!</title><link>https://a.example.com/3</link>"
        "<pubDate>Mon, 23 Nov 2026 08:00:00 +0000</pubDate>",  # full-width letters
        "<title>Rail strike called off</title><link>https://a.example.com/1/</link><guid>a-4</guid>"
        "<pubDate>Mon, 23 Nov 2026 07:00:00 +0000</pubDate>",  # same link as the first
        "<title>Rail strike called off, updated</title><link>https://a.example.com/5</link><guid>a-1</guid>"
        "<pubDate>Mon, 23 Nov 2026 06:00:00 +0000</pubDate>",  # same guid as the first
        "<title>New bakery opens</title><link>https://a.example.com/6</link><guid>a-6</guid>"
        "<pubDate>Mon, 23 Nov 2026 05:00:00 +0000</pubDate>",
    )
    report = read_feed(str(path), max_items=10, max_age=None, now=NOW)
    assert [s.title for s in report.stories] == ["Tokyo Marathon route changes", "New bakery opens"]


# -- items without a title, and feeds that give no story --------------------------------------------------


def test_an_item_without_a_title_is_titled_by_the_first_sentence_of_its_text(tmp_path: Path) -> None:
    path = feed_file(
        tmp_path,
        "<link>https://example.com/a</link><description>&lt;p&gt;The night bus runs all year from December."
        " The council voted for it on Monday.&lt;/p&gt;</description>",
        "<link>https://example.com/b</link>",  # neither a title nor any text: nothing to tell
    )
    (story,) = read_feed(str(path), max_items=5, max_age=None, now=NOW).stories
    assert story.title == "The night bus runs all year from December."
    assert story.summary == "The council voted for it on Monday."  # the title is not read out twice
    assert story.link == "https://example.com/a"


def test_a_mastodon_feed_without_titles_gives_its_posts(server: FeedServer) -> None:
    # maxAgeHours 0 keeps stories of any age: the feed used to give none, "newer than 0 h".
    feed = {"url": f"{server.base}/feeds/mastodon-en.xml"}
    sources = Sources.model_validate({"feeds": [feed], "maxAgeHours": 0, "allowedAddresses": LOCAL})
    (report,) = read_sources(sources, now=NOW, limits=QUICK)
    assert report.error is None
    ferry, roads, sunset, library = report.stories  # the post with neither text nor picture is left out
    assert ferry.title == "The ferry to the outer islands is running again after the storm."
    assert ferry.summary == ("Extra sailings on Tuesday and Wednesday clear the backlog. Timetable: #ferry")
    assert ferry.link == ferry.guid == "https://social.harbour.example/@council/113538400000000001"
    assert ferry.published == datetime(2026, 11, 23, 21, 30, tzinfo=UTC)
    assert {s.source for s in report.stories} == {"Harbour City Council"}
    # The map's alt text is longer than the post, but it describes the picture, not the news.
    assert (roads.title, roads.summary) == (
        "Road works on Mill Street start on Monday.",
        "Buses 3 and 7 take River Road for three weeks.",
    )
    # A post that is only a picture is told by what its alt text says.
    assert (sunset.title, sunset.summary) == ("The harbour at sunset, seen from the lighthouse on the north pier.", "")
    assert (library.title, library.summary) == (
        "本日の市議会で、新しい図書館の建設計画が承認されました。",
        "着工は来年春の予定です。 #図書館",
    )
    assert select_stories([report], 10) == list(report.stories)


def test_a_feed_whose_items_have_neither_title_nor_text_says_so(tmp_path: Path) -> None:
    path = feed_file(
        tmp_path, "<link>https://example.com/a</link>", "<link>https://example.com/b</link><description> </description>"
    )
    report = read_feed(str(path), max_items=5, max_age=None, now=NOW)
    assert_error(report, "feed.xml: the feed has 2 items, none with a title or text")


def test_a_feed_whose_items_are_all_too_old_names_the_age_limit(tmp_path: Path) -> None:
    old = "<pubDate>Sun, 01 Nov 2026 09:00:00 +0000</pubDate>"
    day = timedelta(hours=24)
    path = feed_file(tmp_path, f"<title>One</title>{old}", f"<title>Two</title>{old}")
    report = read_feed(str(path), max_items=5, max_age=day, now=NOW)
    assert_error(report, "feed.xml: all 2 items are older than 24 h (spec.sources.maxAgeHours")
    path = feed_file(tmp_path, f"<title>One</title>{old}", "<link>https://example.com/b</link>")
    report = read_feed(str(path), max_items=5, max_age=day, now=NOW)
    assert_error(report, "the feed has 2 items: 1 without a title or text and 1 older than 24 h")
    path = feed_file(tmp_path, f"<title>One</title>{old}")
    report = read_feed(str(path), max_items=5, max_age=day, now=NOW)
    assert_error(report, "the feed's one item is older than 24 h")


# -- across feeds ----------------------------------------------------------------------------------------


def story(title: str, hour: int | None, *, link: str = "", guid: str = "", source: str = "A") -> Story:
    published = datetime(2026, 11, 23, hour, tzinfo=UTC) if hour is not None else None
    return Story(title, link or f"https://{source.lower()}.example.com/{title}", source, "", published, guid)


def test_select_stories_newest_first_across_feeds_without_duplicates() -> None:
    first = FeedReport("a", (story("a1", 9, guid="1"), story("a2", 7, guid="2"), story("a3", None, guid="3")))
    second = FeedReport(
        "b",
        (
            story("b1", 8, guid="1", source="B"),  # the same numbered guid as a1 but another story: kept
            story("a2 again", 10, link="http://a.example.com/a2/", source="B"),  # a2's link: a duplicate
            story("b3", None, source="B"),
        ),
    )
    broken = FeedReport("c", error="c: HTTP 500 Internal Server Error")
    assert [s.title for s in select_stories([first, second, broken], 10)] == ["a2 again", "a1", "b1", "a3", "b3"]
    assert [s.title for s in select_stories([first, second], 2)] == ["a2 again", "a1"]
    same_url_guid = FeedReport("d", (story("a1 elsewhere", 11, guid="https://a.example.com/story/1", source="D"),))
    again = FeedReport("e", (story("a1 copy", 6, guid="https://a.example.com/story/1", source="E"),))
    assert [s.title for s in select_stories([same_url_guid, again], 5)] == ["a1 elsewhere"]


def test_read_sources_reads_every_feed_in_order(server: FeedServer) -> None:
    sources = Sources.model_validate(
        {
            "feeds": [
                {"url": f"{server.base}/feeds/rss20-ja.xml", "name": "みなと", "maxItems": 2},
                {"url": f"{server.base}/broken"},
                {"url": "atom-en.xml"},
            ],
            "maxItemsPerFeed": 3,
            "maxAgeHours": 48,
            "allowedAddresses": LOCAL,
        }
    )
    reports = read_sources(sources, now=NOW, base_dir=FEEDS, limits=QUICK)
    assert [r.url for r in reports] == [f"{server.base}/feeds/rss20-ja.xml", f"{server.base}/broken", "atom-en.xml"]
    assert [s.source for s in reports[0].stories] == ["みなと", "みなと"]
    assert reports[1].error is not None and "not an RSS or Atom feed" in reports[1].error
    assert len(reports[2].stories) == 3
    chosen = select_stories(reports, 3)
    assert [s.title for s in chosen] == [
        "来年の干支「午」にちなんだ展示、市立博物館で始まる",
        "【速報】 北海道東部で震度４ 津波の心配なし",
        "Ferry service resumes after winter storm",
    ]
    private = Sources.model_validate({"feeds": [{"url": f"{server.base}/feeds/rss20-ja.xml"}]})
    (refused,) = read_sources(private, now=NOW, limits=QUICK)
    assert refused.error is not None and "127.0.0.1 is a loopback address" in refused.error
