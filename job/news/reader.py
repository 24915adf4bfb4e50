"""The news stage: read RSS/Atom feeds without trusting them, and turn their entries into clean `Story` objects.

A feed is someone else's server sending someone else's document, so everything about reading one is bounded
(`FeedLimits`), and each concern has its own module:

* `job.news.fetch`: where we connect (an SSRF guard, pinned addresses, redirects checked hop by hop), how long
  (connect, read and overall deadlines) and how much (bytes on the wire and after decompression);
* `job.news.parser_process`: feedparser in a separate process with a deadline and a memory cap, killed when it
  overruns either, with entries considered per feed bounded; whatever it raises is reported, not propagated;
* `job.shared.text`: HTML stripped, entities decoded, whitespace squeezed, every text kept cut to a length.

This module reads feeds with those, then filters (age), orders (newest first) and de-duplicates the stories.
Whatever goes wrong with one feed becomes that feed's `FeedReport.error`, one line that names the feed's URL
(without credentials or token-like query values); the broadcast goes on with the other feeds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from api.netguard import AddressPolicy
from job.model import ConfigError, FeedReport, Story
from job.news.fetch import ALLOW_HINT, FetchFailed, display_url, fetch
from job.news.parser_process import PARSER, Entry, ParseFailed, ParseJob
from job.shared.text import SOURCE_CHARS, one_line, shorten, squeeze

if TYPE_CHECKING:
    from api.v1alpha1 import Feed, Sources

_PARALLEL_FEEDS = 4
_FUTURE_SLACK = timedelta(days=1)


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
    """Seconds feedparser may spend on one document, starting its worker process included; the process is killed
    after this."""
    max_parser_memory: int = 512 * 1024 * 1024
    """Address space the parser process may use while it parses one document (about 30 MiB for a typical feed,
    60 MiB for one of 5 MiB): a document that needs more, such as one whose entities expand quadratically, fails
    its feed with a clear message instead of growing until the pod's memory limit kills the whole job."""
    max_text_chars: int = 2000
    """Longest story summary kept after cleaning (titles are capped at 300)."""
    document: str = "a feed"
    """What is fetched, as errors name it ("larger than 5 MiB, the most a feed may be")."""
    allow_hint: str = ALLOW_HINT
    """How to allow an address the policy refuses, as errors say it."""


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
    report's `error` says what went wrong, or why the feed gave no story (no items, items without any text,
    every item too old). Raises ConfigError only for an invalid `allowed_networks` entry.

    `session`, when given, contributes its headers and TLS settings (verify, cert); its transport adapters
    are not used, because every connection must go to an address the guard has checked.
    """
    shown = display_url(url)
    try:
        policy = AddressPolicy.of(allow_private, allowed_networks)
    except ValueError as exc:
        raise ConfigError(f"sources.allowedAddresses: {exc}") from None
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    try:
        document = fetch(url, base_dir=base_dir, policy=policy, limits=limits, session=session)
        job = ParseJob.of(
            document.data,
            content_type=document.content_type,
            location=document.location,
            max_entries=limits.max_entries,
            max_text_chars=limits.max_text_chars,
            max_memory=limits.max_parser_memory,
        )
        feed = PARSER.parse(job, timeout=limits.parse_timeout)
    except (FetchFailed, ParseFailed) as problem:
        return FeedReport(shown, error=one_line(f"{shown}: {problem}"))
    except Exception as exc:  # the contract: one feed's failure never stops the broadcast
        return FeedReport(shown, error=one_line(f"{shown}: unexpected error: {type(exc).__name__}"))
    if feed.problem:
        return FeedReport(shown, error=one_line(f"{shown}: {feed.problem}"))
    source = shorten(squeeze(feed_name or ""), SOURCE_CHARS) or feed.title or document.name
    stories = _stories(feed.entries, source=source, now=now, max_age=max_age)
    if not stories:
        return FeedReport(shown, error=one_line(f"{shown}: {_why_no_stories(feed.entries, max_age)}"))
    return FeedReport(shown, tuple(stories[: max(0, max_items)]))


def select_stories(reports: Sequence[FeedReport], count: int) -> list[Story]:
    """The broadcast's stories: every feed's stories, newest first (undated last), the same story reported
    by several feeds kept once, at most `count`."""
    stories = [story for report in reports for story in report.stories]
    return _unique(_newest_first(stories), across_feeds=True)[: max(0, count)]


# -- stories: filtering, ordering, duplicates ------------------------------------------------------------


def _stories(entries: Sequence[Entry], *, source: str, now: datetime, max_age: timedelta | None) -> list[Story]:
    stories = []
    oldest = now - max_age if max_age else None
    for entry in entries:
        if not entry.title:
            continue
        published = _published(entry.published, now)
        if oldest is not None and published is not None and published < oldest:
            continue
        stories.append(Story(entry.title, entry.link, source, entry.summary, published, entry.guid, entry.image))
    return _unique(_newest_first(stories), across_feeds=False)


def _why_no_stories(entries: Sequence[Entry], max_age: timedelta | None) -> str:
    """Why `entries` gave no story. An entry has a title unless it had neither a title nor any text, and only
    the age limit drops the others."""
    count = len(entries)
    blank = sum(1 for entry in entries if not entry.title)
    hours = max_age / timedelta(hours=1) if max_age else 0
    too_old = f"older than {hours:g} h (spec.sources.maxAgeHours; anchor news: --max-age-hours)"
    if count == 0:
        return "the feed has no items"
    if count == 1:
        return "the feed's one item has neither a title nor text" if blank else f"the feed's one item is {too_old}"
    if blank == count:
        return f"the feed has {count} items, none with a title or text"
    if blank == 0:
        return f"all {count} items are {too_old}"
    return f"the feed has {count} items: {blank} without a title or text and {count - blank} {too_old}"


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
