"""The stories' own pictures, end to end: `anchor render` of a feed whose first story names its picture, whose
second story's article page names one (og:image), whose third names none and whose fourth names one that is
gone. The video shows each picture on its story's slide, and the run succeeds with one warning for the fourth."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from job.video.layout import Layout
from job.video.story_picture import picture_box
from tests.e2e.conftest import AnchorRun, run_anchor
from tests.support.builders import a_broadcast
from tests.support.http import Reply, ScriptedServer, scripted_server
from tests.support.media import frame_at
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e

GREEN, BLUE = (30, 200, 70), (40, 90, 230)
TOLERANCE = 24
"""How far an H.264 frame's colour may stray from the picture's."""
TITLES = ("新駅が開業", "市議会が予算を可決", "週末は晴れの予報", "美術館が改装を終える")


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _route(method: str, path: str, body: bytes) -> Reply:
    pages = {
        "/green.png": Reply(200, _png(GREEN), "image/png"),
        "/blue.png": Reply(200, _png(BLUE), "image/png"),
        "/article-og": Reply(200, b"<html><head><meta property='og:image' content='/blue.png'></head>", "text/html"),
    }
    if path.startswith("/article-plain/"):
        return Reply(200, b"<html><head><title>no picture</title></head><body></body>", "text/html")
    return pages.get(path, Reply(404, b"not found", "text/plain"))


@pytest.fixture(scope="module")
def pictures() -> Iterator[ScriptedServer]:
    with scripted_server(_route) as server:
        yield server


def _feed(base: str) -> str:
    media = (
        f'<media:content url="{base}/green.png" medium="image"/>',
        "",
        "",
        f'<media:thumbnail url="{base}/missing.png?sig=abc123"/>',
    )
    links = ("/article-plain/1", "/article-og", "/article-plain/3", "/article-plain/4")
    items = "".join(
        f"<item><title>{title}</title><link>{base}{link}</link>"
        f"<pubDate>Tue, 24 Nov 2026 0{6 - n}:00:00 +0900</pubDate>"
        f"<description>{title}と伝えられました。</description>{picture}</item>"
        for n, (title, link, picture) in enumerate(zip(TITLES, links, media, strict=True))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>写真ニュース</title><link>{base}/</link>{items}</channel></rss>"
    )


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, engine: StandinEngine, pictures: ScriptedServer
) -> tuple[AnchorRun, Path]:
    work = tmp_path_factory.mktemp("pictures")
    (work / "feed.xml").write_text(_feed(pictures.url), encoding="utf-8")
    broadcast = (
        a_broadcast("pictures")
        .feed("feed.xml")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])  # the pictures are served on 127.0.0.1
        .script(language="ja", title="写真ニュース", stories=len(TITLES))
        .video(resolution="1280x720", fps=10, storyImages=True)
        .output(directory=str(work / "out"))
        .set(timeZone="Asia/Tokyo")
        .write(work / "broadcast.yaml")
    )
    run = run_anchor("render", str(broadcast), "--run-id", "run-1", env={"ANCHOR_VOICEVOX_URL": engine.url})
    assert run.code == 0, run.stderr
    return run, work / "out" / "pictures" / "run-1"


def _story_times(run_dir: Path) -> dict[str, float]:
    """The middle of each story's first sentence, by title: a moment its slide is on screen."""
    script: dict[str, Any] = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    cues = script["cues"]
    assert len(cues) == sum(len(segment["sentences"]) for segment in script["segments"]), "every sentence spoken"
    times, sentence = {}, 0
    for segment in script["segments"]:
        if segment["story"]:
            times[segment["story"]["title"]] = (cues[sentence]["start"] + cues[sentence]["end"]) / 2
        sentence += len(segment["sentences"])
    return times


def _colour_in_the_picture_room(frame: Path) -> tuple[float, ...]:
    """The mean colour of the middle of the room a picture takes on a 1280x720 story slide."""
    layout = Layout(1280, 720, ("right",))  # the one anchor stands on the right
    width, _ = picture_box(layout)
    right, top = layout.card[2], layout.card[1]
    height = round(width * 9 / 16)  # the pictures are 16:9 and fill the room's width
    middle = (right - width // 2, top + height // 2)
    with Image.open(frame) as image:
        patch = np.asarray(image.convert("RGB"))[middle[1] - 30 : middle[1] + 30, middle[0] - 60 : middle[0] + 60]
    return tuple(float(value) for value in patch.reshape(-1, 3).mean(axis=0))


def _near(colour: tuple[float, ...], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(colour, expected, strict=True))


def test_each_story_shows_its_own_picture_or_none(rendered: tuple[AnchorRun, Path], tmp_path: Path) -> None:
    _, run_dir = rendered
    times = _story_times(run_dir)
    assert set(times) == set(TITLES)
    expected = dict(zip(TITLES, (GREEN, BLUE, None, None), strict=True))
    for number, title in enumerate(TITLES):
        frame = frame_at(run_dir / "video.mp4", times[title], tmp_path / f"story-{number}.png")
        colour, picture = _colour_in_the_picture_room(frame), expected[title]
        if picture is None:  # the headline card spans the frame there
            assert not _near(colour, GREEN) and not _near(colour, BLUE), (title, colour)
        else:
            assert _near(colour, picture), (title, colour)
    # The thumbnail is the first story's slide, with its picture.
    assert _near(_colour_in_the_picture_room(run_dir / "thumbnail.jpg"), GREEN)


def test_a_picture_that_is_gone_is_one_warning_and_the_run_succeeds(rendered: tuple[AnchorRun, Path]) -> None:
    run, _ = rendered
    assert run.result["status"] == "Succeeded"
    (warning,) = [w for w in run.result["warnings"] if "picture" in w]
    assert warning.startswith("1 story picture could not be used") and "127.0.0.1: HTTP 404 Not Found" in warning
    assert "abc123" not in warning and "missing.png" not in warning
    (done,) = [event for event in run.events if event["event"] == "images.done"]
    assert done["message"] == "2 of 4 stories have a picture"
    assert (done["pictures"], done["stories"]) == (2, 4)


def test_the_manifest_names_the_picture_each_slide_showed(rendered: tuple[AnchorRun, Path]) -> None:
    _, run_dir = rendered
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    base = manifest["stories"][0]["link"].removesuffix("/article-plain/1")  # the picture server's URL
    shown = {story["title"]: story.get("image") for story in manifest["stories"]}
    assert shown == dict(zip(TITLES, (f"{base}/green.png", f"{base}/blue.png", None, None), strict=True))
