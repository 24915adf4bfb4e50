"""The feed parser process: one process serves feed after feed, and what a hostile document can do to it is
bounded. Its memory has a cap, so a document that would need gigabytes fails that document rather than the job
(in a pod, the memory limit would kill the whole job); its time has one deadline that counts from the moment a
parse has the process, starting the process and handing it the document included."""

from __future__ import annotations

import functools
import resource
import sys
import time
from pathlib import Path

import pytest

from job.news.parser_process import ParseFailed, ParseJob, ParserProcess
from job.news.reader import FeedLimits

ATOM = (Path(__file__).resolve().parents[1] / "fixtures" / "feeds" / "atom-en.xml").read_bytes()
DEFAULTS = FeedLimits()
# Processes that misbehave on purpose: one that never says it is ready, one that never reads its document.
NEVER_READY = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]
NEVER_READS = [sys.executable, "-c", "import signal; print('ready', flush=True); signal.pause()"]


@functools.cache
def quadratic_entities() -> bytes:
    """A "billion laughs" document that feedparser's entity filter lets through (it refuses nested entities, not
    big ones): one 100 KiB entity referenced 3,000 times, 110 KiB in all, far below the feed size limit. Its
    expansion is 300 MB of text; without a cap the parser process grew to 930 MiB (16 s to parse it)."""
    entity = "lol " * 25_600
    declaration = f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{entity}">\n]>\n'
    item = f"<item><title>Laughs</title><description>{'&a;' * 3000}</description></item>"
    return f'{declaration}<rss version="2.0"><channel><title>Laughs</title>{item}</channel></rss>'.encode()


def job(data: bytes, *, max_memory: int = DEFAULTS.max_parser_memory) -> ParseJob:
    return ParseJob.of(
        data,
        content_type="application/atom+xml",
        location="https://chronicle.example.com/feed.xml",
        max_entries=DEFAULTS.max_entries,
        max_text_chars=DEFAULTS.max_text_chars,
        max_memory=max_memory,
    )


@pytest.fixture
def parser() -> ParserProcess:
    return ParserProcess()


def test_one_process_serves_feed_after_feed(parser: ParserProcess) -> None:
    try:
        assert parser.pid is None
        assert len(parser.parse(job(ATOM), timeout=10).entries) == 4
        first = parser.pid
        assert len(parser.parse(job(ATOM), timeout=10).entries) == 4
        assert parser.pid == first is not None
    finally:
        parser.close()


def test_a_document_that_needs_more_memory_than_the_cap_fails_on_its_own(parser: ParserProcess) -> None:
    try:
        parser.parse(job(ATOM), timeout=10)  # started: what follows is the hostile document's time alone
        children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, over every child reaped
        started = time.monotonic()
        with pytest.raises(ParseFailed, match=r"^the parser ran out of its 512 MiB memory cap \(the document"):
            parser.parse(job(quadratic_entities()), timeout=DEFAULTS.parse_timeout)
        assert time.monotonic() - started < DEFAULTS.parse_timeout, "the cap, not the deadline, must end it"
        assert parser.pid is None, "the process that held the memory is gone"
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        assert after == children_peak or after <= DEFAULTS.max_parser_memory // 1024, "the child outgrew its cap"
        assert len(parser.parse(job(ATOM), timeout=10).entries) == 4, "a fresh process parses the next feed"
    finally:
        parser.close()


def test_the_deadline_counts_starting_the_process() -> None:
    stuck = ParserProcess(NEVER_READY)
    started = time.monotonic()
    with pytest.raises(ParseFailed, match=r"^the feed parser process did not start within 0\.5 s$"):
        stuck.parse(job(ATOM), timeout=0.5)
    assert time.monotonic() - started < 5
    assert stuck.pid is None


def test_a_tiny_deadline_is_spent_on_the_real_start_up(parser: ParserProcess) -> None:
    # A fresh interpreter takes tens of milliseconds to say it is ready: more than this whole deadline.
    with pytest.raises(ParseFailed, match=r"did not start within 0\.001 s"):
        parser.parse(job(ATOM), timeout=0.001)
    assert parser.pid is None
    try:
        assert len(parser.parse(job(ATOM), timeout=10).entries) == 4
    finally:
        parser.close()


def test_the_deadline_counts_handing_over_the_document() -> None:
    deaf = ParserProcess(NEVER_READS)
    started = time.monotonic()
    with pytest.raises(ParseFailed, match=r"parsing took longer than 0\.5 s"):
        deaf.parse(job(b"<rss>" + b" " * (4 << 20)), timeout=0.5)  # far more than a pipe holds
    assert time.monotonic() - started < 5
    assert deaf.pid is None
