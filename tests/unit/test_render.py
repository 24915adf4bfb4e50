"""The render stage: real MP4s from synthetic narration, inspected the way ffprobe would; pictures, timing and text
layout checked directly."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image

from api.v1alpha1 import CastMember, Video
from job.model import (
    ConfigError,
    Credit,
    EngineInfo,
    Narration,
    Rendering,
    Script,
    Segment,
    Story,
    TransientError,
    Utterance,
)
from job.video import render
from job.video.canvas import Picture
from job.video.fonts import Font, resolve_font
from job.video.layout import Layout
from job.video.slides import Studio
from job.video.subtitles import parse_srt, parse_vtt
from job.video.timeline import LEAD_IN_SECONDS, SEGMENT_GAP_SECONDS, TAIL_SECONDS, Timeline, plan_timeline
from tests.support.audio import write_tone
from tests.support.media import FFMPEG, box_order, decoded_seconds, frame_at, probe

RATE = 24_000
CAST_OF_TWO = [CastMember.model_validate({"name": "四国めたん"}), CastMember.model_validate({"name": "ずんだもん"})]
AIRED = datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
CREDIT = Credit("VOICEVOX:ずんだもん", "ずんだもん", "ノーマル", 3)
BACKGROUND, ACCENT = (11, 29, 58), (229, 72, 77)  # the default theme's
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

STORIES = (
    Story(
        "気象庁、週末にかけて全国的に気温が下がる見通し　北日本では初雪の可能性も",
        "https://news.example/1",
        "NHKニュース",
        "強い寒気が流れ込む影響で、週末にかけて全国的に気温が下がる見通しです。交通機関への影響に注意が必要です。",
        AIRED - timedelta(hours=1),
    ),
    Story(
        "地方の路線バス、自動運転で実証運行を開始🚌", "https://news.example/2", "地域新聞", "実証運行が始まりました。"
    ),
)


def a_script(language: str = "ja", stories: Sequence[Story] = STORIES) -> Script:
    """An intro of two sentences, two per story, a one-sentence sign-off."""
    segments = [Segment("intro", ("おはようございます。", "アンカーニュースの時間です。"))]
    segments += [Segment("story", (f"{n}本目のニュースです。", story.title), story) for n, story in enumerate(stories)]
    segments.append(Segment("outro", ("以上、アンカーニュースでした。",)))
    return Script(language, "アンカーニュース", "ずんだもん", AIRED, tuple(segments))  # type: ignore[arg-type]


def a_narration(script: Script, directory: Path, seconds: Sequence[float] = (), rate: int = RATE) -> Narration:
    """A WAV of tone per sentence (24 kHz mono 16-bit, like VOICEVOX), of the given lengths or 0.4-0.7 s."""
    directory.mkdir(parents=True, exist_ok=True)
    sentences = [(n, s) for n, segment in enumerate(script.segments) for s in segment.sentences]
    lengths = list(seconds) or [0.4 + 0.0737 * (i % 5) for i in range(len(sentences))]
    utterances = []
    for index, ((segment, text), length) in enumerate(zip(sentences, lengths, strict=True)):
        samples = round(length * rate)
        path = write_tone(directory / f"{index:03d}.wav", samples, rate, frequency=200 + 40 * index)
        utterances.append(Utterance(segment, text, path, samples / rate))
    return Narration(tuple(utterances), RATE, (CREDIT,), EngineInfo("http://127.0.0.1:50021", "0.0.0", "cpu"))


@dataclass
class Run:
    script: Script
    narration: Narration
    video: Video
    rendering: Rendering
    progress: list[tuple[str, int, int]] = field(default_factory=list)

    def timeline(self) -> Timeline:
        lengths = [round(u.seconds * RATE) for u in self.narration.utterances]
        return plan_timeline(self.narration.utterances, lengths, RATE, self.video.fps, subtitles=self.video.subtitles)


def _render(directory: Path, video: Video, script: Script | None = None) -> Run:
    script = script or a_script()
    narration = a_narration(script, directory / "voice")
    progress: list[tuple[str, int, int]] = []
    rendering = render.render(
        script, narration, video, directory / "render", progress=lambda *call: progress.append(call)
    )
    return Run(script, narration, video, rendering, progress)


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _render(tmp_path_factory.mktemp("landscape"), Video.model_validate({"resolution": "1280x720", "fps": 30}))


@pytest.fixture(scope="module")
def vertical(tmp_path_factory: pytest.TempPathFactory) -> Run:
    video = Video.model_validate({"resolution": "1080x1920", "fps": 25, "subtitles": False})
    return _render(tmp_path_factory.mktemp("vertical"), video)


def _frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every decoded frame, shrunk to `size` in grey: enough to see which picture is on screen."""
    shrink = f"scale={size[0]}:{size[1]}:flags=area,format=gray"
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-vf", shrink, "-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size[1], size[0]).astype(np.int16)


