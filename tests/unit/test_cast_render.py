"""The cast on screen, rendered for real: the mouth in a frame is the shape of the sound heard in it, the eyes blink
when the seeded schedule says, the idle member only blinks, and a portrait that cannot be read is a warning and a
built-in character. Frames are decoded from the MP4 and each face compared with every state the member has."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from api.v1alpha1 import CastMember, Portrait, Video
from job.model import EngineInfo, Narration, Phoneme, Script, Segment, TransientError, Utterance
from job.video import render
from job.video.cast import lipsync
from job.video.cast.portrait import EYES, MOUTHS
from job.video.cast.stage import CastStage
from job.video.fonts import resolve_font
from job.video.slides import Studio
from job.video.timeline import LEAD_IN_SECONDS
from tests.support.audio import write_tone
from tests.support.media import FFMPEG
from tests.unit.test_render import AIRED, CREDIT, RATE

FPS = 10
SOUNDS = [("sil", 0.0, 0.1), ("k", 0.1, 0.2), ("a", 0.2, 0.6), ("pau", 0.6, 1.0), ("i", 1.0, 1.4), ("sil", 1.4, 1.5)]
CAST = [CastMember.model_validate({"name": "めたん", "styleId": 2}), CastMember.model_validate({"name": "ずんだもん"})]


def _script() -> Script:
    lines = ("かあ、いい。", "いい。")
    return Script(
        "ja",
        "テスト",
        "めたん",
        AIRED,
        (Segment("intro", lines, None, ("めたん", "ずんだもん")),),
        ("めたん", "ずんだもん"),
        "dialogue",
    )


def _narration(directory: Path) -> Narration:
    directory.mkdir(parents=True, exist_ok=True)
    timed = tuple(Phoneme(*s) for s in SOUNDS)
    utterances = tuple(
        Utterance(0, text, write_tone(directory / f"{n}.wav", round(1.5 * RATE), RATE), 1.5, speaker, timed)
        for n, (text, speaker) in enumerate([("かあ、いい。", "めたん"), ("いい。", "ずんだもん")])
    )
    return Narration(utterances, RATE, (CREDIT,), EngineInfo("http://127.0.0.1:50021", "0", "cpu"))


def _frame(video: Path, index: int, size: tuple[int, int]) -> np.ndarray:
    seek = f"{(index + 0.5) / FPS:.4f}"
    raw = subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-ss",
            seek,
            "-i",
            str(video),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(size[1], size[0], 3).astype(np.int16)


def _state_in(frame: np.ndarray, stage: CastStage, member: int) -> tuple[str, str]:
    """The member's state whose face patch is nearest the frame's face."""
    left, top, right, bottom = stage.members[member].face
    face = frame[top:bottom, left:right]
    errors = {
        (mouth, eyes): float(np.abs(face - np.asarray(stage.patch(member, (mouth, eyes)), np.int16)).mean())
        for mouth in MOUTHS
        for eyes in EYES
    }
    best, runner_up = sorted(errors, key=errors.__getitem__)[:2]
    assert errors[best] < 4, errors  # x264 at CRF 23 stays within a few levels
    assert errors[runner_up] > errors[best] + 1, errors  # and no other state looks the same
    return best


@pytest.mark.parametrize("resolution", ["1280x720", "1080x1920"])
def test_each_face_shows_the_shape_of_its_own_sound_in_every_frame(resolution: str, tmp_path: Path) -> None:
    script, narration = _script(), _narration(tmp_path / "voice")
    video = Video.model_validate({"resolution": resolution, "fps": FPS})
    rendering = render.render(script, narration, video, tmp_path / "render", cast=CAST)
    assert not rendering.warnings
    font = resolve_font(None, japanese=True)
    on_screen = render.cast_on_screen(CAST, video, {}, lambda _: None)
    studio = Studio(script, video, font, narration.credit_line, cast=on_screen)
    assert studio.cast is not None
    stage = studio.cast
    frames = round(rendering.duration * FPS)
    seed = f"{script.title}|{script.aired_at.isoformat()}"
    blinks = [lipsync.blinking(f"{seed}|{name}", frames, FPS) for name in ("めたん", "ずんだもん")]
    first, second = LEAD_IN_SECONDS, LEAD_IN_SECONDS + 1.5
    expected_metan = {first + 0.4: "a", first + 0.8: "closed", first + 1.2: "i", second + 0.4: "closed"}
    expected_zunda = {first + 0.4: "closed", second + 0.4: "a", second + 0.8: "closed", second + 1.2: "i"}
    for member, expected in enumerate([expected_metan, expected_zunda]):
        for seconds, mouth in expected.items():
            index = round(seconds * FPS)
            eyes = "closed" if blinks[member][index] else "open"
            assert _state_in(_frame(rendering.video, index, video.size), stage, member) == (mouth, eyes), seconds
    blink = next((n for n in range(frames) if blinks[1][n]), None)
    if blink is not None:
        assert _state_in(_frame(rendering.video, blink, video.size), stage, 1)[1] == "closed"
    if resolution == "1280x720":
        Image.fromarray(_frame(rendering.video, round((first + 0.4) * FPS), video.size).astype(np.uint8)).save(
            tmp_path / "landscape.png"
        )


def test_a_portrait_that_cannot_be_read_is_one_warning_and_a_built_in_character(tmp_path: Path) -> None:
    broken = tmp_path / "broken.psd"
    broken.write_bytes(b"8BPS" + b"\0" * 40)
    member = CastMember.model_validate({"name": "めたん", "portrait": {"file": str(broken)}})
    warnings: list[str] = []
    on_screen = render.cast_on_screen([member], Video(), {"めたん": broken}, warnings.append)
    assert len(on_screen) == 1 and on_screen[0][1].source.startswith("built-in")
    assert len(warnings) == 1 and "spec.cast[0].portrait (めたん)" in warnings[0] and str(broken) in warnings[0]


def test_no_cast_on_screen_when_asked_or_with_a_still_anchor_image() -> None:
    assert render.cast_on_screen(CAST, Video.model_validate({"showCast": False}), {}, print) == []
    assert render.cast_on_screen(CAST, Video.model_validate({"anchorImage": "a.png"}), {}, print) == []


def test_a_face_that_cannot_be_drawn_fails_the_render_instead_of_freezing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frames are made while ffmpeg encodes; if making one fails, the faces would stop moving from there on:
    the render fails (a retry makes it again) rather than publish that."""
    made = CastStage.strip

    def failing(stage: CastStage, states: list[tuple[str, str]]) -> bytes:
        if ("a", "open") in states or ("a", "closed") in states:
            raise RuntimeError("out of faces")
        return made(stage, states)

    monkeypatch.setattr(CastStage, "strip", failing)
    video = Video.model_validate({"resolution": "1280x720", "fps": FPS})
    with pytest.raises(TransientError, match="cast's frames could not be made: RuntimeError: out of faces"):
        render.render(_script(), _narration(tmp_path / "voice"), video, tmp_path / "render", cast=CAST)


