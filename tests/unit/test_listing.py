"""The broadcast's page and feeds as built from manifests (job/publish/listing.py, job/publish/feeds.py): hostile text
escaped, only http(s) story links, the expiry notice only for presigned links, the newest `listing.runs` runs, runs
without narration left out of the podcast, and feeds that feedparser, podcast apps' tags and our own news stage read
right."""

from __future__ import annotations

import io
import json
import uuid
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import pytest
from PIL import Image

from job.news import reader
from job.publish import feeds, listing
from job.publish.listing import Catalogue, Links, ListedRun, UnlistedRun
from tests.support.builders import a_broadcast

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
JST = "+09:00"
SIZES = {
    "video.mp4": (123_456, "video/mp4"),
    "narration.m4a": (23_456, "audio/mp4"),
    "thumbnail.jpg": (3_456, "image/jpeg"),
    "subtitles.vtt": (456, "text/vtt; charset=utf-8"),
}
HOSTILE_TITLE = '<script>alert("t")</script> & "quotes" \x00\x0b'
STORIES = [
    {"title": "<img src=x onerror=alert(1)>", "source": "<b>Src</b>", "link": "javascript:alert(1)"},
    {"title": "Mixed case", "source": "S", "link": " JaVaScRiPt:alert(2)"},
    {"title": "Data", "source": "S", "link": "data:text/html,<script>alert(3)</script>"},
    {"title": "Quote breaker", "source": "S", "link": 'https://evil.example/" onmouseover="alert(4)'},
    {"title": "Fine", "source": "Good News", "link": "https://news.example/a?b=1&c=2"},
]


def manifest(run_id: str, hour: int, *, narration: bool = True, **fields: Any) -> bytes:
    """A manifest as job/pipeline.py publishes it, aired at `hour`:00 JST on 2026-11-30."""
    objects = [
        {
            "name": name,
            "key": f"news/morning/{run_id}/{name}",
            "sha256": "0" * 64,
            "size": size + hour,
            "contentType": kind,
        }
        for name, (size, kind) in SIZES.items()
        if narration or name != "narration.m4a"
    ]
    document = {
        "apiVersion": "anchor.news/v1alpha1",
        "kind": "BroadcastManifest",
        "broadcast": "morning",
        "runId": run_id,
        "airedAt": f"2026-11-30T{hour:02d}:00:00{JST}",
        "language": "en",
        "title": "Morning News",
        "durationSeconds": 95.4,
        "stories": [{"title": f"Story of {run_id}", "source": "Wire", "link": f"https://news.example/{run_id}"}],
        "credits": ["VOICEVOX:ずんだもん"],
        "objects": objects,
        **fields,
    }
    return json.dumps(document, ensure_ascii=False).encode()


def runs(count: int, **fields: Any) -> list[ListedRun]:
    return [listing.read_run(f"run-{h}", manifest(f"run-{h}", h, **fields)) for h in range(count)]


def catalogue(listed: list[ListedRun], count: int = 30) -> Catalogue:
    broadcast = a_broadcast("morning").language("en").script(title="Morning News").model()
    return listing.catalogue(listing.channel_of(broadcast), listed, count, NOW)


def public(base: str = "https://cdn.example/news/morning") -> Links:
    return Links(lambda run, name: f"{base}/{run}/{name}", lambda name: f"{base}/{name}", lambda name: f"{base}/{name}")


def xml_root(document: bytes) -> ElementTree.Element:
    return ElementTree.fromstring(document)  # noqa: S314 (our own feed, built in the test)


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Anchors()
    parser.feed(page)
    return parser.tags