def _near(pixel: object, colour: Sequence[int], tolerance: int = 14) -> bool:
    assert isinstance(pixel, tuple), pixel
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


# -- the MP4 --------------------------------------------------------------------------------------------------


def test_one_h264_stream_at_the_requested_size_and_rate_and_one_aac_stream(landscape: Run) -> None:
    info = probe(landscape.rendering.video)
    (picture,) = info.of("video")
    (sound,) = info.of("audio")
    assert (picture.codec, picture.width, picture.height, picture.fps) == ("h264", 1280, 720, 30.0)
    assert "yuv420p" in picture.line
    assert (sound.codec, sound.sample_rate) == ("aac", 48000)
    assert "(jpn)" in sound.line


def test_video_and_sound_last_exactly_as_long_as_the_timeline(landscape: Run) -> None:
    timeline = landscape.timeline()
    duration = landscape.rendering.duration
    assert duration == timeline.frames / 30
    assert duration == pytest.approx(timeline.samples / RATE, abs=1 / RATE)
    video = landscape.rendering.video
    assert decoded_seconds(video, "video") == pytest.approx(duration, abs=1 / 30 + 0.001)
    assert decoded_seconds(video, "audio") == pytest.approx(duration, abs=0.1)
    assert probe(video).duration == pytest.approx(duration, abs=0.1)
    last = landscape.rendering.cues[-1]
    assert last.end + TAIL_SECONDS <= duration < last.end + TAIL_SECONDS + 1 / 30


def test_faststart_and_metadata_credit_the_voice(landscape: Run) -> None:
    order = box_order(landscape.rendering.video)
    assert order.index("moov") < order.index("mdat"), order
    tags = probe(landscape.rendering.video).metadata
    assert tags["title"] == "アンカーニュース"
    assert tags["artist"] == "ずんだもん"
    assert "VOICEVOX:ずんだもん" in tags["comment"]
    assert "VOICEVOX:ずんだもん" in tags["copyright"]


def test_the_sound_is_the_narration_on_its_timeline(landscape: Run) -> None:
    """Decode the AAC track and find each sentence's tone where its cue says it is."""
    pcm = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(landscape.rendering.video), "-ac", "1", "-ar", "8000", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    sound = np.abs(np.frombuffer(pcm, "<i2").astype(np.float64))
    for cue in landscape.rendering.cues:
        inside = sound[int((cue.start + 0.05) * 8000) : int((cue.end - 0.05) * 8000)]
        assert inside.mean() > 3000, cue
    quiet = sound[int((landscape.rendering.cues[-1].end + 0.1) * 8000) :]
    assert quiet.mean() < 50, "the tail is silence"


def test_progress_counts_up_to_every_picture_and_every_frame(landscape: Run) -> None:
    timeline = landscape.timeline()
    pictures = len({still.picture for still in timeline.stills})
    drawn = [(done, total) for step, done, total in landscape.progress if step == "draw"]
    encoded = [(done, total) for step, done, total in landscape.progress if step == "encode"]
    assert drawn[0] == (0, pictures) and drawn[-1] == (pictures, pictures)
    assert encoded[0] == (0, timeline.frames) and encoded[-1] == (timeline.frames, timeline.frames)
    for series in (drawn, encoded):
        assert all(a[0] <= b[0] for a, b in itertools.pairwise(series))


# -- subtitles and timing -------------------------------------------------------------------------------------


def test_subtitle_files_hold_one_cue_per_sentence_timed_by_the_narration(landscape: Run) -> None:
    utterances = landscape.narration.utterances
    srt = parse_srt(landscape.rendering.srt.read_text(encoding="utf-8"))
    vtt = parse_vtt(landscape.rendering.vtt.read_text(encoding="utf-8"))
    assert landscape.rendering.vtt.read_text(encoding="utf-8").startswith("WEBVTT\n")
    for cues in (srt, vtt, list(landscape.rendering.cues)):
        assert [c.text for c in cues] == [u.text for u in utterances]
        assert cues[0].start == pytest.approx(LEAD_IN_SECONDS, abs=0.001)
        for cue, utterance in zip(cues, utterances, strict=True):
            assert cue.end - cue.start == pytest.approx(utterance.seconds, abs=0.002)
        for (before, after), (said, next_said) in zip(
            itertools.pairwise(cues), itertools.pairwise(utterances), strict=True
        ):
            pause = SEGMENT_GAP_SECONDS if said.segment != next_said.segment else 0.0
            assert after.start - before.end == pytest.approx(pause, abs=0.002)


