"""The broadcast's page, built from its published runs' manifests: pure functions, no I/O.

    manifest.json bytes ──read_run──► ListedRun ──catalogue──► Catalogue ──page──► index.html
                                                                          ├─feeds.py──► podcast.xml, videos.xml
                                                                          └─cover_jpeg──► cover.jpg (newest thumbnail)

A manifest's text came from someone else's feed, so it is treated as hostile: it is cleaned once when read (control
and XML-invalid characters dropped, lengths capped), the page escapes it through Jinja2's autoescape and the feeds
through ElementTree, and a story's link is kept only when it is an http(s) URL, and without any user:password@ in
it. The spec's own words (title, description, author, feed names) are cleaned the same way: a stray control
character there would make both feeds XML no reader accepts. How a document refers to a file (a public URL, a
presigned one, a relative path) is the caller's choice, given as `Links`.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import jinja2
from PIL import Image

from api.v1alpha1 import NewsBroadcast
from job.shared.urls import without_userinfo

PAGE = "index.html"
PODCAST = "podcast.xml"
VIDEOS = "videos.xml"
COVER = "cover.jpg"
LISTING_FILES = (PAGE, PODCAST, VIDEOS, COVER)
"""What the listing writes at the broadcast's level, beside its runs."""
VIDEO = "video.mp4"
NARRATION = "narration.m4a"
THUMBNAIL = "thumbnail.jpg"
SUBTITLES = "subtitles.vtt"

PAGE_TYPE = "text/html; charset=utf-8"
FEED_TYPE = "application/rss+xml; charset=utf-8"
COVER_TYPE = "image/jpeg"
VIDEO_TYPE = "video/mp4"
AUDIO_TYPE = "audio/mp4"

COVER_SIZE = 1400
"""Pixels on each side of cover.jpg: the smallest square Apple Podcasts accepts (1400-3000)."""

_TITLE_CHARS = 300
_DESCRIPTION_CHARS = 4000  # what Apple Podcasts shows of a channel's description
_AUTHOR_CHARS = 200
_LINK_CHARS = 2048
_MAX_STORIES = 50
_NAME_CHARS = 40  # a cast member's name, as the spec bounds it
_MAX_CREDITS = 5
_MAX_FILES = 50
_COVER_MAX_PIXELS = 40_000_000
_BACKGROUND = (16, 20, 24)
# Characters XML 1.0 cannot carry at all, plus C1 controls and the other C0 controls: dropped from every text.
_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")
_LANGUAGE_NAMES = {"ja": "日本語", "en": "English", "und": "Subtitles"}


class UnlistedRun(ValueError):
    """A run's manifest the listing cannot use; the message says why."""


@dataclass(frozen=True)
class ListedFile:
    """One published file of a run, as its manifest lists it."""

    name: str
    size: int
    """Bytes, exactly: what a feed's enclosure length must say."""
    content_type: str


@dataclass(frozen=True)
class ListedStory:
    title: str
    source: str
    link: str | None
    """The story's own page: an http(s) URL without credentials, or None when the manifest had anything else."""


@dataclass(frozen=True)
class ListedRun:
    """What the page and the feeds show of one published run."""

    run_id: str
    title: str
    aired_at: datetime
    """Timezone-aware, in the broadcast's own zone."""
    duration_seconds: float | None
    language: str
    stories: tuple[ListedStory, ...]
    credits: tuple[str, ...]
    files: tuple[ListedFile, ...]
    cast: tuple[str, ...] = ()
    """The presenters' names, the lead first (manifests from before casts have none)."""
    music_credit: str = ""
    """The music bed's credit, when the run had one."""

    def file(self, name: str) -> ListedFile | None:
        return next((f for f in self.files if f.name == name), None)


@dataclass(frozen=True)
class Channel:
    """The broadcast as its page and feeds present it."""

    broadcast: str
    title: str
    description: str
    author: str
    language: str


@dataclass(frozen=True)
class Catalogue:
    """The runs a listing shows, newest first, and when it was built."""

    channel: Channel
    runs: tuple[ListedRun, ...]
    built_at: datetime


@dataclass(frozen=True)
class Links:
    """How a document refers to files: a public URL, a presigned one, a relative path or a file:// URI."""

    run_file: Callable[[str, str], str]
    """(run id, file name) → the file's address."""
    broadcast_file: Callable[[str], str]
    """A listing file (index.html, podcast.xml, videos.xml, cover.jpg) → its address."""
    permanent: Callable[[str], str]
    """A listing file → an address that never changes (no signature, no expiry): what podcast:guid is made of."""


# -- reading runs ----------------------------------------------------------------------------------------------


