"""The broadcast's page as its viewers get it: two runs published to a real MinIO bucket whose prefix is
public-read, spec.output.publicBaseUrl pointing there, and the page opened in a real headless Chromium. The newest
run's video loads and lasts what its manifest says, its subtitles load as a track, its podcast audio plays, and
the page names no expiry (its links are permanent)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests
from minio import Minio
from PIL import Image

from job.news import reader
from tests.e2e.conftest import run_anchor
from tests.support.browser import headless_chromium, wait_for
from tests.support.builders import a_broadcast
from tests.support.http import ScriptedServer
from tests.support.minio_server import MinioServer
from voicevox_standin.server import StandinEngine

pytestmark = [pytest.mark.e2e, pytest.mark.minio]
NAME = "e2e-browser"
ALLOCATION = {"resource": "nvidia.com/gpu", "count": 2, "currency": "EUR", "price": {"onDemand": 2.5, "spot": 0.9}}


@dataclass(frozen=True)
class Published:
    page_url: str
    base: str
    """The public URL of the bucket prefix."""
    manifests: dict[str, dict[str, Any]]


def _public_read(admin: Minio, bucket: str, prefix: str) -> None:
    """Anyone may read objects under `prefix` (as a public-read prefix or a CDN's origin would be); nothing else."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"],
            }
        ],
    }
    admin.set_bucket_policy(bucket, json.dumps(policy))


def _anonymous(url: str) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, timeout=30)


@pytest.fixture(scope="module")
def published(
    feed_server: ScriptedServer, engine: StandinEngine, minio: MinioServer, tmp_path_factory: pytest.TempPathFactory
) -> Published:
    admin = Minio(minio.endpoint, access_key=minio.access_key, secret_key=minio.secret_key, secure=False)
    bucket = f"browser-{uuid.uuid4().hex[:8]}"
    admin.make_bucket(bucket)
    _public_read(admin, bucket, "news/")
    base = f"{minio.url}/{bucket}/news"
    work = tmp_path_factory.mktemp("browser")
    broadcast = (
        a_broadcast(NAME)
        .feed(f"{feed_server.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"], rememberAiredHours=0)
        .script(language="en", stories=1)
        .voice(engineUrl=engine.url)
        .video(resolution="1280x720", fps=10)
        .s3(endpoint=minio.endpoint, bucket=bucket, prefix="news", secure=False)
        .output(publicBaseUrl=base)
        .write(work / "broadcast.yaml")
    )
    env = {
        "ANCHOR_S3_ACCESS_KEY_ID": minio.access_key,
        "ANCHOR_S3_SECRET_ACCESS_KEY": minio.secret_key,
        "ANCHOR_GPU_ALLOCATION": json.dumps(ALLOCATION),
    }
    page_url = ""
    # Two slots of a schedule, as a CronJob's runs are dated (a feed reader tells the episodes apart by time too).
    for run_id, slot in (("run-1", "2026-11-29T07:00:00Z"), ("run-2", "2026-11-30T07:00:00Z")):
        slotted = {**env, "ANCHOR_SCHEDULED_TIME": slot}
        run = run_anchor("render", str(broadcast), "--run-id", run_id, env=slotted, cwd=work)
        assert run.code == 0, run.stderr
        page_url = run.result["pageUrl"]
    manifests = {
        run_id: json.loads(admin.get_object(bucket, f"news/{NAME}/{run_id}/manifest.json").read())
        for run_id in ("run-1", "run-2")
    }
    return Published(page_url, base, manifests)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path) as session:
        yield session


