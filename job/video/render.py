"""The render stage: a Script and its Narration in; an MP4 news broadcast, a thumbnail, SRT and WebVTT out.

The content is still pictures, so speed comes from never compositing frames: every distinct picture (a segment's
slide, or that slide with one sentence's subtitle burned in) is drawn once with Pillow, and ffmpeg encodes them
all in one pass through its concat demuxer, each picture held for a whole number of frames, against one WAV built
from the utterances. The timeline is laid out in audio samples and only then mapped to frames, so picture and
sound cannot drift apart, and the video is exactly as long as the audio.

    lead-in │ intro sentences │ gap │ story 1 sentences │ gap │ … │ outro sentences │ tail
    slide:  intro ─────────────────► story 1 ───────────────────► …   outro ──────────────►
    burned-in subtitle: one per sentence, from its first sample to its last

This module runs the stage; its parts live beside it: job/video/timeline.py (the timeline and the narration track),
job/video/slides.py (the pictures, drawn with job/video/canvas.py), job/video/wrap.py (line breaking),
job/video/encode.py (pictures to files, ffmpeg, read-back).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from api.v1alpha1 import Audio, CastMember, Loudness, Video
from job.model import Narration, Rendering, Script, Story, TransientError
from job.video import fonts, mix
from job.video.cast import casting, lipsync
from job.video.cast.portrait import Portrait
from job.video.cast.stage import CastStage, cast_sides
from job.video.encode import Overlay, Progress, draw_stills, encode, encoders, metadata, verify, write_concat
from job.video.layout import Layout, Side
from job.video.slides import Studio, write_thumbnail
from job.video.subtitles import to_srt, to_vtt
from job.video.timeline import (
    MUSIC_GAP_SECONDS,
    SEGMENT_GAP_SECONDS,
    Timeline,
    plan_timeline,
    read_voice,
    write_audio,
)


def render(
    script: Script,
    narration: Narration,
    video: Video,
    workdir: Path,
    *,
    base_dir: Path | None = None,
    progress: Progress | None = None,
    gpu_visible: bool = False,
    pictures: Mapping[Story, Path] | None = None,
    cast: Sequence[CastMember] = (),
    portraits: Mapping[str, Path] | None = None,
    audio: Audio | None = None,
    music: Path | None = None,
) -> Rendering:
    """Render the broadcast into `workdir`: video.mp4, thumbnail.jpg, subtitles.srt and subtitles.vtt.

    `pictures` are the stories' own pictures, as the image stage (job/news/pictures.py) prepared them; a story without
    one has its slide without one. `cast` is who presents (spec.members), shown on screen with spec.video.showCast;
    `portraits` their portraits as local files by member name (job/assets.py). `audio` is
    spec.audio: the loudness the sound is normalised to, and the music bed, whose file is `music` (a music bed that
    cannot be used is a warning, and the broadcast goes without it).

    Raises ConfigError for a bad font or image setting, TransientError when ffmpeg fails or its output is wrong.
    """
    report = progress or _no_progress
    if any(not 0 <= u.segment < len(script.segments) for u in narration.utterances):
        raise ValueError("an utterance refers to a segment the script does not have")
    workdir.mkdir(parents=True, exist_ok=True)
    voices = [read_voice(u, narration.sample_rate) for u in narration.utterances]
    lengths = [len(voice) for voice in voices]
    timeline = plan_timeline(
        narration.utterances,
        lengths,
        narration.sample_rate,
        video.fps,
        subtitles=video.subtitles,
        named=script.format == "dialogue",
        gap_seconds=MUSIC_GAP_SECONDS if music is not None else SEGMENT_GAP_SECONDS,
    )
    font = fonts.resolve_font(
        video.font, base_dir=base_dir, japanese=script.language == "ja" or fonts.contains_cjk(_all_text(script))
    )
    warnings: list[str] = []
    on_screen = cast_on_screen(cast, video, portraits or {}, warnings.append)
    audio = audio or Audio()
    pictures_dir, track, output = workdir / "pictures", workdir / "narration.wav", workdir / "video.mp4"
    mixed = workdir / "mix.wav"
    # The sound first: whether the music bed could be used decides whether the pictures credit it.
    write_audio(voices, timeline, track)
    report("mix", 0, 1)
    speech = timeline.speech(narration.utterances, lengths)
    try:
        mixing = _mix(track, speech, mixed, audio.loudness, _bed(audio, music), warnings.append)
    finally:
        track.unlink(missing_ok=True)
    report("mix", 1, 1)
    music_credit = (audio.music.credit or "") if mixing.music and audio.music else ""
    studio = Studio(
        script,
        video,
        font,
        narration.credit_line,
        base_dir=base_dir,
        pictures=pictures,
        cast=on_screen,
        music_credit=music_credit,
    )
    overlay = _cast_overlay(studio.cast, script, narration, timeline, voices) if studio.cast else None

    shutil.rmtree(pictures_dir, ignore_errors=True)
    pictures_dir.mkdir()
    try:
        files = draw_stills(studio, narration, timeline, pictures_dir, report)
        concat = write_concat(timeline, files, pictures_dir / "pictures.ffconcat")
        encoder = encode(
            concat,
            mixed,
            output,
            metadata(script, narration, music_credit),
            script.language,
            timeline,
            report,
            encoders=encoders(video.encoder, gpu_visible),
            warn=warnings.append,
            overlay=overlay,
        )
        verify(output, timeline, video.size)
    finally:  # the intermediate files are large and nobody else needs them
        shutil.rmtree(pictures_dir, ignore_errors=True)
        mixed.unlink(missing_ok=True)
    sound = _measured(output, mixing)

    thumbnail = write_thumbnail(studio.thumbnail_slide().image, workdir / "thumbnail.jpg")
    srt = workdir / "subtitles.srt"
    srt.write_text(to_srt(timeline.cues), encoding="utf-8")
    vtt = workdir / "subtitles.vtt"
    vtt.write_text(to_vtt(timeline.cues), encoding="utf-8")
    return Rendering(
        video=output,
        thumbnail=thumbnail,
        srt=srt,
        vtt=vtt,
        duration=timeline.duration,
        cues=timeline.cues,
        warnings=(*studio.warnings(), *warnings),
        encoder=encoder,
        loudness=sound,
        music_credit=music_credit,
    )


def cast_on_screen(
    cast: Sequence[CastMember], video: Video, files: Mapping[str, Path], warn: Callable[[str], None]
) -> list[tuple[str, Portrait, Side]]:
    """The members shown, each with their portrait (`files`: the local files job/assets.py resolved, by name) and
    side; nobody without showCast, or with an anchorImage (a still picture in their place)."""
    sides = cast_sides(video, [member.position for member in cast])
    if not sides or video.anchor_image:
        return []
    _, top, _, bottom = Layout(*video.size, sides).cast_box(sides[0])
    faces = casting.portraits(cast, files, bottom - top, warn=warn)
    return [(member.name, face, side) for member, face, side in zip(cast, faces, sides, strict=True)]


def _cast_overlay(
    stage: CastStage, script: Script, narration: Narration, timeline: Timeline, voices: Sequence[np.ndarray]
) -> Overlay:
    """Each member's face in every frame: the speaker's mouth with their words, everyone's eyes blinking on a
    schedule seeded by the broadcast (its title and airtime, which a resumed run keeps), so every run of it draws
    the same frames."""
    rate, fps, frames = narration.sample_rate, timeline.fps, timeline.frames
    mouths = [
        lipsync.mouth_frames(m.name, narration.utterances, timeline.starts, voices, rate, fps, frames)
        for m in stage.members
    ]
    seed = f"{script.title}|{script.aired_at.isoformat()}"
    eyes = [lipsync.blinking(f"{seed}|{m.name}", frames, fps) for m in stage.members]

    def strips() -> Iterator[bytes]:
        for frame in range(frames):
            yield stage.strip(
                [(mouth[frame], "closed" if eye[frame] else "open") for mouth, eye in zip(mouths, eyes, strict=True)]
            )

    return Overlay(stage.strip_size, stage.strip_boxes(), strips)


def _bed(audio: Audio, music: Path | None) -> mix.Bed | None:
    if audio.music is None or music is None:
        return None
    settings = audio.music
    return mix.Bed(music, settings.level_db, settings.duck_db, settings.fade_seconds)


def _mix(
    track: Path,
    speech: Sequence[tuple[float, float]],
    output: Path,
    loudness: Loudness,
    bed: mix.Bed | None,
    warn: Callable[[str], None],
) -> mix.MixReport:
    """The broadcast's sound (job/video/mix.py); a bed that cannot be used is a warning and a mix without it."""
    target, ceiling = loudness.integrated_lufs, loudness.true_peak_dbtp
    try:
        try:
            return mix.mix(track, speech, output, target_lufs=target, ceiling_dbtp=ceiling, bed=bed)
        except mix.MusicError as exc:
            warn(f"spec.audio.music: {exc}; the broadcast goes without music")
            return mix.mix(track, speech, output, target_lufs=target, ceiling_dbtp=ceiling)
    except mix.MixError as exc:
        raise TransientError(f"the sound could not be mixed: {exc}") from None


def _measured(video: Path, mixing: mix.MixReport) -> dict[str, object]:
    """The manifest's loudness record: the mix's, with the loudness measured again on the video's AAC track (what
    viewers and the podcast hear)."""
    try:
        return mixing.document() | mix.measure(video).document() | {"measuredOn": "video.mp4"}
    except mix.MixError:
        return mixing.document() | {"measuredOn": "mix"}  # taken on the samples the encoder was given


def _no_progress(step: str, done: int, total: int) -> None:
    """Progress goes nowhere when nobody asked for it."""


def _all_text(script: Script) -> str:
    parts = [script.title, *script.presenters]
    for segment in script.segments:
        parts += segment.sentences
        if segment.story is not None:
            parts += [segment.story.title, segment.story.source, segment.story.summary]
    return "\n".join(parts)