def read_run(run_id: str, manifest: bytes) -> ListedRun:
    """The run as its manifest.json describes it. Raises UnlistedRun when the manifest is not one the listing can
    use (not JSON, no air time, no video.mp4 among its objects)."""
    try:
        document = json.loads(manifest.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UnlistedRun("its manifest.json is not JSON") from None
    if not isinstance(document, dict):
        raise UnlistedRun("its manifest.json is not a JSON object")
    aired_at = _time(document.get("airedAt"))
    if aired_at is None:
        raise UnlistedRun("its manifest.json has no airedAt time with a UTC offset")
    files = _files(document.get("objects"))
    if not any(f.name == VIDEO for f in files):
        raise UnlistedRun(f"its manifest.json lists no {VIDEO}")
    language = _text(document.get("language"), 35)
    return ListedRun(
        run_id=run_id,
        title=_text(document.get("title"), _TITLE_CHARS) or run_id,
        aired_at=aired_at,
        duration_seconds=_seconds(document.get("durationSeconds")),
        language=language if _LANGUAGE.match(language) else "und",
        stories=tuple(_stories(document.get("stories"))),
        credits=tuple(c for c in (_text(c, 200) for c in _items(document.get("credits"), _MAX_CREDITS)) if c),
        files=files,
        cast=tuple(_cast(document.get("cast"))),
        music_credit=_text(_field(document.get("music"), "credit"), 200),
    )


def _cast(value: object) -> list[str]:
    """The presenters' names from the manifest's `cast` ([{"name": ...}, ...]), each bounded; anything else none."""
    members = [m.get("name") for m in _items(value, _MAX_CREDITS) if isinstance(m, dict)]
    return [name for name in (_text(m, _NAME_CHARS) for m in members) if name]


def safe_link(link: str) -> str | None:
    """`link` when it is an absolute http(s) URL without whitespace or quotes, else None: a story's link goes into
    an href, where javascript:, data: and the like would run or show whatever the feed wanted. A user:password@
    in it is dropped (the rest still leads to the story): the page and the feeds are public."""
    if not link or len(link) > _LINK_CHARS or any(c.isspace() or c in "\"'<>\\`" for c in link):
        return None
    try:
        parts = urlsplit(link)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return without_userinfo(link)


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(_UNFIT.sub(" ", value[: limit * 4]).split())[:limit]


def _field(value: object, name: str) -> object:
    return value.get(name) if isinstance(value, dict) else None


def _items(value: object, limit: int) -> list[object]:
    return value[:limit] if isinstance(value, list) else []


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value < 366 * 86400 else None


def _files(value: object) -> tuple[ListedFile, ...]:
    files = {}
    for entry in _items(value, _MAX_FILES):
        if not isinstance(entry, dict):
            continue
        name, size, kind = entry.get("name"), entry.get("size"), entry.get("contentType")
        if not isinstance(name, str) or not _FILE_NAME.match(name) or name in files:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            continue
        files[name] = ListedFile(name, size, _text(kind, 200) or "application/octet-stream")
    return tuple(files.values())


def _stories(value: object) -> list[ListedStory]:
    stories = []
    for entry in _items(value, _MAX_STORIES):
        if not isinstance(entry, dict):
            continue
        title = _text(entry.get("title"), _TITLE_CHARS)
        if title:
            link = _text(entry.get("link"), _LINK_CHARS)
            stories.append(ListedStory(title, _text(entry.get("source"), 100), safe_link(link)))
    return stories


# -- what is listed --------------------------------------------------------------------------------------------


def channel_of(broadcast: NewsBroadcast) -> Channel:
    """The channel from the spec: spec.output.listing's description and author, else lines made from the sources
    and the anchor's name; all of it cleaned as a manifest's text is (one line each, nothing XML cannot carry)."""
    spec = broadcast.spec
    title = _text(spec.script.title, _TITLE_CHARS) or broadcast.name
    listing = spec.output.listing
    return Channel(
        broadcast=broadcast.name,
        title=title,
        description=_text(listing.description, _DESCRIPTION_CHARS) or _default_description(broadcast, title),
        author=_text(listing.author, _AUTHOR_CHARS) or _text(spec.script.anchor_name, _AUTHOR_CHARS),
        language=spec.script.language,
    )


def _default_description(broadcast: NewsBroadcast, title: str) -> str:
    ja = broadcast.spec.script.language == "ja"
    local = "手元のフィード" if ja else "local feeds"
    feeds = broadcast.spec.sources.feeds
    names = list(dict.fromkeys(_text(f.name or urlsplit(f.url).hostname, 100) or local for f in feeds))
    more = len(names) - 5
    shown = names[:5] + ([f"ほか{more}件" if ja else f"{more} more"] if more > 0 else [])
    if ja:
        return f"{title}：{'、'.join(shown)}のニュースをお伝えします。"
    return f"{title}: the news from {', '.join(shown)}."


def catalogue(channel: Channel, runs: Sequence[ListedRun], count: int, built_at: datetime) -> Catalogue:
    """The `count` newest runs (by air time; a later run id first on a tie), newest first."""
    newest = sorted(runs, key=lambda r: (r.aired_at.timestamp(), r.run_id), reverse=True)
    return Catalogue(channel, tuple(newest[: max(0, count)]), built_at)


# -- the page --------------------------------------------------------------------------------------------------


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("job.publish", "templates"),
        autoescape=True,  # every value is escaped unless marked safe, and nothing here is
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


LABELS: dict[str, dict[str, str]] = {
    "en": {
        "podcast_feed": "Podcast feed (audio, RSS)",
        "video_feed": "Video feed (RSS)",
        "podcast": "Podcast feed",
        "videos": "Video feed",
        "expiry_before": "The links on this page, and in its feeds, are temporary: they stop working at",
        "expiry_after": ". The page is written anew, with fresh links, after each broadcast.",
        "download": "Download the video (MP4)",
        "video_file": "Video (MP4)",
        "audio_file": "Audio for podcasts (M4A)",
        "subtitles_file": "Subtitles (WebVTT)",
        "voice": "Voice:",
        "music": "Music:",
        "empty": "No broadcast has been published yet.",
        "updated": "Updated",
    },
    "ja": {
        "podcast_feed": "ポッドキャスト（音声・RSS）",
        "video_feed": "動画フィード（RSS）",
        "podcast": "ポッドキャスト",
        "videos": "動画フィード",
        "expiry_before": "このページとフィードのリンクは一時的なもので、",
        "expiry_after": " に無効になります。リンクは放送のたびに新しくなります。",
        "download": "動画をダウンロード（MP4）",
        "video_file": "動画（MP4）",
        "audio_file": "音声（M4A・ポッドキャスト用）",
        "subtitles_file": "字幕（WebVTT）",
        "voice": "音声:",
        "music": "音楽:",
        "empty": "まだ放送はありません。",
        "updated": "更新",
    },
}
"""The page's own words, in the broadcast's language (spec.script.language)."""


def page(catalogue: Catalogue, links: Links, *, expires_at: datetime | None) -> str:
    """index.html: every listed run, newest first, with its player, subtitles, stories and credits.

    `expires_at`: when the links stop working (presigned), stated on the page in UTC; None for links that last."""
    runs = [_run_view(run, links) for run in catalogue.runs]
    template = _templates().get_template("index.html.j2")
    return template.render(
        channel=catalogue.channel,
        runs=runs,
        podcast_url=links.broadcast_file(PODCAST),
        videos_url=links.broadcast_file(VIDEOS),
        expires=_utc(expires_at) if expires_at else None,
        built=_utc(catalogue.built_at),
        t=LABELS.get(catalogue.channel.language, LABELS["en"]),
    )


def _run_view(run: ListedRun, links: Links) -> dict[str, object]:
    def url(name: str) -> str | None:
        return links.run_file(run.run_id, name) if run.file(name) else None

    return {
        "id": run.run_id,
        "title": run.title,
        "aired": air_time(run.aired_at),
        "aired_iso": run.aired_at.isoformat(),
        "duration": _clock(run.duration_seconds) if run.duration_seconds is not None else None,
        "language": run.language,
        "language_name": _LANGUAGE_NAMES.get(run.language.split("-")[0].lower(), run.language),
        "video": url(VIDEO),
        "poster": url(THUMBNAIL),
        "subtitles": url(SUBTITLES),
        "audio": url(NARRATION),
        "stories": run.stories,
        "credits": run.credits,
        "music_credit": run.music_credit,
    }


def air_time(moment: datetime) -> str:
    """A moment as the page and the feeds show it: in its own zone, with the offset."""
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})" if offset else f"{moment:%Y-%m-%d %H:%M}"


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