# -- reading manifests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"objects": []}', "airedAt"),
        (json.dumps({"airedAt": "2026-11-30T07:00:00"}).encode(), "airedAt"),  # no offset: when was that?
        (manifest("r", 7).replace(b'"video.mp4"', b'"other.mp4"'), "video.mp4"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_a_manifest_the_listing_cannot_use_says_why(data: bytes, why: str) -> None:
    with pytest.raises(UnlistedRun, match=why):
        listing.read_run("r", data)


def test_manifest_values_of_the_wrong_type_are_dropped_not_trusted() -> None:
    data = manifest(
        "r",
        7,
        title=["not", "text"],
        durationSeconds="long",
        language='en"><script>',
        stories=[{"title": 3}, "x", {"title": "Kept", "link": 7}],
        credits="VOICEVOX:x",
        cast=[{"name": 7}, "ずんだもん", {"name": "x" * 500}, {"name": "めたん"}] + [{"name": "n"}] * 50,
    )
    document = json.loads(data)
    document["objects"].append({"name": "../escape", "size": 1, "contentType": "x"})
    document["objects"].append({"name": "bool.bin", "size": True, "contentType": "x"})
    run = listing.read_run("r", json.dumps(document).encode())
    assert run.title == "r" and run.duration_seconds is None and run.language == "und"
    assert [(s.title, s.link) for s in run.stories] == [("Kept", None)]
    assert run.credits == ()
    assert run.cast[0] == "x" * 40 and run.cast[1] == "めたん" and len(run.cast) <= 5  # bounded, the rest dropped
    assert {f.name for f in run.files} == set(SIZES)


@pytest.mark.parametrize(
    ("link", "kept"),
    [
        ("https://news.example/a?b=1&c=2", True),
        ("http://news.example/", True),
        ("HTTPS://NEWS.EXAMPLE/", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,hi", False),
        ("vbscript:msgbox", False),
        ("//news.example/a", False),
        ("/relative", False),
        ("https://", False),
        ('https://x.example/"onmouseover=', False),
        ("https://[::1", False),
        ("", False),
    ],
)
def test_only_absolute_http_links_are_safe(link: str, kept: bool) -> None:
    assert (listing.safe_link(link) == link) is kept


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        ("https://user:pass@feeds.example/a?b=1#c", "https://feeds.example/a?b=1#c"),
        ("http://token@feeds.example:8080/a", "http://feeds.example:8080/a"),
        ("https://user:p%40ss@feeds.example/a", "https://feeds.example/a"),
        ("https://a@b@feeds.example/", "https://feeds.example/"),
        ("https://@feeds.example/", "https://feeds.example/"),
        ("https://user:pass@[::1]:8443/a", "https://[::1]:8443/a"),
        ("javascript://user:pass@feeds.example/%0aalert(1)", None),
        ("https://user:pass@/a", None),
    ],
)
def test_credentials_in_a_link_are_dropped_and_the_rest_kept(link: str, shown: str | None) -> None:
    assert listing.safe_link(link) == shown


def test_credentials_in_a_story_link_reach_neither_the_page_nor_the_feeds() -> None:
    stories = [{"title": "Paywalled", "source": "S", "link": "https://reader:s3cret@feeds.example/a"}]
    listed = [listing.read_run("run-1", manifest("run-1", 7, stories=stories))]
    page = listing.page(catalogue(listed), public(), expires_at=None)
    assert 'href="https://feeds.example/a"' in page
    documents = [
        page.encode(),
        *(build(catalogue(listed), public()) for build in (feeds.podcast_feed, feeds.video_feed)),
    ]
    for document in documents:
        assert b"s3cret" not in document and b"reader" not in document
    assert "1. Paywalled (S) https://feeds.example/a" in feedparser.parse(documents[1]).entries[0].summary


# -- the page --------------------------------------------------------------------------------------------------


def test_hostile_titles_are_escaped_and_only_http_story_links_are_linked() -> None:
    listed = [listing.read_run("run-1", manifest("run-1", 7, title=HOSTILE_TITLE, stories=STORIES))]
    page = listing.page(catalogue(listed), public(), expires_at=None)

    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt; &amp; &#34;quotes&#34;" in page
    assert "\x00" not in page and "\x0b" not in page
    hrefs = [attrs.get("href") or "" for tag, attrs in tags(page) if tag == "a"]
    assert "https://news.example/a?b=1&c=2" in hrefs, "a fine link is linked (its & escaped in the markup)"
    assert 'href="https://news.example/a?b=1&amp;c=2"' in page
    assert all(h.startswith("https://") for h in hrefs), hrefs
    assert not any("evil.example" in h or "alert" in h for h in hrefs)
    attributes = [name for _, attrs in tags(page) for name in attrs]
    assert not any(name.startswith("on") for name in attributes), "no event handler got in through a quote"
    for story in STORIES:  # every story is still shown, as text
        assert listing._text(story["title"], 300).replace("<", "&lt;").replace(">", "&gt;") in page