def test_pictures_change_on_exactly_the_frames_the_timeline_gives(landscape: Run) -> None:
    """No drift: each picture starts on the frame nearest its sentence's first sample, to the frame."""
    timeline = landscape.timeline()
    frames = _frames(landscape.rendering.video, (320, 180))
    assert len(frames) == timeline.frames
    change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))
    starts = [still.start for still in timeline.stills[1:]]
    assert starts == sorted(set(starts)), "every still starts a new picture"
    steady = np.delete(change, [s - 1 for s in starts])
    assert change[[s - 1 for s in starts]].min() > 4 * max(steady.max(), 0.05), (change.round(2), starts)
    cues = landscape.rendering.cues
    for still in timeline.stills:
        if still.utterance is not None:
            assert still.start == round(cues[still.utterance].start * 30)


def test_a_frame_shows_the_theme_the_lower_third_and_the_subtitle(landscape: Run, tmp_path: Path) -> None:
    layout = Layout(1280, 720)
    story_cue = landscape.rendering.cues[3]  # the first story's headline sentence
    with Image.open(frame_at(landscape.rendering.video, story_cue.start + 0.1, tmp_path / "frame.png")) as frame:
        image = frame.convert("RGB")
        assert image.size == (1280, 720)
        assert _near(image.getpixel((4, 716)), BACKGROUND)
        _, top, right, _ = layout.lower_third
        assert _near(image.getpixel((right - 8, top + 6)), ACCENT)
        band = image.crop((layout.margin, layout.subtitle[1], 1280 - layout.margin, layout.subtitle[3]))
        assert min(band.convert("L").getdata()) < 15, "the subtitle band darkens the slide"
        assert len(image.getcolors(1_000_000) or ()) > 50, "a slide with text and shapes, not a flat colour"


def test_thumbnail_is_a_jpeg_of_the_first_story_slide(landscape: Run) -> None:
    with Image.open(landscape.rendering.thumbnail) as thumbnail:
        assert thumbnail.format == "JPEG"
        assert thumbnail.size == (1280, 720)
        _, top, right, _ = Layout(1280, 720).lower_third
        assert _near(thumbnail.convert("RGB").getpixel((right - 8, top + 6)), ACCENT)


def test_only_the_published_files_are_left_in_the_workdir(landscape: Run) -> None:
    workdir = landscape.rendering.video.parent
    names = {p.name for p in workdir.iterdir()}
    assert names == {"video.mp4", "thumbnail.jpg", "subtitles.srt", "subtitles.vtt"}


def test_a_vertical_video_without_burned_in_subtitles(vertical: Run, tmp_path: Path) -> None:
    info = probe(vertical.rendering.video)
    (picture,) = info.of("video")
    assert (picture.width, picture.height, picture.fps) == (1080, 1920, 25.0)
    assert decoded_seconds(vertical.rendering.video, "video") == pytest.approx(vertical.rendering.duration, abs=0.041)
    with Image.open(vertical.rendering.thumbnail) as thumbnail:
        assert thumbnail.size == (720, 1280)
    # One picture per segment: it changes only where a segment starts.
    timeline = vertical.timeline()
    assert [still.utterance for still in timeline.stills] == [None] * len(vertical.script.segments)
    frames = _frames(vertical.rendering.video, (90, 160))
    change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))
    assert sorted(np.argsort(change)[-3:] + 1) == [still.start for still in timeline.stills[1:]]
    # Mid-sentence, the bottom of the frame is plain background: no subtitle band.
    cue = vertical.rendering.cues[3]
    with Image.open(frame_at(vertical.rendering.video, (cue.start + cue.end) / 2, tmp_path / "v.png")) as frame:
        band = frame.convert("RGB").crop(Layout(1080, 1920).subtitle)
        assert all(_near(pixel, BACKGROUND) for pixel in band.getdata())
    assert len(parse_srt(vertical.rendering.srt.read_text(encoding="utf-8"))) == len(vertical.narration.utterances)


