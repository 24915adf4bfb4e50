"""A dialogue end to end on the stand-in engine, over a music bed: two presenters take turns, each in their own voice
and each mouth moving with its own words; every story is presented; the subtitles name and colour the speaker; the
bed dips under speech and the mix is at -16 LUFS; both voices and the music are credited wherever a credit goes."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from job.model import Cue
from job.video.layout import Layout
from job.video.mix import measure
from job.video.subtitles import parse_srt, parse_vtt
from tests.e2e.conftest import AnchorRun, run_anchor
from tests.support.audio import pitch, read_wav
from tests.support.builders import a_broadcast
from tests.support.http import Reply, ScriptedServer, scripted_server
from tests.support.media import FFMPEG, decoded_audio, frame_at, probe
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e
METAN, ZUNDAMON = "四国めたん", "ずんだもん"
MUSIC_CREDIT = "Music: テストの和音 (CC0)"
MUSIC_NOTES = (98.0, 123.5, 146.8)


@pytest.fixture(scope="module")
def dialogue(
    tmp_path_factory: pytest.TempPathFactory, feed_server: ScriptedServer, engine: StandinEngine
) -> tuple[AnchorRun, Path]:
    work = tmp_path_factory.mktemp("dialogue")
    music = {"file": str(_chord(work / "bed.flac")), "credit": MUSIC_CREDIT}
    broadcast = (
        a_broadcast("dialogue-news")
        .feed(f"{feed_server.url}/ja.xml")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="ja", title="夕方のニュース", stories=3, format="dialogue")
        .set(cast=[{"name": METAN, "styleId": 2}, {"name": ZUNDAMON, "styleId": 3}], timeZone="Asia/Tokyo")
        .set(audio={"music": music})
        .video(resolution="1280x720", fps=10)
        .output(directory=str(work / "out"))
        .write(work / "broadcast.yaml")
    )
    run = run_anchor("render", str(broadcast), "--run-id", "run-1", env={"ANCHOR_VOICEVOX_URL": engine.url})
    assert run.code == 0, run.stderr
    return run, work / "out" / "dialogue-news" / "run-1"


def _chord(path: Path) -> Path:
    """A 20 s bed (shorter than the broadcast, so it loops) of low notes, below the stand-in's voices (300 Hz and
    up), so its level can be read from the mix in its own band."""
    notes = "+".join(f"0.2*sin(2*PI*{f}*t)" for f in MUSIC_NOTES)
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", f"aevalsrc={notes}:s=44100:d=20", "-ac", "2", str(path)],
        check=True,
    )
    return path


def _band_level(samples: np.ndarray, rate: int, start: float, end: float) -> float:
    """The level (dB) of the bed's notes in the given stretch: the power within 2 Hz of each, where a voice puts
    next to nothing."""
    part = samples[round(start * rate) : round(end * rate)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part)))) ** 2
    freqs = np.fft.rfftfreq(len(part), 1 / rate)
    near = np.zeros(len(freqs), bool)
    for note in MUSIC_NOTES:
        near |= np.abs(freqs - note) <= 2
    return float(10 * np.log10(spectrum[near].sum() / len(part) + 1e-12))


def _script(run_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((run_dir / "script.json").read_text(encoding="utf-8"))
    return document


def test_the_presenters_take_turns_and_every_story_is_presented(dialogue: tuple[AnchorRun, Path]) -> None:
    run, run_dir = dialogue
    script = _script(run_dir)
    assert (script["format"], script["cast"]) == ("dialogue", [METAN, ZUNDAMON])
    stories = [segment for segment in script["segments"] if segment["story"]]
    assert len(stories) == run.result["stories"] == 3
    for number, segment in enumerate(stories):
        presenter, other = (METAN, ZUNDAMON) if number % 2 == 0 else (ZUNDAMON, METAN)
        lines = list(zip(segment["speakers"], segment["sentences"], strict=True))
        # The presenter reads the headline; the other thanks them by name.
        assert any(who == presenter and segment["story"]["title"] in said for who, said in lines), lines
        assert any(who == other and f"{presenter}さん" in said for who, said in lines), lines
    intro = script["segments"][0]
    assert intro["speakers"][0] == METAN and ZUNDAMON in intro["speakers"]  # the lead greets, both introduce


def test_each_presenter_speaks_in_their_own_voice(dialogue: tuple[AnchorRun, Path]) -> None:
    _, run_dir = dialogue
    samples, rate = read_wav(decoded_audio(run_dir / "narration.m4a"))
    cues = parse_vtt((run_dir / "subtitles.vtt").read_text(encoding="utf-8"))
    heights = {}
    for name in (METAN, ZUNDAMON):
        spoken = [samples[round(c.start * rate) : round(c.end * rate)] for c in cues if c.speaker == name]
        heights[name] = pitch(np.concatenate(spoken), rate)
    assert 12 * math.log2(heights[ZUNDAMON] / heights[METAN]) > 4.5, heights


def test_subtitles_name_the_speaker_in_both_files(dialogue: tuple[AnchorRun, Path]) -> None:
    _, run_dir = dialogue
    script = _script(run_dir)
    said = [(who, text) for s in script["segments"] for who, text in zip(s["speakers"], s["sentences"], strict=True)]
    vtt_text = (run_dir / "subtitles.vtt").read_text(encoding="utf-8")
    vtt = parse_vtt(vtt_text)
    assert [(c.speaker, c.text) for c in vtt] == said
    assert f"<v {METAN}>" in vtt_text and f"<v {ZUNDAMON}>" in vtt_text
    srt = parse_srt((run_dir / "subtitles.srt").read_text(encoding="utf-8"))
    assert [c.text for c in srt] == [f"{who}: {text}" for who, text in said]


def test_the_burned_in_subtitles_have_a_colour_per_presenter(dialogue: tuple[AnchorRun, Path], tmp_path: Path) -> None:
    _, run_dir = dialogue
    cues = parse_vtt((run_dir / "subtitles.vtt").read_text(encoding="utf-8"))
    colours = {}
    for name in (METAN, ZUNDAMON):
        cue = max((c for c in cues if c.speaker == name), key=lambda c: c.end - c.start)
        colours[name] = _subtitle_colour(run_dir / "video.mp4", cue, tmp_path / f"{name}.png")
    assert colours[METAN] == "yellow" and colours[ZUNDAMON] == "blue", colours


def _subtitle_colour(video: Path, cue: Cue, png: Path) -> str:
    """Which of the presenters' colours the subtitle band's text is drawn in."""
    with Image.open(frame_at(video, (cue.start + cue.end) / 2, png)) as frame:
        band = frame.convert("RGB").crop(Layout(1280, 720).subtitle)
    pixels = list(band.getdata())
    yellow = sum(1 for r, g, b in pixels if r > 200 and g > 180 and b < 140)
    blue = sum(1 for r, g, b in pixels if r < 170 and g > 170 and b > 200)
    assert max(yellow, blue) > 200, (yellow, blue)  # text, drawn in one of them
    return "yellow" if yellow > 4 * blue else "blue" if blue > 4 * yellow else f"mixed {yellow}/{blue}"


def test_both_voices_are_credited_wherever_a_credit_goes(dialogue: tuple[AnchorRun, Path]) -> None:
    run, run_dir = dialogue
    credits = [f"VOICEVOX:{METAN}", f"VOICEVOX:{ZUNDAMON}"]
    assert run.result["credits"] == credits
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["credits"] == credits
    assert [(m["name"], m["speaker"], m["styleId"]) for m in manifest["cast"]] == [
        (METAN, METAN, 2),
        (ZUNDAMON, ZUNDAMON, 3),
    ]
    text = (run_dir / "credits.txt").read_text(encoding="utf-8")
    assert all(credit in text for credit in credits)
    assert f"Terms of use of {METAN}'s voice" in text and f"Terms of use of {ZUNDAMON}'s voice" in text
    assert MUSIC_CREDIT in text and manifest["music"] == {"credit": MUSIC_CREDIT}
    tags = probe(run_dir / "video.mp4").metadata
    assert all(credit in tags["copyright"] for credit in [*credits, MUSIC_CREDIT]), tags
    assert tags["artist"] == f"{METAN}, {ZUNDAMON}"
    page = (run_dir.parent / "index.html").read_text(encoding="utf-8")
    assert all(credit in page for credit in [*credits, MUSIC_CREDIT])
    podcast = (run_dir.parent / "podcast.xml").read_text(encoding="utf-8")
    assert all(credit in podcast for credit in [*credits, MUSIC_CREDIT])
    (item,) = ElementTree.fromstring(podcast).iter("item")  # noqa: S314 (our own feed, just written)
    people = [
        (p.text, p.get("role"), p.get("group")) for p in item.iter("{https://podcastindex.org/namespace/1.0}person")
    ]
    assert people == [(METAN, "host", "cast"), (ZUNDAMON, "co-host", "cast")]


def test_the_bed_dips_under_speech_and_the_mix_is_at_the_podcast_loudness(dialogue: tuple[AnchorRun, Path]) -> None:
    _, run_dir = dialogue
    samples, rate = read_wav(decoded_audio(run_dir / "video.mp4"))
    cues = parse_vtt((run_dir / "subtitles.vtt").read_text(encoding="utf-8"))
    # Equal stretches of 0.6 s (a tone's measured power grows with the stretch): mid-sentence, and mid-pause.
    under = [_band_level(samples, rate, (c.start + c.end) / 2 - 0.3, (c.start + c.end) / 2 + 0.3) for c in cues]
    gaps = [(a.end, b.start) for a, b in itertools.pairwise(cues) if b.start - a.end > 1.5]
    between = [_band_level(samples, rate, (a + b) / 2 - 0.3, (a + b) / 2 + 0.3) for a, b in gaps]
    assert len(between) >= 3, gaps  # the bed comes back between the intro, the stories and the sign-off
    assert float(np.median(between)) - float(np.median(under)) >= 12, (between, under)
    heard = measure(run_dir / "video.mp4")
    assert abs(heard.integrated_lufs + 16) <= 1.0 and heard.true_peak_dbtp <= -1.0, heard
    assert measure(run_dir / "narration.m4a").integrated_lufs == pytest.approx(heard.integrated_lufs, abs=0.2)
    loudness = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["loudness"]
    assert loudness["integratedLufs"] == pytest.approx(heard.integrated_lufs, abs=0.05)
    assert (loudness["targetLufs"], loudness["music"], loudness["measuredOn"]) == (-16.0, True, "video.mp4")


def test_each_mouth_moves_with_its_own_words(dialogue: tuple[AnchorRun, Path]) -> None:
    """While one presenter speaks their face changes from frame to frame; the other's only blinks."""
    _, run_dir = dialogue
    layout = Layout(1280, 720, ("left", "right"))  # めたん stands left, ずんだもん right
    cues = parse_vtt((run_dir / "subtitles.vtt").read_text(encoding="utf-8"))
    for speaker, side, other in ((METAN, "left", "right"), (ZUNDAMON, "right", "left")):
        cue = max((c for c in cues if c.speaker == speaker), key=lambda c: c.end - c.start)
        moving = _changing_frames(run_dir / "video.mp4", cue, layout.cast_box(side))
        still = _changing_frames(run_dir / "video.mp4", cue, layout.cast_box(other))
        assert moving >= 0.3 * (cue.end - cue.start) * 10, (speaker, moving)
        assert still < moving / 2, (other, still, moving)  # the other only blinks: two changes a blink


