"""`anchor render` end to end: feeds over HTTP (RSS 2.0, RDF, Atom, one broken, one slow), the stand-in engine,
a local output directory; the MP4 is inspected the way ffprobe would."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from job.video.layout import Layout
from job.video.subtitles import parse_srt, parse_vtt
from tests.e2e.conftest import AnchorRun, render_feed_text, run_anchor
from tests.support.builders import a_broadcast
from tests.support.http import ScriptedServer
from tests.support.media import box_order, decoded_seconds, frame_at, probe
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e
FILES = {
    "video.mp4",
    "narration.m4a",
    "thumbnail.jpg",
    "subtitles.srt",
    "subtitles.vtt",
    "script.json",
    "credits.txt",
    "manifest.json",
}


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, feed_server: ScriptedServer, engine: StandinEngine
) -> tuple[AnchorRun, Path]:
    work = tmp_path_factory.mktemp("render")
    url = feed_server.url
    broadcast = (
        a_broadcast("e2e-news")
        .feed(f"{url}/ja.xml", maxItems=2)
        .feed(f"{url}/rdf.xml")
        .feed(f"{url}/broken.xml")
        .feed(f"{url}/slow.xml")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="ja", title="テストニュース", stories=3)
        .video(resolution="1280x720", fps=12)  # a rate of its own, not the default, checked below
        .output(directory=str(work / "out"))
        .set(timeZone="Asia/Tokyo")
        .write(work / "broadcast.yaml")
    )
    run = run_anchor("render", str(broadcast), "--run-id", "run-1", env={"ANCHOR_VOICEVOX_URL": engine.url})
    assert run.code == 0, run.stderr
    return run, work / "out" / "e2e-news" / "run-1"


def test_run_succeeds_and_reports_a_compact_result(rendered: tuple[AnchorRun, Path]) -> None:
    run, run_dir = rendered
    result = run.result
    assert result["status"] == "Succeeded" and result["exitCode"] == 0
    assert result["runId"] == "run-1" and result["broadcast"] == "e2e-news"
    assert result["stories"] == 3
    assert result["video"] == str(run_dir / "video.mp4")
    assert result["videoUrl"].startswith("file://") and result["videoUrl"].endswith("/run-1/video.mp4")
    assert result["credits"] == ["VOICEVOX:ずんだもん"]
    assert result["engine"]["device"] == "cpu"
    assert any("broken.xml" in w for w in result["warnings"])
    assert len(run.stdout.strip().splitlines()[-1].encode()) <= 4096


def test_logs_are_one_json_object_per_line_with_progress(rendered: tuple[AnchorRun, Path]) -> None:
    run, _ = rendered
    events = run.events
    assert len(events) == len([line for line in run.stderr.splitlines() if line.strip()])
    names = [e["event"] for e in events]
    for expected in ("run.start", "news.done", "voice.done", "render.done", "store.done", "run.succeeded"):
        assert expected in names
    steps = {e["step"] for e in events if e["event"] == "progress"}
    assert {"voice"} <= steps
    assert all(e["broadcast"] == "e2e-news" for e in events if e["event"] != "run.start")


def test_published_files_and_manifest_hashes(rendered: tuple[AnchorRun, Path]) -> None:
    _, run_dir = rendered
    assert {p.name for p in run_dir.iterdir()} == FILES
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert {o["name"] for o in manifest["objects"]} == FILES - {"manifest.json"}
    for entry in manifest["objects"]:
        data = (run_dir / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
        assert entry["size"] == len(data)
    assert manifest["credits"] == ["VOICEVOX:ずんだもん"]
    assert manifest["runId"] == "run-1"
    assert "VOICEVOX:ずんだもん" in (run_dir / "credits.txt").read_text(encoding="utf-8")
    assert (run_dir / "thumbnail.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    hidden = {p.name for p in run_dir.parent.glob(".*")}
    assert hidden == {".anchor"}, "no temporary directory left behind, only the broadcast's state"
    assert not list((run_dir.parent / ".anchor").rglob("runs/run-1/*")), "a published run's checkpoints are dropped"
    assert (run_dir.parent / ".anchor" / "aired.json").is_file()


def test_newest_stories_across_feeds_deduplicated(rendered: tuple[AnchorRun, Path]) -> None:
    _, run_dir = rendered
    script = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    titles = [s["story"]["title"] for s in script["segments"] if s["story"]]
    # RDF's newest (08:00 JST) first, then the RSS feed's two newest; slow.xml repeats ja.xml and is deduplicated.
    assert titles == [
        "港町で冬の灯りまつり、今週末に開幕",
        "気象庁、週末にかけて全国的に気温が下がる見通し",
        "地方の路線バス、自動運転で実証運行を開始",
    ]


def test_video_is_h264_aac_at_the_requested_size_and_as_long_as_the_narration(
    rendered: tuple[AnchorRun, Path],
) -> None:
    run, run_dir = rendered
    video = run_dir / "video.mp4"
    info = probe(video)
    (v,) = info.of("video")
    (a,) = info.of("audio")
    assert (v.codec, v.width, v.height, v.fps) == ("h264", 1280, 720, 12.0)
    assert a.codec == "aac"
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    narration = manifest["durationSeconds"]
    assert decoded_seconds(video, "video") == pytest.approx(narration, abs=0.2)
    assert decoded_seconds(video, "audio") == pytest.approx(narration, abs=0.2)
    assert run.result["durationSeconds"] == pytest.approx(narration, abs=0.01)
    assert "VOICEVOX:ずんだもん" in info.metadata.get("comment", "")
    order = box_order(video)
    assert order.index("moov") < order.index("mdat"), "faststart: moov before mdat"


def _cues_cover_narration(cues: list[Any], duration: float, sentences: int) -> None:
    assert len(cues) == sentences
    for cue in cues:
        assert cue.end > cue.start
    for before, after in itertools.pairwise(cues):
        assert before.end <= after.start + 1e-3
    assert cues[0].start < 1.0
    assert duration - 1.5 < cues[-1].end <= duration + 0.05


def test_subtitles_are_monotonic_and_cover_the_narration(rendered: tuple[AnchorRun, Path]) -> None:
    _, run_dir = rendered
    script = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    sentences = sum(len(s["sentences"]) for s in script["segments"])
    duration = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["durationSeconds"]
    srt = parse_srt((run_dir / "subtitles.srt").read_text(encoding="utf-8"))
    vtt = parse_vtt((run_dir / "subtitles.vtt").read_text(encoding="utf-8"))
    _cues_cover_narration(srt, duration, sentences)
    _cues_cover_narration(vtt, duration, sentences)
    assert [c.text for c in srt] == [c.text for c in vtt]
    assert [round(c.start, 2) for c in srt] == [round(c.start, 2) for c in vtt]


def test_a_frame_shows_the_slide(rendered: tuple[AnchorRun, Path], tmp_path: Path) -> None:
    from PIL import Image

    _, run_dir = rendered
    script = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    first_story_cue = next(c for c in script["cues"] if c["text"] == "最初のニュースです。")
    png = frame_at(run_dir / "video.mp4", first_story_cue["start"] + 0.3, tmp_path / "frame.png")
    with Image.open(png) as image:
        assert image.size == (1280, 720)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50, "a real slide has text and shapes, not a flat colour"


def test_same_run_id_overwrites_the_run_instead_of_adding_one(
    rendered: tuple[AnchorRun, Path], engine: StandinEngine
) -> None:
    _, run_dir = rendered
    broadcast = run_dir.parents[2] / "broadcast.yaml"
    before = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["createdAt"]
    again = run_anchor("render", str(broadcast), "--run-id", "run-1", env={"ANCHOR_VOICEVOX_URL": engine.url})
    assert again.code == 0, again.stderr
    runs = [p.name for p in run_dir.parent.iterdir() if p.is_dir() and p.name != ".anchor"]
    assert runs == ["run-1"], "the same run, not a second one (beside the broadcast's page, feeds and cover)"
    assert {p.name for p in run_dir.iterdir()} == FILES
    assert json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["createdAt"] >= before


# -- stories the font cannot draw -----------------------------------------------------------------------------

GLYPHLESS_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>絵文字ニュース</title><link>https://emoji.example/</link><description>-</description>
<item><title>नमस्ते दुनिया</title><link>https://emoji.example/1</link><guid>devanagari</guid>
  <pubDate>Tue, 24 Nov 2026 06:30:00 +0900</pubDate><description>नमस्ते 😀</description></item>
<item><title>&#x2A6D6;&#x20001;</title><link>https://emoji.example/2</link><guid>rare-kanji</guid>
  <pubDate>Tue, 24 Nov 2026 06:10:00 +0900</pubDate><description>&#x2A6D6;&#x200B;</description></item>
</channel></rss>
"""
"""Two stories with not one character the bundled font can draw: Devanagari, and CJK Extension B kanji it lacks
(emoji never get that far: outside text loses them, job/shared/text.py)."""