def test_each_run_has_a_player_with_poster_and_subtitles_inside_it_named_by_the_run() -> None:
    listed = runs(2)
    page = listing.page(catalogue(listed), public(), expires_at=None)
    found = tags(page)
    videos = [attrs for tag, attrs in found if tag == "video"]
    assert [v["data-run"] for v in videos] == ["run-1", "run-0"], "newest first"
    first = videos[0]
    assert first["id"] == "video-run-1" and "controls" in first and first["preload"] == "metadata"
    assert first["poster"] == "https://cdn.example/news/morning/run-1/thumbnail.jpg"
    start = page.index('<video id="video-run-1"')
    inside = page[start : page.index("</video>", start)]
    assert '<track kind="subtitles" src="https://cdn.example/news/morning/run-1/subtitles.vtt" srclang="en"' in inside
    assert " default>" in inside
    assert '<source src="https://cdn.example/news/morning/run-1/video.mp4" type="video/mp4">' in inside
    links = [(attrs.get("rel"), attrs.get("type"), attrs.get("href")) for tag, attrs in found if tag == "link"]
    assert ("alternate", "application/rss+xml", "https://cdn.example/news/morning/podcast.xml") in links
    assert ("alternate", "application/rss+xml", "https://cdn.example/news/morning/videos.xml") in links
    assert "https://cdn.example/news/morning/run-1/narration.m4a" in page
    assert "Voice: VOICEVOX:ずんだもん" in page, "the voice's credit, as VOICEVOX's terms require"
    assert '<time datetime="2026-11-30T01:00:00+09:00">2026-11-30 01:00 (UTC+09:00)</time> · 1:35' in page
    assert page.count("<article") == 2


def test_the_expiry_notice_is_there_only_for_presigned_links() -> None:
    listed = runs(1)
    expires = listing.expiry(NOW, 7 * 24 * 3600)
    presigned = listing.page(catalogue(listed), public(), expires_at=expires)
    assert 'id="expiry"' in presigned and "2026-12-07 08:00 UTC" in presigned
    lasting = listing.page(catalogue(listed), public(), expires_at=None)
    assert 'id="expiry"' not in lasting and "expire" not in lasting.lower() and "temporary" not in lasting


def test_expiry_is_rounded_down_to_the_minute() -> None:
    assert listing.expiry(datetime(2026, 11, 30, 8, 0, 59, 999, tzinfo=UTC), 60) == datetime(
        2026, 11, 30, 8, 1, tzinfo=UTC
    )


def test_runs_beyond_listing_runs_are_dropped_newest_kept() -> None:
    listed = runs(6)
    kept = catalogue(listed, count=3)
    assert [r.run_id for r in kept.runs] == ["run-5", "run-4", "run-3"]
    page = listing.page(kept, public(), expires_at=None)
    assert page.count("<article") == 3 and "run-2" not in page
    for build in (feeds.podcast_feed, feeds.video_feed):
        parsed = feedparser.parse(build(kept, public()))
        assert [e.guid for e in parsed.entries] == [f"anchor:morning/run-{h}" for h in (5, 4, 3)]


def test_an_empty_listing_is_still_a_valid_page_and_feed() -> None:
    empty = catalogue([])
    assert "No broadcast has been published yet." in listing.page(empty, public(), expires_at=None)
    parsed = feedparser.parse(feeds.podcast_feed(empty, public()))
    assert not parsed.bozo and parsed.entries == []


# -- the feeds -------------------------------------------------------------------------------------------------


