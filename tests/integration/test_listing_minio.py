"""The broadcast's page and feeds in a real MinIO bucket on 127.0.0.1 (job/publish/site.py): every listing object typed
right, every enclosure as long and of the type its object is, presigned links that download, public links under
spec.output.publicBaseUrl that download without credentials, no temporary key left behind, and a refused write or
a garbage manifest a warning, never a failed run."""

from __future__ import annotations

import io
import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import feedparser
import pytest
import requests
from minio import Minio
from PIL import Image

from api.v1alpha1 import NewsBroadcast
from job import pipeline
from job.progress import Reporter
from job.publish import site
from tests.support.builders import a_broadcast
from tests.support.minio_server import MinioServer, user_denied_puts
from tests.support.published import publish_run

pytestmark = pytest.mark.minio

PREFIX = "news/morning/"
LISTING_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "podcast.xml": "application/rss+xml; charset=utf-8",
    "videos.xml": "application/rss+xml; charset=utf-8",
    "cover.jpg": "image/jpeg",
}


@pytest.fixture
def admin(minio: MinioServer) -> Minio:
    return Minio(minio.endpoint, access_key=minio.access_key, secret_key=minio.secret_key, secure=False)


@pytest.fixture
def bucket(admin: Minio) -> str:
    name = f"listing-{uuid.uuid4().hex[:10]}"
    admin.make_bucket(name)
    return name


def _env(access_key: str, secret_key: str) -> dict[str, str]:
    return {"ANCHOR_S3_ACCESS_KEY_ID": access_key, "ANCHOR_S3_SECRET_ACCESS_KEY": secret_key}


def _broadcast(minio: MinioServer, bucket: str, **output: Any) -> NewsBroadcast:
    s3 = {"endpoint": minio.endpoint, "bucket": bucket, "prefix": "news", "secure": False, "presignExpirySeconds": 3600}
    return a_broadcast("morning").language("en").script(title="Morning").output(s3=s3, **output).model()


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (640, 360), colour).save(data, format="JPEG")
    return data.getvalue()


def _publish(minio: MinioServer, bucket: str, run_id: str, hour: int, scratch: Path) -> None:
    """A run as the pipeline publishes it, with small stand-in media of distinct sizes."""
    files = {
        "video.mp4": os.urandom(70_000 + hour),
        "narration.m4a": os.urandom(9_000 + hour),
        "thumbnail.jpg": _jpeg((20 * hour, 90, 160)),
        "subtitles.vtt": b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n",
    }
    stories = [{"title": f"<b>story</b> {run_id}", "source": "Wire", "link": "javascript:alert(1)"}]
    output = _broadcast(minio, bucket).spec.output
    env = _env(minio.access_key, minio.secret_key)
    publish_run(output, run_id, hour, files, scratch, stories=stories, duration=61.5, env=env)


def _read(admin: Minio, bucket: str, key: str) -> bytes:
    reply = admin.get_object(bucket, key)
    try:
        return reply.read()
    finally:
        reply.close()
        reply.release_conn()


def _keys(admin: Minio, bucket: str) -> set[str]:
    return {str(o.object_name) for o in admin.list_objects(bucket, recursive=True)}


def _key_of(url: str, bucket: str) -> str:
    path = unquote(urlsplit(url).path)
    assert path.startswith(f"/{bucket}/"), url
    return path.removeprefix(f"/{bucket}/")


def _get(url: str) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # no proxy between the test and 127.0.0.1
        return session.get(url, timeout=30)


def _presigned_expiry(url: str) -> datetime:
    query = parse_qs(urlsplit(url).query)
    (signed,), (lifetime,) = query["X-Amz-Date"], query["X-Amz-Expires"]
    return datetime.strptime(signed, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) + timedelta(seconds=int(lifetime))


def _reporter(stream: io.StringIO | None = None) -> Reporter:
    return Reporter(env={}, stream=stream or io.StringIO(), interactive=False)


