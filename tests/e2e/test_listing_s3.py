"""`anchor render` into a real MinIO bucket on 127.0.0.1: the result's pageUrl is a presigned link to the
broadcast's page, which says when its links expire, and whose player, subtitles and podcast links download."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import feedparser
import pytest
import requests
from minio import Minio

from tests.e2e.conftest import run_anchor
from tests.support.builders import a_broadcast
from tests.support.http import ScriptedServer
from tests.support.minio_server import MinioServer
from voicevox_standin.server import StandinEngine

pytestmark = [pytest.mark.e2e, pytest.mark.minio]


def _get(url: str) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, timeout=30)


def test_a_run_in_a_bucket_gets_a_presigned_page_with_working_links(
    feed_server: ScriptedServer, engine: StandinEngine, minio: MinioServer, tmp_path: Path
) -> None:
    admin = Minio(minio.endpoint, access_key=minio.access_key, secret_key=minio.secret_key, secure=False)
    bucket = f"page-{uuid.uuid4().hex[:8]}"
    admin.make_bucket(bucket)
    broadcast = (
        a_broadcast("e2e-page")
        .feed(f"{feed_server.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="en", stories=1)
        .voice(engineUrl=engine.url)
        .video(resolution="1280x720", fps=10)
        .s3(endpoint=minio.endpoint, bucket=bucket, prefix="news", secure=False, presignExpirySeconds=3600)
        .write(tmp_path / "broadcast.yaml")
    )
    env = {"ANCHOR_S3_ACCESS_KEY_ID": minio.access_key, "ANCHOR_S3_SECRET_ACCESS_KEY": minio.secret_key}
    run = run_anchor("render", str(broadcast), "--run-id", "run-1", env=env, cwd=tmp_path)
    assert run.code == 0, run.stderr
    result = run.result
    assert not result.get("warnings"), result.get("warnings")

    page_url = result["pageUrl"]
    assert page_url.startswith(f"{minio.url}/{bucket}/news/e2e-page/index.html?") and "X-Amz-Signature=" in page_url
    page = _get(page_url)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'id="expiry"' in page.text and " UTC</strong>" in page.text
    first = page.text[page.text.index("<video") : page.text.index("</video>")]
    assert 'data-run="run-1"' in first
    for pattern in (r'<source src="([^"]+)"', r'<track kind="subtitles" src="([^"]+)"', r'poster="([^"]+)"'):
        match = re.search(pattern, first)
        assert match, pattern
        assert _get(match.group(1).replace("&amp;", "&")).status_code == 200, pattern
    podcast_href = re.search(
        r'<link rel="alternate" type="application/rss\+xml" title="[^"]*" href="([^"]+)"', page.text
    )
    assert podcast_href
    feed = feedparser.parse(_get(podcast_href.group(1).replace("&amp;", "&")).content)
    (enclosure,) = feed.entries[0].enclosures
    audio = _get(enclosure.href)
    assert audio.status_code == 200 and audio.headers["Content-Type"] == enclosure.type == "audio/mp4"
    assert len(audio.content) == int(enclosure.length)
    keys = {str(o.object_name) for o in admin.list_objects(bucket, prefix="news/e2e-page/")}
    assert {f"news/e2e-page/{name}" for name in ("index.html", "podcast.xml", "videos.xml", "cover.jpg")} <= keys
    assert not [k for k in keys if ".tmp-" in k]