@pytest.fixture(scope="module")
def glyphless(tmp_path_factory: pytest.TempPathFactory, engine: StandinEngine) -> tuple[AnchorRun, Path]:
    work = tmp_path_factory.mktemp("glyphless")
    return render_feed_text(work, "glyphless", GLYPHLESS_FEED, engine, title="テストニュース", stories=2)


def test_stories_the_font_cannot_draw_are_published_with_a_warning(glyphless: tuple[AnchorRun, Path]) -> None:
    """Once a crash (exit 70, retried in vain by the controller): the characters are left out of the pictures."""
    run, run_dir = glyphless
    assert run.code == 0, run.stderr
    assert run.result["status"] == "Succeeded" and run.result["stories"] == 2
    assert {p.name for p in run_dir.iterdir()} == FILES
    (warning,) = [w for w in run.result["warnings"] if "no glyph" in w]
    assert "न (U+0928)" in warning and "U+2A6D6" in warning


def test_subtitle_files_keep_what_the_pictures_leave_out(glyphless: tuple[AnchorRun, Path]) -> None:
    run, run_dir = glyphless
    script = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    written = [sentence for segment in script["segments"] for sentence in segment["sentences"]]
    # The stand-in reads no Devanagari: those sentences have no sound, so no cue (and a warning says so).
    spoken = [s for s in written if any(ch.isalnum() and not "\u0900" <= ch <= "\u097f" for ch in s)]
    assert any("nothing the voice engine could speak" in w and "नमस्ते" in w for w in run.result["warnings"])
    for name, parse in (("subtitles.srt", parse_srt), ("subtitles.vtt", parse_vtt)):
        cues = parse((run_dir / name).read_text(encoding="utf-8"))
        assert [cue.text for cue in cues] == spoken, name
        assert any("\U0002a6d6" in cue.text for cue in cues), "the kanji the pictures cannot draw are in the files"
    assert [s["story"]["title"] for s in script["segments"] if s["story"]] == ["नमस्ते दुनिया", "\U0002a6d6\U00020001"]


