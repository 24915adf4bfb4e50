"""`anchor news SOURCE`: what a user debugging a feed sees; exit 0 when accepted, a clear message otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, run_anchor
from tests.support.http import ScriptedServer
from tests.unit.test_feedparser_process import quadratic_entities

pytestmark = pytest.mark.e2e
SAMPLE = REPO / "job" / "sample" / "feed-ja.xml"
MASTODON = REPO / "tests" / "fixtures" / "feeds" / "mastodon-en.xml"


def test_a_local_feed_file_lists_its_stories() -> None:
    run = run_anchor("news", str(SAMPLE), "--max-items", "3")
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("1. 気象庁、週末にかけて全国的に気温が下がる見通し\n")
    assert "https://news.example.jp/articles/2026/11/24/weather" in run.stdout
    assert "<p>" not in run.stdout and "<strong>" not in run.stdout
    assert "4. " not in run.stdout


def test_json_output_has_title_link_date_and_text(feed_server: ScriptedServer) -> None:
    run = run_anchor("news", f"{feed_server.url}/en.atom", "--allow-private", "--json")
    assert run.code == 0, run.stderr
    stories = json.loads(run.stdout)
    assert stories[0]["title"] == "City council approves year-round night buses"
    assert stories[0]["published"] == "2026-11-24T06:30:00+00:00"
    assert set(stories[0]) == {"title", "link", "source", "published", "text", "image"}
    assert stories[0]["image"] is None, "the sample feed names no pictures"


@pytest.mark.parametrize(
    ("path", "allow", "expected"),
    [
        ("/broken.xml", True, "not an RSS or Atom feed"),
        ("/missing.xml", True, "404"),
        ("/en.atom", False, "127.0.0.1"),
    ],
)
def test_rejected_feeds_exit_non_zero_with_a_reason_and_no_traceback(
    feed_server: ScriptedServer, path: str, allow: bool, expected: str
) -> None:
    args = ["news", f"{feed_server.url}{path}"] + (["--allow-private"] if allow else [])
    run = run_anchor(*args)
    assert run.code != 0
    assert "rejected" in run.stderr and expected in run.stderr
    assert "Traceback" not in run.stderr


def test_a_feed_without_titles_lists_its_posts() -> None:
    run = run_anchor("news", str(MASTODON), "--json")
    assert run.code == 0, run.stderr
    stories = json.loads(run.stdout)
    assert [s["title"] for s in stories][:2] == [
        "The ferry to the outer islands is running again after the storm.",
        "Road works on Mill Street start on Monday.",
    ]
    assert stories[1]["text"] == "Buses 3 and 7 take River Road for three weeks."


def test_a_document_that_would_need_gigabytes_is_rejected_by_the_memory_cap(tmp_path: Path) -> None:
    laughs = tmp_path / "laughs.xml"
    laughs.write_bytes(quadratic_entities())
    run = run_anchor("news", str(laughs))
    assert run.code == 1
    assert "rejected" in run.stderr and "the parser ran out of its 512 MiB memory cap" in run.stderr
    assert "Traceback" not in run.stderr and "MemoryError" not in run.stderr


def test_missing_file_is_rejected_clearly(tmp_path: Path) -> None:
    run = run_anchor("news", str(tmp_path / "nope.xml"))
    assert run.code != 0 and "nope.xml" in run.stderr and "Traceback" not in run.stderr


def test_a_story_picture_named_by_the_feed_is_shown(tmp_path: Path) -> None:
    feed = tmp_path / "pictures.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>P</title>'
        "<item><title>Bridge reopens</title><link>https://news.example/bridge</link>"
        '<media:thumbnail url="/img/bridge.jpg"/><description>Traffic flows again.</description></item>'
        "</channel></rss>",
        encoding="utf-8",
    )
    run = run_anchor("news", str(feed), "--json")
    assert run.code == 0, run.stderr
    (story,) = json.loads(run.stdout)
    assert story["image"] == "https://news.example/img/bridge.jpg", "resolved against the story's link"
    text = run_anchor("news", str(feed))
    assert "   picture: https://news.example/img/bridge.jpg\n" in text.stdout