def test_two_runs_listed_typed_sized_and_every_presigned_link_downloads(
    minio: MinioServer, admin: Minio, bucket: str, tmp_path: Path
) -> None:
    _publish(minio, bucket, "run-1", 6, tmp_path / "one")
    _publish(minio, bucket, "run-2", 7, tmp_path / "two")
    now = datetime.now(UTC)
    written = site.write_listing(_broadcast(minio, bucket), _env(minio.access_key, minio.secret_key), now=now)
    assert written.runs == 2 and written.left_out == ()

    for name, kind in LISTING_TYPES.items():
        stat = admin.stat_object(bucket, PREFIX + name)
        assert stat.content_type == kind, name
        assert (stat.metadata or {}).get("Cache-Control") == "no-cache", name
    assert not [k for k in _keys(admin, bucket) if ".tmp-" in k], "no temporary key is left"

    served = _get(written.page_url)
    assert served.status_code == 200 and served.headers["Content-Type"] == "text/html; charset=utf-8"
    page = served.text
    assert served.content == _read(admin, bucket, PREFIX + "index.html")
    assert "<b>story</b>" not in page and "&lt;b&gt;story&lt;/b&gt; run-2" in page
    assert "javascript:" not in page
    assert 'id="expiry"' in page
    notice = re.search(r"stop working at <strong>(\d{4}-\d\d-\d\d \d\d:\d\d) UTC</strong>", page)
    assert notice is not None
    stated = datetime.strptime(notice[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    links = [attribute.replace("&amp;", "&") for attribute in re.findall(r'(?:src|poster|href)="(http[^"]+)"', page)]
    # When the server stops honouring a link: its signing time plus its lifetime, both in its query.
    expiries = {_presigned_expiry(url) for url in links}
    (expires,) = expiries
    assert stated <= expires < stated + timedelta(seconds=60), (stated, expires)
    for url in links:
        reply = _get(url)
        assert reply.status_code == 200, url
        assert reply.content == _read(admin, bucket, _key_of(url, bucket)), url

    for feed_name, media, kind in (
        ("podcast.xml", "narration.m4a", "audio/mp4"),
        ("videos.xml", "video.mp4", "video/mp4"),
    ):
        parsed = feedparser.parse(_read(admin, bucket, PREFIX + feed_name))
        assert not parsed.bozo and len(parsed.entries) == 2
        for entry in parsed.entries:
            (enclosure,) = entry.enclosures
            key = _key_of(enclosure.href, bucket)
            assert key.endswith("/" + media)
            stat = admin.stat_object(bucket, key)
            assert int(enclosure.length) == stat.size and enclosure.type == stat.content_type == kind
            download = _get(enclosure.href)
            assert download.status_code == 200 and len(download.content) == stat.size
            assert download.headers["Content-Type"] == kind


def test_public_links_download_without_credentials(
    minio: MinioServer, admin: Minio, bucket: str, tmp_path: Path
) -> None:
    """A public-read prefix as spec.output.publicBaseUrl: the page and feeds link there and nothing expires."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
             "Resource": [f"arn:aws:s3:::{bucket}/news/*"]},
        ],
    }  # fmt: skip
    admin.set_bucket_policy(bucket, json.dumps(policy))
    _publish(minio, bucket, "run-1", 6, tmp_path / "one")
    base = f"{minio.url}/{bucket}/news"
    broadcast = _broadcast(minio, bucket, publicBaseUrl=base)
    written = site.write_listing(broadcast, _env(minio.access_key, minio.secret_key))
    assert written.page_url == f"{base}/morning/index.html"
    page = _get(written.page_url)
    assert page.status_code == 200 and 'id="expiry"' not in page.text and "X-Amz-" not in page.text
    feed = feedparser.parse(_get(f"{base}/morning/podcast.xml").content)
    (enclosure,) = feed.entries[0].enclosures
    assert enclosure.href == f"{base}/morning/run-1/narration.m4a"
    assert len(_get(enclosure.href).content) == int(enclosure.length)


def test_a_refused_listing_write_is_a_warning_and_keeps_the_old_page_whole(
    minio: MinioServer, admin: Minio, bucket: str, tmp_path: Path
) -> None:
    """A user that may publish runs but not write index.html: the temporary upload succeeds, the server-side copy
    is refused; the old page stays as it was and the temporary key is removed."""
    _publish(minio, bucket, "run-1", 6, tmp_path / "one")
    site.write_listing(_broadcast(minio, bucket), _env(minio.access_key, minio.secret_key))
    before = _read(admin, bucket, PREFIX + "index.html")
    _publish(minio, bucket, "run-2", 7, tmp_path / "two")

    user, password = user_denied_puts(minio, bucket, f"{PREFIX}index.html")

    reporter = _reporter()
    context = pipeline.RunContext("run-2", datetime.now(UTC), None, _env(user, password))
    assert pipeline._write_listing(_broadcast(minio, bucket), context, reporter) is None
    (warning,) = reporter.warnings
    assert "page and feeds were not updated" in warning and "AccessDenied" in warning
    assert password not in warning
    assert _read(admin, bucket, PREFIX + "index.html") == before, "the old page, whole"
    assert b"run-2" in _read(admin, bucket, PREFIX + "videos.xml"), "the feeds before it were written"
    assert not [k for k in _keys(admin, bucket) if ".tmp-" in k], "the temporary key is removed after the failure"


def test_a_garbage_manifest_is_a_warning_and_its_run_left_out(
    minio: MinioServer, admin: Minio, bucket: str, tmp_path: Path
) -> None:
    _publish(minio, bucket, "run-1", 6, tmp_path / "one")
    garbage = b"\x89PNG not a manifest"
    admin.put_object(bucket, PREFIX + "broken/manifest.json", io.BytesIO(garbage), len(garbage))
    admin.put_object(bucket, PREFIX + ".anchor/runs/x/manifest.json", io.BytesIO(b"{}"), 2)  # state, not a run
    log = io.StringIO()
    reporter = _reporter(log)
    context = pipeline.RunContext("run-1", datetime.now(UTC), None, _env(minio.access_key, minio.secret_key))
    page_url = pipeline._write_listing(_broadcast(minio, bucket), context, reporter)
    assert page_url is not None and _get(page_url).status_code == 200
    assert reporter.warnings == [
        "the broadcast's page and feeds leave out 1 run(s): broken: its manifest.json is not JSON"
    ]
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [e["url"] for e in events if e["event"] == "listing.done"] == [page_url]


def test_stale_temporary_keys_of_a_dead_writer_are_swept(
    minio: MinioServer, admin: Minio, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(minio, bucket, "run-1", 6, tmp_path / "one")
    stale = PREFIX + ".index.html.tmp-0123abcd"
    admin.put_object(bucket, stale, io.BytesIO(b"half"), 4)
    later = datetime.now(UTC) + site.LEFTOVER_AGE * 2  # as if the listing ran two hours after the writer died
    site.write_listing(_broadcast(minio, bucket), _env(minio.access_key, minio.secret_key), now=later)
    assert stale not in _keys(admin, bucket)
