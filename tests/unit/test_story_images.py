"""The stories' own pictures: where a story's picture comes from (its feed's media:content, media:thumbnail or
image enclosure, else its article's og:image), what fetching and decoding one may cost, and where it sits on the
story slide."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image

from api.netguard import AddressPolicy
from api.v1alpha1 import Sources, Video
from job.memory.checkpoint import _story, story_document
from job.model import PictureRoom, Script, Segment, Story
from job.news.fetch import FetchFailed
from job.news.page_picture import page_picture, picture_in_head
from job.news.parser_process import ParseJob, _parse_document, web_url
from job.news.pictures import ImageLimits, StoryImages, Unusable, fetch_story_images, prepare_picture
from job.news.reader import FeedLimits, read_feed
from job.video.cast.portrait import EYES, MOUTHS, Portrait
from job.video.fonts import Font, resolve_font
from job.video.layout import Layout, Side
from job.video.slides import Studio
from job.video.story_picture import MAX_UPSCALE, picture_room
from tests.support.http import Reply, ScriptedServer, scripted_server

AIRED = datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'
GREEN, MAGENTA = (20, 200, 90), (220, 40, 200)
LOCAL = Sources.model_validate({"feeds": [{"url": "https://feeds.example/rss"}], "allowedAddresses": ["127.0.0.1/32"]})
DEFAULT = Sources.model_validate({"feeds": [{"url": "https://feeds.example/rss"}]})
QUICK = ImageLimits(connect_timeout=2.0, read_timeout=5.0)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (320, 180), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else (*colour, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def declared_png(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares `width` x `height` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def parsed(feed: str, location: str | None = "https://feeds.example/news/rss.xml") -> list[str]:
    job = ParseJob.of(
        feed.encode(),
        content_type="application/rss+xml",
        location=location,
        max_entries=50,
        max_text_chars=500,
        max_memory=1 << 30,
    )
    return [entry.image for entry in _parse_document(job).entries]


def rss(*items: str) -> str:
    entries = "".join(
        f"<item><title>Story {n}</title><link>https://news.example/a/{n}</link>{item}</item>"
        for n, item in enumerate(items)
    )
    return f'<?xml version="1.0"?><rss version="2.0" {MEDIA}><channel><title>T</title>{entries}</channel></rss>'


# -- where a story's picture comes from: its feed ---------------------------------------------------------------


def test_a_feed_names_pictures_by_media_content_thumbnail_and_enclosure() -> None:
    images = parsed(
        rss(
            '<media:content url="https://img.example/a.jpg" medium="image"/>'
            '<media:thumbnail url="https://img.example/a-small.jpg"/>',
            '<media:content url="https://img.example/video.mp4" medium="video"/>'
            '<media:thumbnail url="https://img.example/b-thumb.jpg"/>',
            '<enclosure url="https://img.example/c.png" type="image/png" length="1"/>',
            '<enclosure url="https://audio.example/d.mp3" type="audio/mpeg" length="1"/>',
            '<media:content url="https://img.example/e.webp" type="image/webp"/>',
            "",
        )
    )
    assert images == [
        "https://img.example/a.jpg",  # media:content before media:thumbnail
        "https://img.example/b-thumb.jpg",  # a video is no picture
        "https://img.example/c.png",
        "",  # an audio enclosure is no picture
        "https://img.example/e.webp",
        "",
    ]


def test_an_atom_enclosure_link_and_relative_urls_resolve_against_the_feed() -> None:
    atom = """<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
    <entry><title>A</title><id>1</id><link href="https://news.example/a"/>
      <link rel="enclosure" type="image/jpeg" href="pics/a.jpg"/></entry>
    <entry><title>B</title><id>2</id><link href="https://news.example/b"/>
      <link rel="enclosure" type="application/pdf" href="b.pdf"/></entry></feed>"""
    assert parsed(atom) == ["https://feeds.example/news/pics/a.jpg", ""]
    relative = rss('<media:content url="/img/a.jpg" medium="image"/>', '<media:thumbnail url="//cdn.example/b.png"/>')
    assert parsed(relative) == ["https://feeds.example/img/a.jpg", "https://cdn.example/b.png"]
    # A feed read from a file has no URL of its own: its entries' links are the base.
    assert parsed(relative, location=None) == ["https://news.example/img/a.jpg", "https://cdn.example/b.png"]


@pytest.mark.parametrize(
    "url",
    ["data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)", "file:///etc/passwd", "ftp://img.example/a.jpg"],
)
def test_a_picture_that_is_no_http_url_is_dropped(url: str) -> None:
    assert parsed(rss(f'<media:content url="{url}" medium="image"/>')) == [""]
    fallback = '<enclosure url="https://img.example/ok.jpg" type="image/jpeg"/>'
    assert parsed(rss(f'<media:thumbnail url="{url}"/>{fallback}')) == ["https://img.example/ok.jpg"]


def test_a_feed_urls_credentials_never_reach_its_pictures_or_links() -> None:
    """A feed read with user:password in its URL: relative pictures and links resolve against it without them
    (they would be published in the manifest, on the page and in the feeds)."""
    feed = rss(
        '<media:thumbnail url="/img/1.jpg"/>', '<media:content url="https://u:p@img.example/2.jpg" medium="image"/>'
    )
    secret = "https://user:s3cr3t@feeds.example/news/rss?token=abc"
    assert parsed(feed, location=secret) == ["https://feeds.example/img/1.jpg", "https://img.example/2.jpg"]
    job = ParseJob.of(
        rss("").replace("https://news.example/a/0", "/a/0").encode(),
        content_type="application/rss+xml",
        location=secret,
        max_entries=5,
        max_text_chars=500,
        max_memory=1 << 30,
    )
    (entry,) = _parse_document(job).entries
    assert entry.link == "https://feeds.example/a/0"


@pytest.mark.parametrize(
    "url", ["http:\t//etc/passwd", "https://a\x1b[31m.example/x.png", "https://img.example/\u202ex.png"]
)
def test_a_picture_url_with_control_or_formatting_characters_is_dropped(url: str) -> None:
    assert web_url(url.encode().decode("unicode_escape")) == ""


def test_a_stories_picture_comes_through_the_news_stage_and_its_checkpoint(tmp_path: Path) -> None:
    feed = rss('<media:content url="https://img.example/a.jpg" medium="image"/>')
    (tmp_path / "feed.xml").write_text(feed, encoding="utf-8")
    report = read_feed("feed.xml", base_dir=tmp_path, max_items=5, max_age=None, now=AIRED, limits=FeedLimits())
    (story,) = report.stories
    assert story.image == "https://img.example/a.jpg"
    assert _story(story_document(story)) == story
    old = {k: v for k, v in story_document(story).items() if k != "image"}  # a checkpoint from before pictures
    assert _story(old).image == ""


# -- where a story's picture comes from: its article's page ---------------------------------------------------


def test_og_image_from_a_pages_head() -> None:
    page = b"""<!doctype html><html><head><title>A</title>
    <meta name="twitter:image" content="https://img.example/tw.jpg">
    <meta property="og:image" content="/pics/og.jpg?size=large&amp;v=2">
    </head><body><meta property="og:image" content="https://img.example/body.jpg"></body></html>"""
    assert picture_in_head(page, "https://news.example/a/1") == "https://news.example/pics/og.jpg?size=large&v=2"
    twitter = b'<html><head><meta name="twitter:image" content="tw.png"><base href="https://cdn.example/x/"></head>'
    assert picture_in_head(twitter, "https://news.example/a/1") == "https://cdn.example/x/tw.png"


@pytest.mark.parametrize(
    "page",
    [
        b"<html><head><title>No picture</title></head><body><img src='a.jpg'></body></html>",
        b"<html><head></head><body><meta property='og:image' content='https://img.example/late.jpg'></body>",
        b"<html><head><meta property='og:image' content='javascript:alert(1)'></head>",
        b"",
        b"\x00\xff not html <<<",
    ],
)
def test_a_page_that_names_no_picture(page: bytes) -> None:
    assert picture_in_head(page, "https://news.example/a/1") == ""


@pytest.fixture
def pages() -> Iterator[ScriptedServer]:
    head = b"<html><head><meta property='og:image' content='/early.png'>"
    padding = b"<!-- " + b"x" * (600 * 1024) + b" -->"
    routes = {
        "/huge": (head + b"</head><body>" + b"<p>words</p>" * 500_000, "text/html; charset=utf-8"),
        "/late": (b"<html><head>" + padding + b"<meta property='og:image' content='/late.png'></head>", "text/html"),
        "/video": (b"\x00" * 1000, "video/mp4"),
    }

    def route(method: str, path: str, body: bytes) -> Reply:
        if path == "/moved":
            return Reply(302, b"", "text/plain", {"Location": "/huge"})
        data, kind = routes.get(path, (b"not found", "text/plain"))
        return Reply(200 if path in routes else 404, data, kind)

    with scripted_server(route) as server:
        yield server


def test_only_a_pages_head_is_read_and_a_huge_page_is_cut_off(pages: ScriptedServer) -> None:
    policy = AddressPolicy.of(True, [])
    # 6 MiB of page: the feeds' fetcher would refuse it as too large; its first 512 KiB hold the head.
    assert page_picture(pages.url + "/huge", policy=policy, limits=QUICK) == pages.url + "/early.png"
    assert page_picture(pages.url + "/moved", policy=policy, limits=QUICK) == pages.url + "/early.png"
    # A meta tag past the first 512 KiB is never read.
    assert page_picture(pages.url + "/late", policy=policy, limits=QUICK) == ""
    assert page_picture(pages.url + "/video", policy=policy, limits=QUICK) == ""
    with pytest.raises(FetchFailed, match="HTTP 404"):
        page_picture(pages.url + "/gone", policy=policy, limits=QUICK)
    with pytest.raises(FetchFailed, match="loopback"):
        page_picture(pages.url + "/huge", policy=AddressPolicy.of(False, []), limits=QUICK)


# -- fetching and decoding a picture ------------------------------------------------------------------------------


def test_a_picture_is_decoded_upright_flattened_and_fitted() -> None:
    picture = prepare_picture(png(GREEN, (1600, 900)), "image/png", PictureRoom((700, 580), (1, 2, 3), MAX_UPSCALE))
    assert picture.mode == "RGB" and picture.size == (700, 394)
    transparent = prepare_picture(
        png(GREEN, (200, 100), mode="RGBA"), None, PictureRoom((700, 580), (30, 40, 50), MAX_UPSCALE)
    )
    assert transparent.size == (400, 200), "a small picture is enlarged at most twice"
    assert transparent.getpixel((10, 10)) == (30, 40, 50), "transparency is flattened onto the card colour"
    jpeg = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise: the picture is upright once turned
    Image.new("RGB", (1200, 600), MAGENTA).save(jpeg, format="JPEG", exif=exif)
    upright = prepare_picture(jpeg.getvalue(), "image/jpeg", PictureRoom((700, 580), (0, 0, 0), MAX_UPSCALE))
    assert upright.size[1] > upright.size[0]


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (png(GREEN), "text/html; charset=utf-8", "not a picture (text/html)"),
        (b"<html>not a picture</html>", "image/png", "not a JPEG, PNG, WebP or GIF picture"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "not a JPEG, PNG, WebP or GIF picture"),
        (declared_png(100_000, 100_000), "image/png", "decompression bomb"),  # Pillow's own error
        (declared_png(10_000, 9_000), "image/png", "decompression bomb"),  # Pillow's warning, made an error
        (declared_png(7_000, 7_000), "image/png", "too large (7000x7000 pixels; at most 40 megapixels)"),
        (png(GREEN)[:200], "image/png", "a corrupt picture"),
        (declared_png(640, 480), "application/octet-stream", "a corrupt picture"),
        (png(GREEN, (1, 1)), "image/png", "too small (1x1 pixels)"),
    ],
)
def test_what_is_not_a_usable_picture(data: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(Unusable) as refused:
        prepare_picture(data, content_type, PictureRoom((700, 580), (0, 0, 0), MAX_UPSCALE))
    assert reason in str(refused.value)


def _stories(base: str, *paths: str) -> list[Story]:
    return [
        Story(f"Story {n}", "", "Wire", "", AIRED, image=base + path if path else "") for n, path in enumerate(paths)
    ]


@pytest.fixture
def pictures() -> Iterator[ScriptedServer]:
    files = {
        "/green.png": (png(GREEN), "image/png"),
        "/big.png": (png(GREEN, (2000, 2000)) + b"\0" * 200_000, "image/png"),
        "/page.html": (b"<html><head></head></html>", "text/html"),
        "/bomb.png": (declared_png(100_000, 100_000), "image/png"),
        "/cut.png": (png(GREEN)[:200], "image/png"),
    }

    def route(method: str, path: str, body: bytes) -> Reply:
        data, kind = files.get(path.split("?")[0], (b"not found", "text/plain"))
        return Reply(200 if data != b"not found" else 404, data, kind)

    with scripted_server(route) as server:
        yield server


def test_each_unusable_picture_is_named_once_and_the_others_are_prepared(
    pictures: ScriptedServer, tmp_path: Path
) -> None:
    limits = ImageLimits(connect_timeout=2.0, read_timeout=5.0, max_bytes=100 * 1024)
    stories = _stories(
        pictures.url, "/green.png", "/big.png", "/page.html", "/bomb.png", "/cut.png", "/gone.png?token=s3cr3t", ""
    )
    found = fetch_story_images(stories, LOCAL, picture_room(Video()), tmp_path, limits=limits)
    assert list(found.files) == [stories[0]] and found.urls[stories[0]] == pictures.url + "/green.png"
    with Image.open(found.files[stories[0]]) as prepared:
        assert prepared.format == "PNG" and prepared.getpixel((5, 5)) == GREEN
    assert found.summary == "1 of 7 stories have a picture"
    assert [problem.split(": ", 1)[1] for problem in found.unusable] == [
        "the response is larger than 100 KiB, the most a picture may be",
        "not a picture (text/html)",
        "too large (over 40 megapixels: a decompression bomb?)",
        "a corrupt picture (OSError)",
        "HTTP 404 Not Found",
    ]
    assert all(problem.startswith("127.0.0.1: ") for problem in found.unusable)
    assert found.warning is not None and found.warning.startswith("5 story pictures could not be used")
    assert "s3cr3t" not in found.warning and "/gone.png" not in found.warning


def test_a_picture_on_a_private_address_is_refused_by_default(pictures: ScriptedServer, tmp_path: Path) -> None:
    stories = _stories(pictures.url, "/green.png")
    found = fetch_story_images(stories, DEFAULT, picture_room(Video()), tmp_path, limits=QUICK)
    assert not found.files and not list(tmp_path.iterdir())
    (problem,) = found.unusable
    assert "127.0.0.1" in problem and "a loopback address" in problem
    assert "list its network in sources.allowedAddresses" in problem and "allowPrivateAddresses" not in problem
    # What opens private addresses to the feeds does not open them to pictures the feeds' content names.
    private_feeds = DEFAULT.model_copy(update={"allow_private_addresses": True})
    assert not fetch_story_images(stories, private_feeds, picture_room(Video()), tmp_path, limits=QUICK).files
    allowed = DEFAULT.model_copy(update={"allowed_addresses": ["127.0.0.1/32"]})
    assert list(fetch_story_images(stories, allowed, picture_room(Video()), tmp_path, limits=QUICK).files) == stories


def test_a_story_without_a_picture_anywhere_makes_no_warning(pictures: ScriptedServer, tmp_path: Path) -> None:
    stories = [Story("A", pictures.url + "/page.html", "Wire", ""), Story("B", pictures.url + "/gone", "Wire", "")]
    found = fetch_story_images(stories, LOCAL, picture_room(Video()), tmp_path, limits=QUICK)
    assert found == StoryImages(2) and found.warning is None
    assert found.summary == "0 of 2 stories have a picture"


# -- on the slide -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ipaex() -> Font:
    return resolve_font(None, env={}, system_fonts=(), system_dirs=())


def _script(*stories: Story) -> Script:
    segments = (Segment("intro", ("a",)), *(Segment("story", ("b",), s) for s in stories), Segment("outro", ("c",)))
    return Script("ja", "アンカーニュース", "ずんだもん", AIRED, segments)


def _colour_box(image: Image.Image, colour: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    pixels = np.asarray(image.convert("RGB"))
    rows, columns = np.nonzero(np.all(pixels == colour, axis=2))
    if not rows.size:
        return None
    return int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1


@pytest.mark.parametrize("resolution", ["1920x1080", "1280x720", "1080x1920"])
@pytest.mark.parametrize("anchor", [False, True, "cast"])
def test_a_picture_fills_its_room_on_the_story_slide(
    ipaex: Font, tmp_path: Path, resolution: str, anchor: bool | str
) -> None:
    """Beside nobody, beside a still anchor image, or between two members of the cast standing left and right."""
    with_picture = Story(
        "新駅が開業　駅前は大勢の人でにぎわう", "https://news.example/1", "地域新聞", "開業しました。" * 9
    )
    without = Story("市議会が新しい予算を可決", "https://news.example/2", "地域新聞", "可決しました。")
    path = tmp_path / "story-1.png"
    Image.new("RGB", (1600, 900), GREEN).save(path)
    settings: dict[str, object] = {"resolution": resolution}
    if anchor is True:
        Image.new("RGBA", (300, 450), (*MAGENTA, 255)).save(tmp_path / "anchor.png")
        settings["anchorImage"] = str(tmp_path / "anchor.png")
    video = Video.model_validate(settings)
    script = _script(with_picture, without)
    magenta = Portrait(
        Image.new("RGBA", (300, 450), (*MAGENTA, 255)),
        dict.fromkeys(MOUTHS, Image.new("RGBA", (300, 450))),
        dict.fromkeys(EYES, Image.new("RGBA", (300, 450))),
    )
    cast: list[tuple[str, Portrait, Side]] = [("a", magenta, "left"), ("b", magenta, "right")]
    on_screen = cast if anchor == "cast" else []
    studio = Studio(script, video, ipaex, "VOICEVOX:ずんだもん", pictures={with_picture: path}, cast=on_screen)
    slide = studio.slide(1)
    layout = Layout(*video.size, ("left", "right") if on_screen else ("right",) if anchor else ())
    box = _colour_box(slide.image, GREEN)
    assert box is not None
    left, top, right, bottom = box
    room = layout.card
    assert room[0] <= left and right <= room[2] and room[1] <= top and bottom <= room[3]
    assert abs((right - left) / (bottom - top) - 16 / 9) < 0.02, "the picture keeps its proportions"
    assert bottom < layout.lower_third[1], "the picture stays above the lower third"
    share = (0.4 if anchor else 0.8) if layout.vertical else (0.22 if anchor == "cast" else 0.25 if anchor else 0.35)
    assert right - left > share * layout.width, "the picture is large enough to see"
    assert "写真: 地域新聞" in slide.texts
    for text, (x0, y0, x1, y1) in zip(slide.texts, slide.boxes, strict=True):
        assert x1 <= left or x0 >= right or y1 <= top or y0 >= bottom, f"{text!r} is drawn over the picture"
    anchor_box = _colour_box(slide.image, MAGENTA)
    assert (anchor_box is not None) == bool(anchor)
    if anchor_box is not None:  # the box around every magenta pixel: around both members when they stand apart
        side_by_side = anchor == "cast" and not layout.vertical
        clear = anchor_box[1] >= bottom or (anchor_box[0] >= right if not side_by_side else True)
        assert clear, "the picture keeps clear of the anchor"
        for side in set(layout.sides):
            member = _colour_box(slide.image.crop(layout.cast_box(side)), MAGENTA)
            assert member is not None, f"the member on the {side} is on the slide"
            x0, y0, x1, y1 = layout.cast_box(side)
            assert x1 <= left or x0 >= right or y1 <= top or y0 >= bottom, "the picture keeps clear of the cast"
            for text, (t0, u0, t1, u1) in zip(slide.texts, slide.boxes, strict=True):
                assert t1 <= x0 or t0 >= x1 or u1 <= y0 or u0 >= y1, f"{text!r} is drawn over the cast"
    # The story without a picture, and every other picture, is drawn exactly as with no pictures at all.
    plain = Studio(script, video, ipaex, "VOICEVOX:ずんだもん", cast=on_screen)
    for segment in (0, 2, 3):
        assert studio.slide(segment).image.tobytes() == plain.slide(segment).image.tobytes()
        assert studio.slide(segment).texts == plain.slide(segment).texts
    assert plain.slide(1).image.tobytes() != slide.image.tobytes()