def test_a_frame_of_a_glyphless_story_shows_its_card_without_a_headline(
    glyphless: tuple[AnchorRun, Path], tmp_path: Path
) -> None:
    from PIL import Image

    _, run_dir = glyphless
    script = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    story = next(n for n, segment in enumerate(script["segments"]) if segment["story"])
    first_cue = script["cues"][sum(len(s["sentences"]) for s in script["segments"][:story])]
    png = frame_at(run_dir / "video.mp4", first_cue["start"] + 0.3, tmp_path / "glyphless.png")
    with Image.open(png) as frame:
        image = frame.convert("RGB")
    assert image.size == (1280, 720)
    assert len(image.getcolors(maxcolors=1_000_000) or []) > 50, "a real slide, not a flat colour"
    layout = Layout(1280, 720, ("right",))  # the one anchor stands on the right
    left, top, right, _ = layout.card
    pad = layout.px(40)
    x = left + pad + 4  # inside the accent rule under the headline
    reddish = [y for y in range(top, top + 200) if _near(image.getpixel((x, y)), (229, 72, 77))]
    assert reddish, "the card's accent rule is drawn"
    assert abs(reddish[0] - (top + pad + layout.px(16))) <= 2, "the headline took no room: the rule comes first"
    headline = image.crop((left + pad, top + pad // 2, right - pad, reddish[0] - 3)).convert("L")
    darkest, lightest = headline.getextrema()
    assert lightest - darkest < 24, "nothing drawn where the headline would be: no boxes, no stray marks"


def _near(pixel: object, colour: tuple[int, int, int], tolerance: int = 30) -> bool:
    assert isinstance(pixel, tuple), pixel
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def test_nvenc_that_cannot_run_falls_back_to_libx264_with_a_warning(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    """This machine has no NVIDIA GPU: NVENC, asked for, fails for real in ffmpeg, and the run goes on."""
    path = (
        a_broadcast("nvenc")
        .feed(f"{feed_server.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="en", stories=1)
        .voice(engineUrl=engine.url)
        .video(resolution="1280x720", fps=10, encoder="h264_nvenc")
        .output(directory=str(tmp_path / "out"))
        .write(tmp_path / "broadcast.yaml")
    )
    run = run_anchor("render", str(path), "--run-id", "run-1", cwd=tmp_path)
    assert run.code == 0, run.stderr
    assert any(w.startswith("the h264_nvenc encoder failed, libx264 was used instead") for w in run.result["warnings"])
    manifest = json.loads((tmp_path / "out" / "nvenc" / "run-1" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["encoder"] == "libx264"
    assert probe(tmp_path / "out" / "nvenc" / "run-1" / "video.mp4").streams
