"""Writing the page and feeds into a local output directory (job/publish/site.py): runs found by their manifests (state
and dot-names ignored, garbage left out and named), files replaced atomically with nothing temporary left, relative
links on the page and file:// URIs in the feeds, or publicBaseUrl when set; a failure is a warning, not a failed run.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from PIL import Image

from api.v1alpha1 import NewsBroadcast
from job import pipeline
from job.progress import Reporter
from job.publish import site
from tests.support.builders import a_broadcast
from tests.support.published import publish_run

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
LISTING = {"index.html", "podcast.xml", "videos.xml", "cover.jpg"}


def _broadcast(out: Path, **output: Any) -> NewsBroadcast:
    return a_broadcast("morning").language("en").script(title="Morning").output(directory=str(out), **output).model()


def _publish(out: Path, run_id: str, hour: int, scratch: Path, *, narration: bool = True) -> dict[str, int]:
    """A run as the pipeline publishes it (small stand-in files); returns each file's size."""
    files = {"video.mp4": b"V" * (1000 + hour), "subtitles.vtt": b"WEBVTT\n\n", "thumbnail.jpg": _jpeg()}
    if narration:
        files["narration.m4a"] = b"A" * (300 + hour)
    stories = [{"title": f"story {run_id}", "source": "Wire", "link": "https://news.example/x"}]
    publish_run(_broadcast(out).spec.output, run_id, hour, files, scratch, stories=stories)
    return {name: len(data) for name, data in files.items()}


def _jpeg() -> bytes:
    from io import BytesIO

    data = BytesIO()
    Image.new("RGB", (320, 180), (10, 120, 200)).save(data, format="JPEG")
    return data.getvalue()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    _publish(out, "old-1", 5, tmp_path / "s1", narration=False)
    _publish(out, "run-2", 6, tmp_path / "s2")
    _publish(out, "run-3", 7, tmp_path / "s3")
    return out


def test_the_listing_is_written_beside_the_runs_with_relative_links_on_the_page(out: Path) -> None:
    written = site.write_listing(_broadcast(out), {}, now=NOW)
    root = out / "morning"
    assert written.page_url == (root / "index.html").as_uri() and written.runs == 3 and written.left_out == ()
    assert {p.name for p in root.iterdir()} == LISTING | {"old-1", "run-2", "run-3"}
    page = (root / "index.html").read_text(encoding="utf-8")
    assert '<source src="run-3/video.mp4" type="video/mp4">' in page
    assert 'poster="run-3/thumbnail.jpg"' in page and 'src="run-3/subtitles.vtt"' in page
    assert 'href="podcast.xml"' in page and 'href="videos.xml"' in page
    assert 'id="expiry"' not in page, "local links do not expire"
    assert page.index('data-run="run-3"') < page.index('data-run="run-2"') < page.index('data-run="old-1"')
    with Image.open(root / "cover.jpg") as cover:
        assert cover.size == (1400, 1400)
    assert oct((root / "index.html").stat().st_mode & 0o777) == "0o644"


def test_feeds_link_file_uris_with_the_exact_sizes(out: Path) -> None:
    site.write_listing(_broadcast(out), {}, now=NOW)
    root = out / "morning"
    podcast = feedparser.parse((root / "podcast.xml").read_bytes())
    videos = feedparser.parse((root / "videos.xml").read_bytes())
    assert [e.guid for e in podcast.entries] == ["anchor:morning/run-3", "anchor:morning/run-2"], "old-1 has no m4a"
    assert len(videos.entries) == 3
    for feed, name in ((podcast, "narration.m4a"), (videos, "video.mp4")):
        for entry in feed.entries:
            (enclosure,) = entry.enclosures
            path = Path(enclosure.href.removeprefix("file://"))
            assert enclosure.href == path.as_uri() and path.name == name
            assert int(enclosure.length) == path.stat().st_size


def test_public_base_url_is_used_everywhere(out: Path) -> None:
    broadcast = _broadcast(out, publicBaseUrl="https://cdn.example/news/")
    written = site.write_listing(broadcast, {}, now=NOW)
    assert written.page_url == "https://cdn.example/news/morning/index.html"
    page = (out / "morning" / "index.html").read_text(encoding="utf-8")
    assert '<source src="https://cdn.example/news/morning/run-3/video.mp4"' in page
    feed = feedparser.parse((out / "morning" / "podcast.xml").read_bytes())
    assert feed.entries[0].enclosures[0].href == "https://cdn.example/news/morning/run-3/narration.m4a"