def test_runs_without_narration_stay_on_the_page_and_video_feed_but_not_in_the_podcast() -> None:
    old = [listing.read_run(f"old-{h}", manifest(f"old-{h}", h, narration=False)) for h in (1, 2)]
    new = [listing.read_run("new-3", manifest("new-3", 3))]
    listed = catalogue([*old, *new])
    podcast = feedparser.parse(feeds.podcast_feed(listed, public()))
    videos = feedparser.parse(feeds.video_feed(listed, public()))
    assert [e.guid for e in podcast.entries] == ["anchor:morning/new-3"]
    assert [e.guid for e in videos.entries] == ["anchor:morning/new-3", "anchor:morning/old-2", "anchor:morning/old-1"]
    page = listing.page(listed, public(), expires_at=None)
    assert page.count("<article") == 3
    assert "old-1/narration.m4a" not in page


@pytest.mark.parametrize(("build", "media"), [(feeds.podcast_feed, "narration.m4a"), (feeds.video_feed, "video.mp4")])
def test_feeds_parse_and_every_enclosure_has_the_exact_length_and_type(build: Any, media: str) -> None:
    listed = runs(3)
    parsed = feedparser.parse(build(catalogue(listed), public()))
    assert not parsed.bozo, parsed.get("bozo_exception")
    feed = parsed.feed
    assert feed.title.startswith("Morning News") and feed.language == "en"
    assert feed.link == "https://cdn.example/news/morning/index.html"
    assert feed.author == "アンカー"
    assert feed.image.href == "https://cdn.example/news/morning/cover.jpg"
    assert feed.itunes_type == "episodic" and feed.podcast_guid
    assert [t.term for t in feed.tags] == ["News"]
    assert len(parsed.entries) == 3
    by_run = {r.run_id: r for r in listed}
    for entry in parsed.entries:
        run = by_run[entry.guid.removeprefix("anchor:morning/")]
        (enclosure,) = entry.enclosures
        assert enclosure.href == f"https://cdn.example/news/morning/{run.run_id}/{media}"
        size, kind = SIZES[media]
        assert int(enclosure.length) == size + int(run.run_id[-1]) == run.file(media).size  # type: ignore[union-attr]
        assert enclosure.type == kind == listing.read_run(run.run_id, manifest(run.run_id, 0)).file(media).content_type  # type: ignore[union-attr]
        assert entry.guidislink is False
        assert entry.itunes_duration == "95"
        assert entry.image.href.endswith(f"/{run.run_id}/thumbnail.jpg")
        assert entry.published_parsed[:4] == (
            2026,
            11,
            29,
            15 + int(run.run_id[-1]),
        )  # JST hour h is UTC 15+h the day before
        assert f"Story of {run.run_id} (Wire) https://news.example/{run.run_id}" in entry.summary


def test_feeds_carry_the_itunes_and_podcasting_tags_apps_expect() -> None:
    listed = runs(2)
    root = xml_root(feeds.podcast_feed(catalogue(listed), public()))
    ns = {"itunes": feeds.ITUNES, "podcast": feeds.PODCASTING, "atom": feeds.ATOM}
    channel = root.find("channel")
    assert channel is not None
    for tag in ("title", "link", "description", "language", "lastBuildDate"):
        assert (channel.findtext(tag) or "").strip(), tag
    assert channel.findtext("lastBuildDate") == "Mon, 30 Nov 2026 08:00:00 GMT"
    assert channel.findtext("itunes:author", namespaces=ns) == "アンカー"
    image = channel.find("itunes:image", ns)
    assert image is not None and image.get("href") == "https://cdn.example/news/morning/cover.jpg"
    category = channel.find("itunes:category", ns)
    assert category is not None and category.get("text") == "News"
    assert channel.findtext("itunes:explicit", namespaces=ns) == "false"
    assert channel.findtext("itunes:type", namespaces=ns) == "episodic"
    guid = channel.findtext("podcast:guid", namespaces=ns)
    assert guid == str(uuid.uuid5(feeds.PODCAST_NAMESPACE, "cdn.example/news/morning/podcast.xml"))
    assert uuid.UUID(guid or "").version == 5
    self_link = channel.find("atom:link", ns)
    assert self_link is not None and self_link.get("href") == "https://cdn.example/news/morning/podcast.xml"
    for item in channel.findall("item"):
        guid_element = item.find("guid")
        assert guid_element is not None and guid_element.get("isPermaLink") == "false"
        transcript = item.find("podcast:transcript", ns)
        assert transcript is not None and transcript.get("type") == "text/vtt"
        assert (transcript.get("url") or "").endswith("/subtitles.vtt")
        assert item.find("itunes:image", ns) is not None and item.findtext("itunes:duration", namespaces=ns) == "95"


