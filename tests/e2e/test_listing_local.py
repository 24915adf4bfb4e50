"""`anchor render` twice into a local directory: each run publishes narration.m4a (the video's own AAC), and the
broadcast's index.html, podcast.xml, videos.xml and cover.jpg are written beside the runs, newest first, with the
result's pageUrl pointing at the page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import feedparser
import pytest
from PIL import Image

from job.news import reader
from tests.e2e.conftest import AnchorRun, run_anchor
from tests.support.builders import a_broadcast
from tests.support.http import ScriptedServer
from tests.support.media import probe
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e
NAME = "e2e-listing"


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, feed_server: ScriptedServer, engine: StandinEngine
) -> tuple[list[AnchorRun], Path]:
    work = tmp_path_factory.mktemp("listing")
    broadcast = (
        a_broadcast(NAME)
        .feed(f"{feed_server.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"], rememberAiredHours=0)
        .script(language="en", title="Listing News", stories=1)
        .video(resolution="1280x720", fps=10)
        .output(directory=str(work / "out"))
        .write(work / "broadcast.yaml")
    )
    runs = []
    for run_id, scheduled in (("run-1", "2026-11-30T06:00:00Z"), ("run-2", "2026-11-30T07:00:00Z")):
        env = {"ANCHOR_VOICEVOX_URL": engine.url, "ANCHOR_SCHEDULED_TIME": scheduled}
        run = run_anchor("render", str(broadcast), "--run-id", run_id, env=env)
        assert run.code == 0, run.stderr
        runs.append(run)
    return runs, work / "out" / NAME


def test_the_result_points_at_the_page_and_the_run_reports_it(published: tuple[list[AnchorRun], Path]) -> None:
    runs, root = published
    for run in runs:
        assert run.result["pageUrl"] == (root / "index.html").as_uri()
        (done,) = [e for e in run.events if e["event"] == "listing.done"]
        assert done["url"] == run.result["pageUrl"]
        names = [e["event"] for e in run.events]
        assert names.index("store.done") < names.index("listing.done") < names.index("run.succeeded")
        assert not run.result.get("warnings"), run.result.get("warnings")
    assert {"index.html", "podcast.xml", "videos.xml", "cover.jpg"} <= {p.name for p in root.iterdir()}
    assert not [p.name for p in root.glob(".*") if p.name != ".anchor"], "no temporary file left beside the runs"


def test_each_run_publishes_the_narration_as_m4a(published: tuple[list[AnchorRun], Path]) -> None:
    _, root = published
    run_dir = root / "run-2"
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = [o for o in manifest["objects"] if o["name"] == "narration.m4a"]
    m4a = run_dir / "narration.m4a"
    assert entry["contentType"] == "audio/mp4" and entry["size"] == m4a.stat().st_size
    audio, video = probe(m4a), probe(run_dir / "video.mp4")
    assert [(s.kind, s.codec) for s in audio.streams] == [("audio", "aac")]
    assert audio.of("audio")[0].sample_rate == video.of("audio")[0].sample_rate
    assert abs(audio.duration - video.duration) < 0.1


def test_the_page_lists_both_runs_newest_first_with_working_relative_links(
    published: tuple[list[AnchorRun], Path],
) -> None:
    _, root = published
    page = (root / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'<video id="[^"]+" data-run="([^"]+)"', page) == ["run-2", "run-1"]
    first = page[page.index("<video") : page.index("</video>")]
    assert '<track kind="subtitles" src="run-2/subtitles.vtt" srclang="en"' in first
    assert 'poster="run-2/thumbnail.jpg"' in first
    assert "VOICEVOX:ずんだもん" in page
    assert 'id="expiry"' not in page
    links = set(re.findall(r'(?:src|poster|href)="([^"#:]+)"', page))  # relative links: no scheme
    assert {"podcast.xml", "videos.xml", "run-2/narration.m4a", "run-1/video.mp4"} <= links
    for link in links:
        assert (root / unquote(link)).is_file(), link


@pytest.mark.parametrize(
    ("feed", "media", "kind"), [("podcast.xml", "narration.m4a", "audio/mp4"), ("videos.xml", "video.mp4", "video/mp4")]
)
def test_both_feeds_enclose_every_run_with_exact_sizes(
    published: tuple[list[AnchorRun], Path], feed: str, media: str, kind: str
) -> None:
    _, root = published
    parsed = feedparser.parse((root / feed).read_bytes())
    assert not parsed.bozo
    assert [e.guid for e in parsed.entries] == [f"anchor:{NAME}/run-2", f"anchor:{NAME}/run-1"]
    for entry in parsed.entries:
        (enclosure,) = entry.enclosures
        path = Path(unquote(urlsplit(enclosure.href).path))
        assert path.name == media and enclosure.type == kind
        assert int(enclosure.length) == path.stat().st_size
    report = reader.read_feed(str(root / feed), max_items=10, max_age=None, now=datetime.now(UTC))
    assert report.error is None and len(report.stories) == 2
    with Image.open(root / "cover.jpg") as cover:
        assert cover.size == (1400, 1400)