def test_a_japanese_font_is_required_before_any_work_is_done(tmp_path: Path) -> None:
    if not DEJAVU.is_file():
        pytest.skip("DejaVu Sans is not installed")
    video = Video.model_validate({"resolution": "1280x720", "font": str(DEJAVU)})
    script = a_script()
    with pytest.raises(ConfigError, match=r"^spec.video.font: DejaVu Sans .* no Japanese glyphs"):
        render.render(script, a_narration(script, tmp_path / "voice"), video, tmp_path / "render")
    assert not (tmp_path / "render" / "video.mp4").exists()


def test_a_voice_at_the_wrong_sample_rate_is_refused(tmp_path: Path) -> None:
    script = a_script()
    narration = a_narration(script, tmp_path / "voice", rate=16_000)
    with pytest.raises(TransientError, match=r"16000 Hz, 16-bit, 1 channel\(s\); expected 24000 Hz"):
        render.render(script, narration, Video(), tmp_path / "render")


# -- pictures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ipaex() -> Font:
    return resolve_font(None, env={}, system_fonts=(), system_dirs=())


def _all_pictures(studio: Studio, script: Script, sentence: str) -> list[Picture]:
    slides = [studio.slide(n) for n in range(len(script.segments))]
    return [*slides, *(studio.with_subtitle(slide, sentence) for slide in slides)]


def test_no_tofu_every_character_drawn_is_in_the_font(ipaex: Font) -> None:
    hostile = Story(
        "株価が急騰📈　市場は「過熱」との声も\u200b",
        "https://news.example/3",
        "経済🗞️ニュース",
        "投資家の間では🚀の絵文字が飛び交い、" * 2000,  # a 50,000-character summary from a hostile feed
        AIRED,
    )
    script = a_script(stories=[hostile, *STORIES])
    studio = Studio(script, Video.model_validate({"resolution": "1920x1080"}), ipaex, CREDIT.text)
    pictures = _all_pictures(studio, script, "株価が急騰📈しました。")
    drawn = [text for picture in pictures for text in picture.texts]
    assert all(ipaex.covers(text) == set() for text in drawn), [t for t in drawn if ipaex.covers(t)]
    assert any("株価が急騰" in text for text in drawn) and any("VOICEVOX:ずんだもん" in text for text in drawn)
    (warning,) = [w for w in studio.warnings() if "no glyph" in w]
    for char in ("📈", "🗞", "🚀", "🚌", "U+200B", "U+FE0F"):
        assert char in warning


@pytest.mark.skipif(not DEJAVU.is_file(), reason="DejaVu Sans is not installed")
def test_a_latin_font_leaves_out_cjk_instead_of_drawing_boxes() -> None:
    font = resolve_font(str(DEJAVU), env={})
    story = Story("Tokyo (東京) markets rally", "https://news.example/4", "Wire", "Stocks rose in 東京.", AIRED)
    script = Script("en", "Anchor News", "Ann", AIRED, (Segment("story", ("Stocks rose.",), story),))
    studio = Studio(script, Video.model_validate({"resolution": "1280x720"}), font, "VOICEVOX:Zundamon")
    picture = studio.with_subtitle(studio.slide(0), "Tokyo is 東京.")
    assert all(font.covers(text) == set() for text in picture.texts)
    assert "Tokyo () markets rally" in picture.texts
    assert "Tokyo is ." in picture.texts
    assert "東 (U+6771)" in studio.warnings()[0]


LONG_TITLE = "政府、新たな経済対策を閣議決定　物価高への対応や賃上げの促進、地方の活性化を柱に総額十兆円規模"
LONG_SENTENCE = (
    "一方で専門家からは財源の確保や効果の検証について、さらに丁寧な説明を求める声も上がっていて、"
    "今後の国会審議の行方が注目されます。"
)