def _changing_frames(video: Path, cue: Cue, box: tuple[int, int, int, int]) -> int:
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    raw = subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-ss",
            f"{cue.start:.3f}",
            "-t",
            f"{cue.end - cue.start:.3f}",
            "-i",
            str(video),
            "-vf",
            f"crop={width}:{height}:{left}:{top},format=gray",
            "-f",
            "rawvideo",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width).astype(np.int16)
    changes = np.abs(np.diff(frames, axis=0)).max(axis=(1, 2))
    return int((changes > 40).sum())


def _dialogue_writer(method: str, path: str, body: bytes) -> Reply:
    """A model that writes the dialogue's turns, as an OpenAI-compatible server answers, with a link in a line."""
    asked = json.loads(json.loads(body)["messages"][1]["content"])
    turns = []
    for story in asked["stories"]:
        other = next(name for name in asked["presenters"] if name != story["presenter"])
        turns += [
            {
                "story": story["story"],
                "speaker": story["presenter"],
                "text": f"{story['title']}について、お伝えします。",
            },
            {"story": story["story"], "speaker": other, "text": "詳しくは https://news.example/x をご覧ください。"},
        ]
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps({"turns": turns})},
                           "finish_reason": "stop"}], "usage": {"total_tokens": 99}}  # fmt: skip
    return Reply(200, json.dumps(answer).encode())