def test_podcast_guid_follows_the_podcasting_namespace_example() -> None:
    # The namespace's own example: https://mp3s.nashownotes.com/pc20rss.xml
    assert feeds.podcast_guid("https://mp3s.nashownotes.com/pc20rss.xml/") == "917393e3-1b1e-5cef-ace4-edaa54e1f810"


def test_hostile_text_and_characters_xml_cannot_carry_still_make_valid_feeds() -> None:
    listed = [listing.read_run("run-1", manifest("run-1", 7, title=HOSTILE_TITLE, stories=STORIES))]
    for build in (feeds.podcast_feed, feeds.video_feed):
        data = build(catalogue(listed), public())
        root = xml_root(data)  # well-formed despite \x00 and \x0b in the manifest
        item = root.find("channel/item")
        assert item is not None and (item.findtext("title") or "").startswith('<script>alert("t")</script> & "quotes"')
        assert b"<script>" not in data, "markup in text is escaped, never raw"
        parsed = feedparser.parse(data)
        assert not parsed.bozo


def test_our_own_news_stage_reads_both_feeds(tmp_path: Path) -> None:
    """The feeds are ordinary RSS: the job's own reader (fetch, parser process, cleaning) takes every episode."""
    listed = runs(3)
    for name, build in (("podcast.xml", feeds.podcast_feed), ("videos.xml", feeds.video_feed)):
        path = tmp_path / name
        path.write_bytes(build(catalogue(listed), public()))
        report = reader.read_feed(str(path), max_items=50, max_age=None, now=NOW)
        assert report.error is None, report.error
        assert [s.guid for s in report.stories] == [
            "anchor:morning/run-2",
            "anchor:morning/run-1",
            "anchor:morning/run-0",
        ]
        assert [s.link for s in report.stories] == [
            f"https://cdn.example/news/morning/run-{h}/video.mp4" for h in (2, 1, 0)
        ]
        assert all(s.title.startswith("Morning News — 2026-11-30") for s in report.stories)
        assert report.stories[0].published == datetime(2026, 11, 29, 17, 0, tzinfo=UTC)


# -- the cover -------------------------------------------------------------------------------------------------


def test_the_cover_is_a_square_jpeg_with_the_thumbnail_letterboxed() -> None:
    thumbnail = Image.new("RGB", (1280, 720), (200, 30, 40))
    thumbnail.paste((250, 250, 250), (600, 300, 680, 420))
    data = io.BytesIO()
    thumbnail.save(data, format="JPEG")
    with Image.open(io.BytesIO(listing.cover_jpeg(data.getvalue()))) as cover:
        assert cover.format == "JPEG" and cover.size == (1400, 1400)
        top, centre = cover.getpixel((700, 20)), cover.getpixel((700, 700))
    assert isinstance(top, tuple) and isinstance(centre, tuple)
    assert all(abs(a - b) < 12 for a, b in zip(top, (200, 30, 40), strict=True)), "background: the slide's colour"
    assert min(centre) > 220, "the thumbnail is in the middle"


@pytest.mark.parametrize("thumbnail", [None, b"", b"not an image"])
def test_without_a_usable_thumbnail_the_cover_is_plain(thumbnail: bytes | None) -> None:
    with Image.open(io.BytesIO(listing.cover_jpeg(thumbnail))) as cover:
        assert cover.size == (1400, 1400)