# -- the cover -------------------------------------------------------------------------------------------------


def cover_jpeg(thumbnail: bytes | None) -> bytes:
    """cover.jpg: a COVER_SIZE square with the thumbnail letterboxed on a plain background of its own corner's
    colour (a slide's background), or the plain background alone when there is no usable thumbnail."""
    picture, background = None, _BACKGROUND
    if thumbnail:
        picture = _thumbnail(thumbnail)
        if picture is not None:
            corner = picture.getpixel((0, 0))
            background = corner if isinstance(corner, tuple) and len(corner) == 3 else _BACKGROUND
    canvas = Image.new("RGB", (COVER_SIZE, COVER_SIZE), background)
    if picture is not None:
        scale = COVER_SIZE / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        fitted = picture.resize(size, Image.Resampling.LANCZOS)
        canvas.paste(fitted, ((COVER_SIZE - size[0]) // 2, (COVER_SIZE - size[1]) // 2))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=88, optimize=True)
    return out.getvalue()


def _thumbnail(data: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > _COVER_MAX_PIXELS:
                return None
            picture: Image.Image = opened.convert("RGB")
            return picture
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def expiry(now: datetime, seconds: int) -> datetime:
    """When links presigned at `now` for `seconds` stop working, to the minute (rounded down, so never later)."""
    return (now + timedelta(seconds=seconds)).replace(second=0, microsecond=0)