def test_the_public_page_plays_the_newest_run_with_its_subtitles(
    published: Published, browser: Any, tmp_path: Path
) -> None:
    assert published.page_url == f"{published.base}/{NAME}/index.html", "a permanent URL, not a presigned one"
    assert _anonymous(published.page_url).status_code == 200, "the page is public"
    browser.get(published.page_url)

    runs = browser.execute_script("return [...document.querySelectorAll('article')].map(a => a.dataset.run)")
    assert runs == ["run-2", "run-1"], "newest first"
    assert browser.execute_script("return document.getElementById('expiry')") is None, "permanent links never expire"
    duration = wait_for(
        browser,
        "const v = document.querySelector('video'); return v.readyState >= 1 && !v.error && v.duration",
        what="the first video's metadata never loaded",
    )
    assert duration == pytest.approx(published.manifests["run-2"]["durationSeconds"], abs=0.15)
    assert browser.execute_script("return document.querySelector('video').dataset.run") == "run-2"
    assert browser.execute_script("return document.querySelector('video').videoWidth") == 1280

    cues = wait_for(
        browser,
        "const t = document.querySelector('video track');"
        "return t && t.readyState === 2 && t.track.mode === 'showing' && t.track.cues.length",
        what="the subtitle track never loaded",
    )
    script = json.loads(_anonymous(f"{published.base}/{NAME}/run-2/script.json").content)
    assert cues == len(script["cues"]) > 0
    assert browser.execute_script("return document.querySelector('video track').track.kind") == "subtitles"

    audio = browser.execute_script("return document.querySelector('a[type=\"audio/mp4\"]').href")
    browser.execute_script("window.podcast = new Audio(arguments[0]); window.podcast.preload = 'metadata';", audio)
    seconds = wait_for(browser, "return window.podcast.readyState >= 1 && window.podcast.duration", what="no audio")
    assert seconds == pytest.approx(published.manifests["run-2"]["durationSeconds"], abs=0.15)

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as image:
        assert image.size[0] >= 1000
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100, "a page with text and a poster"


def test_the_feeds_enclose_every_run_with_the_objects_length_and_type(published: Published) -> None:
    for feed_name, kind, file in (
        ("podcast.xml", "audio/mp4", "narration.m4a"),
        ("videos.xml", "video/mp4", "video.mp4"),
    ):
        reply = _anonymous(f"{published.base}/{NAME}/{feed_name}")
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/rss+xml")
        feed = feedparser.parse(reply.content)
        assert not feed.bozo, feed.get("bozo_exception")
        assert [e.guid for e in feed.entries] == [f"anchor:{NAME}/run-2", f"anchor:{NAME}/run-1"]
        for entry, run_id in zip(feed.entries, ("run-2", "run-1"), strict=True):
            (enclosure,) = entry.enclosures
            assert enclosure.href == f"{published.base}/{NAME}/{run_id}/{file}"
            served = _anonymous(enclosure.href)
            assert served.status_code == 200
            assert served.headers["Content-Type"] == enclosure.type == kind
            assert len(served.content) == int(enclosure.length)
            (listed,) = [o for o in published.manifests[run_id]["objects"] if o["name"] == file]
            assert listed["size"] == int(enclosure.length)
        # The job's own reader (guarded fetch, parser process) takes every episode from the bucket too.
        report = reader.read_feed(
            f"{published.base}/{NAME}/{feed_name}",
            max_items=10,
            max_age=None,
            now=datetime.now(UTC),
            allowed_networks=["127.0.0.1/32"],
        )
        assert report.error is None, report.error
        assert [s.guid for s in report.stories] == [f"anchor:{NAME}/run-2", f"anchor:{NAME}/run-1"]
        assert [s.link for s in report.stories] == [
            f"{published.base}/{NAME}/{r}/video.mp4" for r in ("run-2", "run-1")
        ]


def test_each_manifest_says_what_gpu_time_its_run_held_and_cost(published: Published) -> None:
    for manifest in published.manifests.values():
        held = manifest["gpuTime"]
        assert (held["resource"], held["gpus"]) == ("nvidia.com/gpu", 2)
        assert held["gpuSeconds"] > 0 and "job's start" in held["measured"]
        assert held["cost"] == {
            "currency": "EUR",
            "onDemand": round(held["gpuSeconds"] / 3600 * 2.5, 4),
            "spot": round(held["gpuSeconds"] / 3600 * 0.9, 4),
        }