def test_channel_defaults_name_the_sources_and_the_anchor() -> None:
    broadcast = (
        a_broadcast("evening")
        .feed("https://www3.nhk.example/rss.xml")
        .feed("https://wire.example/feed", name="Wire")
        .script(title="夕方のニュース", anchorName="ずんだ")
        .model()
    )
    channel = listing.channel_of(broadcast)
    assert channel.title == "夕方のニュース" and channel.author == "ずんだ" and channel.language == "ja"
    assert "www3.nhk.example" in channel.description and "Wire" in channel.description
    spec = a_broadcast().output(listing={"description": "Mine", "author": "Me"}).model()
    assert (listing.channel_of(spec).description, listing.channel_of(spec).author) == ("Mine", "Me")


def test_a_late_rerun_sorts_by_air_time() -> None:
    late = listing.read_run("run-0", manifest("run-0", 0, createdAt=(NOW + timedelta(days=3)).isoformat()))
    kept = catalogue([late, *runs(3)[1:]], count=2)
    assert [r.run_id for r in kept.runs] == ["run-2", "run-1"]


def test_a_japanese_broadcast_gets_a_japanese_page() -> None:
    broadcast = a_broadcast("asa").feed("https://wire.example/feed").script(title="朝のニュース").model()
    japanese = listing.catalogue(listing.channel_of(broadcast), runs(1), 30, NOW)
    text = listing.page(japanese, public(), expires_at=listing.expiry(NOW, 3600))
    assert '<html lang="ja">' in text
    assert "動画をダウンロード（MP4）" in text and "字幕（WebVTT）" in text and "音声: VOICEVOX" in text
    assert "一時的なもので、 <strong>2026-11-30 09:00 UTC</strong> に無効になります" in text
    assert "Download the video" not in text and "Subtitles (WebVTT)" not in text


def test_the_page_runs_no_script_whatever_gets_into_it() -> None:
    text = listing.page(catalogue(runs(1)), public(), expires_at=None)
    policy = next(
        a["content"] for t, a in tags(text) if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    )
    assert policy is not None and "default-src 'none'" in policy and "script-src" not in policy
    assert "media-src *" in policy, "the players load from the bucket, a CDN or presigned URLs"


@pytest.mark.parametrize("listing_fields", [{"description": "Line\x0bbreak\x00 here", "author": "Me\x00\x0b"}, {}])
def test_control_characters_in_the_spec_still_make_valid_feeds(listing_fields: dict[str, str]) -> None:
    """Text from the spec reaches both feeds; YAML's escapes (\\v, \\0) can put there what XML cannot carry."""
    broadcast = (
        a_broadcast("morning")
        .language("en")
        .feed("https://wire.example/feed", name="Wire\x0b\x00 desk")
        .script(title="Morning\x0bNews\x00", anchorName="Zun\x00da\x0b")
        .output(listing=listing_fields)
        .model()
    )
    channel = listing.channel_of(broadcast)
    assert channel.title == "Morning News" and channel.author == ("Me" if listing_fields else "Zun da")
    expected = "Line break here" if listing_fields else "Morning News: the news from Wire desk."
    assert channel.description == expected
    listed = listing.catalogue(channel, runs(2), 30, NOW)
    for build in (feeds.podcast_feed, feeds.video_feed):
        data = build(listed, public())
        root = xml_root(data)  # raises on a character XML 1.0 cannot carry
        assert root.findtext("channel/description") == expected
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.feed.title.startswith("Morning News") and len(parsed.entries) == 2
    page = listing.page(listed, public(), expires_at=None)
    assert "\x00" not in page and "\x0b" not in page


def test_a_japanese_default_description_names_local_feeds_in_japanese() -> None:
    broadcast = a_broadcast("asa").feed("feed.xml").feed("https://wire.example/feed").script(title="朝").model()
    assert listing.channel_of(broadcast).description == "朝：手元のフィード、wire.exampleのニュースをお伝えします。"