@pytest.mark.parametrize("resolution", ["1920x1080", "1280x720", "1080x1920"])
@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("cast", [False, True])
def test_text_stays_inside_its_area_at_every_resolution(
    ipaex: Font, resolution: str, language: str, cast: bool
) -> None:
    """With nobody on screen, or two members standing left and right with long credits (three voices reworded, a
    music bed's licence): every text inside the frame, none over another or over the cast."""
    words = LONG_TITLE if language == "ja" else "Government approves a ten-trillion-yen package " * 3
    story = Story(words, "https://news.example/5", "経済ニュース" * 4, words * 5, AIRED)
    script = a_script(language, stories=[story])
    video = Video.model_validate({"resolution": resolution})
    on_screen = render.cast_on_screen(CAST_OF_TWO, video, {}, print) if cast else []
    credit = " / ".join(f"VOICEVOX:{name}（ノーマル）" for name in ("四国めたん", "ずんだもん", "春日部つむぎ"))
    music = "Morning Theme by An Example Composer, licensed CC BY 4.0, https://music.example/morning-theme"
    studio = Studio(script, video, ipaex, credit if cast else CREDIT.text, cast=on_screen, music_credit=music)
    layout = studio.layout
    sentence = LONG_SENTENCE if language == "ja" else "The opposition says the package is too small. " * 4
    for picture in _all_pictures(studio, script, sentence):
        for box in picture.boxes:
            assert box[0] >= layout.margin // 2 and box[2] <= layout.width - layout.margin // 2, (box, picture.texts)
            assert box[1] >= 0 and box[3] <= layout.height
            for side in layout.sides:
                x0, y0, x1, y1 = layout.cast_box(side)
                clear = box[2] <= x0 or box[0] >= x1 or box[3] <= y0 or box[1] >= y1
                assert clear, f"{picture.texts} {box} is over the cast on the {side}"
        for (one, a), (other, b) in itertools.combinations(zip(picture.texts, picture.boxes, strict=True), 2):
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], f"{one!r} {a} overlaps {other!r} {b}"
    story_slide = studio.slide(1)
    lower_third = layout.lower_third
    above = [b for b in story_slide.boxes if b[3] <= lower_third[1]]
    inside = [b for b in story_slide.boxes if lower_third[1] <= b[1] and b[3] <= lower_third[3]]
    assert len(above) + len(inside) == len(story_slide.boxes), "no text straddles the lower third"
    subtitled = studio.with_subtitle(story_slide, sentence)
    new_boxes = subtitled.boxes[len(story_slide.boxes) :]
    assert new_boxes and all(b[1] >= layout.subtitle[1] and b[3] <= layout.subtitle[3] for b in new_boxes)
    assert all(b[3] <= layout.subtitle[1] for b in story_slide.boxes), "slides leave the subtitle area free"


def test_anchor_and_background_images_are_drawn(ipaex: Font, tmp_path: Path) -> None:
    Image.new("RGBA", (300, 600), (0, 200, 0, 255)).save(tmp_path / "anchor.png")
    Image.new("RGB", (64, 48), (250, 250, 0)).save(tmp_path / "backdrop.jpg")
    video = Video.model_validate(
        {"resolution": "1920x1080", "anchorImage": "anchor.png", "backgroundImage": str(tmp_path / "backdrop.jpg")}
    )
    studio = Studio(a_script(), video, ipaex, CREDIT.text, base_dir=tmp_path)
    image = studio.slide(1).image
    left, _, right, bottom = Layout(1920, 1080).anchor
    assert image.getpixel(((left + right) // 2, bottom - 20)) == (0, 200, 0)
    # The photo, cover-scaled, shows through under half the theme's background.
    assert _near(image.getpixel((4, 1076)), ((250 + 11) // 2, (250 + 29) // 2, (0 + 58) // 2), 5)


def test_unusable_images_are_config_errors_naming_the_setting(ipaex: Font, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not a picture")
    Image.new("1", (9000, 9000)).save(tmp_path / "huge.png")  # 81 megapixels, tiny on disk
    Image.new("RGB", (8, 8)).save(tmp_path / "picture.gif")
    cases = {
        "anchorImage": ("missing.png", r"spec.video.anchorImage: no image at .*missing.png"),
        "backgroundImage": ("notes.png", r"spec.video.backgroundImage: .*notes.png is not a readable PNG or JPEG"),
    }
    for setting, (value, message) in cases.items():
        video = Video.model_validate({setting: value})
        with pytest.raises(ConfigError, match=message):
            Studio(a_script(), video, ipaex, CREDIT.text, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"anchorImage: .*huge.png is 9000x9000 pixels; at most 50,000,000"):
        Studio(a_script(), Video.model_validate({"anchorImage": "huge.png"}), ipaex, CREDIT.text, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"anchorImage: .*picture.gif is not a readable PNG or JPEG"):
        Studio(a_script(), Video.model_validate({"anchorImage": "picture.gif"}), ipaex, CREDIT.text, base_dir=tmp_path)