def test_a_model_writes_the_dialogue_and_each_line_is_its_speakers(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    with scripted_server(_dialogue_writer) as model:
        broadcast = (
            a_broadcast("llm-dialogue")
            .feed(f"{feed_server.url}/ja.xml")
            .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
            .script(language="ja", stories=2, format="dialogue", llm={"endpoint": f"{model.url}/v1", "model": "m"})
            .set(cast=[{"name": METAN, "styleId": 2}, {"name": ZUNDAMON, "styleId": 3}])
            .video(resolution="1280x720", fps=10)
            .output(directory=str(tmp_path / "out"))
            .write(tmp_path / "broadcast.yaml")
        )
        run = run_anchor("render", str(broadcast), "--run-id", "run-1", env={"ANCHOR_VOICEVOX_URL": engine.url})
    assert run.code == 0, run.stderr
    assert run.result["scriptWriter"] == "llm:m"
    script = _script(tmp_path / "out" / "llm-dialogue" / "run-1")
    stories = [segment for segment in script["segments"] if segment["story"]]
    for number, segment in enumerate(stories):
        presenter = (METAN, ZUNDAMON)[number % 2]
        lines = list(zip(segment["speakers"], segment["sentences"], strict=True))
        assert (presenter, f"{segment['story']['title']}について、お伝えします。") in lines, lines
        assert any(who != presenter and text == "詳しくはをご覧ください。" for who, text in lines), lines  # cleaned