def test_a_run_published_while_the_listing_is_written_is_listed_too(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A has read the manifests when run B publishes (and writes its own listing); A's files land last. A lists
    the runs again after writing, finds B and writes anew, so the listing left behind has both."""
    write = site._Directory.write

    def write_after_another_run_published(shelf: Any, name: str, data: bytes, content_type: str) -> None:
        if not (out / "morning" / "run-4").exists():
            _publish(out, "run-4", 8, tmp_path / "s4")
        write(shelf, name, data, content_type)

    monkeypatch.setattr(site._Directory, "write", write_after_another_run_published)
    written = site.write_listing(_broadcast(out), {}, now=NOW)
    root = out / "morning"
    assert written.runs == 4
    page = (root / "index.html").read_text(encoding="utf-8")
    assert page.index('data-run="run-4"') < page.index('data-run="run-3"')
    podcast = feedparser.parse((root / "podcast.xml").read_bytes())
    assert [e.guid for e in podcast.entries] == ["anchor:morning/run-4", "anchor:morning/run-3", "anchor:morning/run-2"]
    assert not [p for p in root.glob(".*.tmp-*")]


def test_runs_that_keep_appearing_are_chased_for_at_most_three_passes(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = site._Directory.write
    pages: list[str] = []

    def publish_after_each_page(shelf: Any, name: str, data: bytes, content_type: str) -> None:
        write(shelf, name, data, content_type)
        if name == "index.html":
            pages.append(data.decode())
            _publish(out, f"new-{len(pages)}", 8 + len(pages), tmp_path / f"new-{len(pages)}")

    monkeypatch.setattr(site._Directory, "write", publish_after_each_page)
    written = site.write_listing(_broadcast(out), {}, now=NOW)
    assert len(pages) == site.PASSES == 3
    assert written.runs == 5, "the runs published after the first two passes; the third's waits for the next run"
    assert 'data-run="new-2"' in pages[-1] and "new-3" not in pages[-1]


def test_state_dot_names_and_half_runs_are_not_runs_and_garbage_is_named(out: Path) -> None:
    root = out / "morning"
    (root / ".anchor" / "runs" / "x").mkdir(parents=True, exist_ok=True)
    (root / ".anchor" / "runs" / "x" / "manifest.json").write_text("{}")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "manifest.json").write_text("{}")
    (root / "in-progress").mkdir()
    (root / "garbage").mkdir()
    (root / "garbage" / "manifest.json").write_bytes(b"\x00{not json")
    (root / "huge").mkdir()
    with (root / "huge" / "manifest.json").open("wb") as file:
        file.truncate(site.MANIFEST_LIMIT + 1)
    os.mkfifo(root / "fifo-run")  # not a directory: ignored, and never opened (it would block)

    written = site.write_listing(_broadcast(out), {}, now=NOW)
    assert written.runs == 3
    assert sorted(written.left_out) == [
        "garbage: its manifest.json is not JSON",
        "huge: its manifest.json is gone or larger than 1 MiB",
    ]


def test_runs_beyond_listing_runs_are_left_off(out: Path) -> None:
    written = site.write_listing(_broadcast(out, listing={"runs": 2}), {}, now=NOW)
    assert written.runs == 2
    page = (out / "morning" / "index.html").read_text(encoding="utf-8")
    assert "old-1" not in page


def test_each_file_is_replaced_atomically_and_nothing_temporary_is_left(out: Path) -> None:
    root = out / "morning"
    site.write_listing(_broadcast(out), {}, now=NOW)
    inode = (root / "index.html").stat().st_ino
    stale = root / ".index.html.tmp-abcd1234"
    stale.write_text("left by a writer that died")
    old = time.time() - site.LEFTOVER_AGE.total_seconds() - 60
    os.utime(stale, (old, old))
    fresh = root / ".podcast.xml.tmp-efgh5678"
    fresh.write_text("another writer's, still being written")

    site.write_listing(_broadcast(out), {}, now=NOW + timedelta(hours=1))
    assert (root / "index.html").stat().st_ino != inode, "a new file renamed into place, not rewritten in place"
    hidden = {p.name for p in root.glob(".*")}
    assert hidden == {fresh.name}, "the stale temporary is swept, a fresh one left to its writer"


def test_a_failed_listing_is_a_warning_and_the_run_keeps_succeeding(out: Path, tmp_path: Path) -> None:
    root = out / "morning"
    (root / "index.html").mkdir()  # the page cannot be renamed over a directory
    (root / "index.html" / "keep").write_text("x")
    reporter = Reporter(env={}, stream=open(os.devnull, "w"), interactive=False)  # noqa: SIM115
    context = pipeline.RunContext("run-3", NOW, None, {})
    assert pipeline._write_listing(_broadcast(out), context, reporter) is None
    assert len(reporter.warnings) == 1 and "page and feeds were not updated" in reporter.warnings[0]
    assert "index.html" in reporter.warnings[0]
    assert not [p for p in root.glob(".*.tmp-*")], "the temporary file is removed on failure"


def test_garbage_manifests_are_a_warning_and_the_page_is_still_written(out: Path) -> None:
    (out / "morning" / "broken").mkdir()
    (out / "morning" / "broken" / "manifest.json").write_text(json.dumps({"airedAt": "yesterday"}))
    reporter = Reporter(env={}, stream=open(os.devnull, "w"), interactive=False)  # noqa: SIM115
    context = pipeline.RunContext("run-3", NOW, None, {})
    page_url = pipeline._write_listing(_broadcast(out), context, reporter)
    assert page_url == (out / "morning" / "index.html").as_uri()
    assert reporter.warnings == [
        "the broadcast's page and feeds leave out 1 run(s): broken: its manifest.json has no airedAt time with a "
        "UTC offset"
    ]


def test_a_disabled_listing_writes_nothing(out: Path) -> None:
    reporter = Reporter(env={}, stream=open(os.devnull, "w"), interactive=False)  # noqa: SIM115
    context = pipeline.RunContext("run-3", NOW, None, {})
    assert pipeline._write_listing(_broadcast(out, listing={"enabled": False}), context, reporter) is None
    assert not LISTING & {p.name for p in (out / "morning").iterdir()}
