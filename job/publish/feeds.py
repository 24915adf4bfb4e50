"""The broadcast's feeds, built from a Catalogue (job/publish/listing.py): pure functions, no I/O.

podcast.xml is RSS 2.0 with the tags podcast apps read (iTunes', and Podcasting 2.0's podcast:guid,
podcast:transcript and podcast:person for each run's presenters), one item per run with narration.m4a; videos.xml
is the same feed with each run's video.mp4.
Everything is built with ElementTree, which escapes all text and attributes; the text was cleaned of characters XML
cannot carry when the manifests were read.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime

from job.publish.listing import (
    AUDIO_TYPE,
    COVER,
    NARRATION,
    PAGE,
    PODCAST,
    SUBTITLES,
    THUMBNAIL,
    VIDEO,
    VIDEO_TYPE,
    VIDEOS,
    Catalogue,
    Links,
    ListedFile,
    ListedRun,
    air_time,
)

PODCAST_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
"""The Podcasting 2.0 namespace's UUID, from which podcast:guid is derived (UUIDv5 of the feed's address)."""
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCASTING = "https://podcastindex.org/namespace/1.0"
ATOM = "http://www.w3.org/2005/Atom"
for _prefix, _uri in (("itunes", ITUNES), ("podcast", PODCASTING), ("atom", ATOM)):
    ElementTree.register_namespace(_prefix, _uri)  # the prefixes apps and validators expect, not ns0, ns1


@dataclass(frozen=True)
class _Medium:
    file: str
    media_type: str
    feed: str
    title: Callable[[str], str]


_AUDIO = _Medium(NARRATION, AUDIO_TYPE, PODCAST, lambda title: title)
_VIDEO = _Medium(VIDEO, VIDEO_TYPE, VIDEOS, lambda title: f"{title} (video)")


def podcast_feed(catalogue: Catalogue, links: Links) -> bytes:
    """podcast.xml: RSS 2.0 with the iTunes and Podcasting 2.0 tags, one item per run that has narration.m4a
    (runs published before there was one are left out)."""
    return _feed(catalogue, links, _AUDIO)


def video_feed(catalogue: Catalogue, links: Links) -> bytes:
    """videos.xml: the same feed with each run's video.mp4 as the enclosure."""
    return _feed(catalogue, links, _VIDEO)


def podcast_guid(address: str) -> str:
    """podcast:guid as the Podcasting 2.0 namespace defines it: UUIDv5 of the feed's address without its scheme
    and trailing slashes."""
    bare = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", address).rstrip("/")
    return str(uuid.uuid5(PODCAST_NAMESPACE, bare))


def item_guid(broadcast: str, run_id: str) -> str:
    """An episode's guid: the same for a run whatever its URLs (they may be presigned anew each time)."""
    return f"anchor:{broadcast}/{run_id}"


def _feed(catalogue: Catalogue, links: Links, medium: _Medium) -> bytes:
    channel_info = catalogue.channel
    page_url = links.broadcast_file(PAGE)
    rss = ElementTree.Element("rss", {"version": "2.0"})
    channel = _child(rss, "channel")
    _child(channel, "title", medium.title(channel_info.title))
    _child(channel, "link", page_url)
    _child(channel, "description", channel_info.description)
    _child(channel, "language", channel_info.language)
    _child(channel, "generator", "anchor")
    _child(channel, "lastBuildDate", format_datetime(catalogue.built_at.astimezone(UTC), usegmt=True))
    if catalogue.runs:
        _child(channel, "pubDate", format_datetime(catalogue.runs[0].aired_at.astimezone(UTC), usegmt=True))
    _child(channel, f"{{{ATOM}}}link", href=links.broadcast_file(medium.feed), rel="self", type="application/rss+xml")
    cover = links.broadcast_file(COVER)
    image = _child(channel, "image")
    for tag, text in (("url", cover), ("title", medium.title(channel_info.title)), ("link", page_url)):
        _child(image, tag, text)
    _child(channel, f"{{{ITUNES}}}author", channel_info.author)
    _child(channel, f"{{{ITUNES}}}summary", channel_info.description)
    _child(channel, f"{{{ITUNES}}}image", href=cover)
    _child(channel, f"{{{ITUNES}}}category", text="News")
    _child(channel, f"{{{ITUNES}}}explicit", "false")
    _child(channel, f"{{{ITUNES}}}type", "episodic")
    _child(channel, f"{{{PODCASTING}}}guid", podcast_guid(links.permanent(medium.feed)))
    for run in catalogue.runs:
        enclosure = run.file(medium.file)
        if enclosure is not None:
            _item(channel, run, enclosure, medium, links, channel_info.broadcast)
    ElementTree.indent(rss)
    document: bytes = ElementTree.tostring(rss, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _item(
    channel: ElementTree.Element,
    run: ListedRun,
    enclosure: ListedFile,
    medium: _Medium,
    links: Links,
    broadcast: str,
) -> None:
    item = _child(channel, "item")
    # The air time in the title: every run of a broadcast has the same title, and apps (and readers that drop
    # repeated headlines, such as our own news stage) need to tell episodes apart.
    _child(item, "title", f"{run.title} — {air_time(run.aired_at)}")
    # The run's video, not the page's #run- anchor: readers that compare links without their fragment (our own
    # news stage among them) would take every episode for the same story.
    _child(item, "link", links.run_file(run.run_id, VIDEO))
    _child(item, "guid", item_guid(broadcast, run.run_id), isPermaLink="false")
    _child(item, "pubDate", format_datetime(run.aired_at.astimezone(UTC), usegmt=True))
    _child(item, "description", _story_lines(run))
    _child(
        item,
        "enclosure",
        url=links.run_file(run.run_id, medium.file),
        length=str(enclosure.size),
        type=medium.media_type,
    )
    if run.duration_seconds is not None:
        _child(item, f"{{{ITUNES}}}duration", str(round(run.duration_seconds)))
    _child(item, f"{{{ITUNES}}}episodeType", "full")
    if run.file(THUMBNAIL):
        _child(item, f"{{{ITUNES}}}image", href=links.run_file(run.run_id, THUMBNAIL))
    if run.file(SUBTITLES):
        transcript = {"url": links.run_file(run.run_id, SUBTITLES), "type": "text/vtt", "rel": "captions"}
        _child(item, f"{{{PODCASTING}}}transcript", **transcript, language=run.language)
    for number, name in enumerate(run.cast):
        # Podcasting 2.0's people, with roles from its taxonomy: the lead hosts, the others co-host.
        _child(item, f"{{{PODCASTING}}}person", name, group="cast", role="host" if number == 0 else "co-host")


def _story_lines(run: ListedRun) -> str:
    lines = []
    for number, story in enumerate(run.stories, start=1):
        source = f" ({story.source})" if story.source else ""
        lines.append(f"{number}. {story.title}{source}" + (f" {story.link}" if story.link else ""))
    lines += [f"Voice: {credit}" for credit in run.credits]
    if run.music_credit:
        lines.append(f"Music: {run.music_credit}")
    return "\n".join(lines) or run.title


def _child(
    parent: ElementTree.Element, tag: str, content: str | None = None, /, **attributes: str
) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag, attributes)
    element.text = content
    return element