def test_a_psd_portrait_is_read_and_animated(tmp_path: Path) -> None:
    """A PSD made with psd-tools' own writer, named as PSDToolKit's 立ち絵 are: its mouth layers move with the words."""
    from tests.unit.test_portrait_psd import saved, toolkit

    psd = saved(toolkit(), tmp_path / "metan.psd")
    cast = [CAST[0].model_copy(update={"portrait": Portrait(file=str(psd))}), CAST[1]]
    script, narration = _script(), _narration(tmp_path / "voice")
    video = Video.model_validate({"resolution": "1280x720", "fps": FPS})
    rendering = render.render(script, narration, video, tmp_path / "render", cast=cast, portraits={"めたん": psd})
    assert not rendering.warnings
    on_screen = render.cast_on_screen(cast, video, {"めたん": psd}, lambda _: None)
    assert on_screen[0][1].source != "built-in" and not on_screen[0][1].source.startswith("built-in")
    stage = Studio(script, video, resolve_font(None, japanese=True), narration.credit_line, cast=on_screen).cast
    assert stage is not None
    frames = round(rendering.duration * FPS)
    blinks = lipsync.blinking(f"{script.title}|{script.aired_at.isoformat()}|めたん", frames, FPS)
    for seconds, mouth in {
        LEAD_IN_SECONDS + 0.4: "a",
        LEAD_IN_SECONDS + 0.8: "closed",
        LEAD_IN_SECONDS + 1.2: "i",
    }.items():
        index = round(seconds * FPS)
        eyes = "closed" if blinks[index] else "open"
        assert _state_in(_frame(rendering.video, index, video.size), stage, 0) == (mouth, eyes), seconds
