"""One broadcast run, stage by stage: news → script → voice → render → store, with GPU telemetry alongside.

This is the only module that knows the order of the stages; each stage gets typed input and returns typed
output (job.model), and side effects stay in the stages.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from api.result import NOTHING_NEW, Engine, ExitCode, RunResult
from api.v1alpha1 import MediaSource, NewsBroadcast, NewsBroadcastSpec
from job import assets, cost
from job.memory import aired, checkpoint, state
from job.memory.audio_cache import AudioCache
from job.model import Artifact, ConfigError, Credit, Narration, Publication, Rendering, Script, Story, TransientError
from job.news import reader
from job.news.pictures import StoryImages, fetch_story_images
from job.progress import Reporter
from job.publish import site, store
from job.script import dialogue, llm, templates
from job.telemetry import GpuMonitor
from job.video import render, story_picture
from job.video.cast.stage import cast_sides
from job.video.narration_audio import NoNarrationAudio, extract_m4a
from job.voice import narrator

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


T = TypeVar("T")


@dataclass(frozen=True)
class RunContext:
    """Where and when a run happens: everything that is not in the spec."""

    run_id: str
    aired_at: datetime
    base_dir: Path | None
    env: Mapping[str, str]
    engine_ready_timeout: float = 120.0
    engine_url: str | None = None
    """The command line's --engine-url: overrides spec.voice.engineUrl and is named as such when it fails."""
    started: float = field(default_factory=time.monotonic)
    """When the job started (time.monotonic()): the manifest's GPU time counts from here."""


def run_identity(
    spec_time_zone: str, env: Mapping[str, str], *, run_id: str | None = None, now: datetime | None = None
) -> tuple[str, datetime]:
    """The run id and the moment the broadcast is dated.

    A CronJob's Job carries its scheduled time (the controller passes it as ANCHOR_SCHEDULED_TIME), so a retried
    or re-run pod keeps the same id and overwrites its own run instead of adding one.
    """
    zone = ZoneInfo(spec_time_zone)
    scheduled = env.get("ANCHOR_SCHEDULED_TIME")
    moment = now or datetime.now(UTC)
    if scheduled:
        try:
            moment = datetime.fromisoformat(scheduled.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"ANCHOR_SCHEDULED_TIME {scheduled!r} is not an RFC 3339 time such as 2026-11-24T07:00:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    run_id = run_id or env.get("ANCHOR_RUN_ID") or moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
    if not _RUN_ID.match(run_id):
        raise ConfigError(
            f"run id {run_id!r} is not allowed: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return run_id, moment.astimezone(zone)


class NothingNew(Exception):
    """Every story the feeds gave was aired by an earlier run within spec.sources.rememberAiredHours."""


def run_broadcast(broadcast: NewsBroadcast, context: RunContext, reporter: Reporter) -> RunResult:
    """Produce and publish one broadcast. Raises ConfigError/TransientError; the CLI turns them into exit codes.

    What the run makes is saved as it goes (job/memory/checkpoint.py, job/memory/audio_cache.py), so a retried pod of
    the same run takes its stories and script back and speaks nothing anew; a run with nothing new ends as
    NothingNew."""
    spec = broadcast.spec
    with tempfile.TemporaryDirectory(prefix="anchor-run-") as scratch:
        workdir = Path(scratch)
        reporter.event("run.start", f"broadcast {broadcast.name}, run {context.run_id}", run=context.run_id)
        held, unaccounted = cost.allocation(context.env)
        if unaccounted:
            reporter.warn(unaccounted)
        store.check_output(spec.output, broadcast.name, context.env)
        shared, own = state.opened(spec.output, broadcast.name, context.env)
        cache = AudioCache(shared) if spec.output.audio_cache.enabled else None
        with GpuMonitor() as gpu:
            try:
                the_script, writer = _script(broadcast, context, own, reporter)
            except NothingNew as exc:
                reporter.event("news.nothing_new", str(exc))
                return _nothing_new(broadcast, context, str(exc), reporter)
            reporter.event(
                "script.done",
                f"{sum(len(s.sentences) for s in the_script.segments)} sentences by {writer}",
                writer=writer,
            )
            pictures = _pictures_meanwhile(broadcast, the_script, workdir / "images")
            narration = narrator.narrate(
                the_script,
                spec.voice,
                workdir / "voice",
                env=context.env,
                cast=spec.cast,
                engine_url=context.engine_url,
                ready_timeout=context.engine_ready_timeout,
                on_wait=engine_wait_reporter(reporter),
                progress=reporter.progress,
                warn=reporter.warn,
                cache=cache,
            )
            left_out = f", {len(narration.unspoken)} with nothing to say left out" if narration.unspoken else ""
            reused = f", {cache.hits} from the audio cache" if cache and cache.hits else ""
            reporter.event(
                "voice.done",
                f"{len(narration.utterances)} sentences spoken as {' and '.join(narration.credit_lines)} "
                f"(engine {narration.engine.version}, {narration.engine.device}){left_out}{reused}",
                spoken=len(narration.utterances),
                unspoken=len(narration.unspoken),
                cache=cache.summary() if cache else None,
            )
            images = pictures.result() if pictures else StoryImages(len(the_script.stories))
            if pictures:
                reporter.event("images.done", images.summary, pictures=len(images.files), stories=images.stories)
                if images.warning:
                    reporter.warn(images.warning)
            rendering = render.render(
                the_script,
                narration,
                spec.video,
                workdir / "render",
                base_dir=context.base_dir,
                progress=reporter.progress,
                gpu_visible=bool(gpu.telemetry.gpus),
                pictures=images.files,
                cast=spec.members,
                portraits=_fetched_portraits(spec, context, workdir / "assets", reporter),
                audio=spec.audio,
                music=_fetched_music(spec, context, workdir / "assets" / "music", reporter),
            )
            for warning in rendering.warnings:
                reporter.warn(warning)
            reporter.event(
                "render.done",
                f"{rendering.duration:.1f} s of video ({rendering.encoder})",
                duration=rendering.duration,
                encoder=rendering.encoder,
            )
        details: dict[str, Any] = {
            "script": {"writer": writer},
            "audioCache": cache.summary() if cache else {"enabled": False},
            "encoder": rendering.encoder,
        }
        details["stories"] = [_story_entry(story, images.urls.get(story)) for story in the_script.stories]
        if gpu_time := cost.gpu_time(held, time.monotonic() - context.started):
            details["gpuTime"] = gpu_time
        publication = _publish(
            broadcast, context, the_script, narration, rendering, gpu.telemetry.summary(), details, workdir, reporter
        )
        reporter.event("store.done", f"published to {publication.location}", location=publication.location)
        page_url = _write_listing(broadcast, context, reporter)
        _after_publish(broadcast, context, the_script, own, cache)

    return RunResult(
        status="Succeeded",
        broadcast=broadcast.name,
        run_id=context.run_id,
        exit_code=int(ExitCode.OK),
        video=publication.video,
        video_url=publication.video_url,
        manifest=publication.manifest,
        page_url=page_url,
        duration_seconds=round(rendering.duration, 2),
        stories=len(the_script.stories),
        engine=Engine(version=narration.engine.version, device=narration.engine.device),
        gpu=gpu.telemetry.gpu_name,
        credits=list(narration.credit_lines),
        script_writer=writer,
        synthesized_sentences=cache.misses if cache else len(narration.utterances) + len(narration.unspoken),
        warnings=reporter.warnings,
    )


def _script(broadcast: NewsBroadcast, context: RunContext, own: state.State, reporter: Reporter) -> tuple[Script, str]:
    """The run's script and who wrote it: its checkpoint when this run was started before, else new stories (the
    ones earlier runs did not air) and a script from the LLM, when one is set and answers well, or the templates."""
    spec = broadcast.spec
    resumed = checkpoint.load_script(own, context.run_id)
    if resumed:
        the_script, writer = resumed
        reporter.event(
            "run.resume",
            f"run {context.run_id} resumes from its checkpoint: {len(the_script.stories)} stories, script by {writer}",
        )
        return resumed
    stories = checkpoint.load_stories(own, context.run_id)
    if stories is None:
        stories = _news(broadcast, context, own, reporter)
        checkpoint.save_stories(own, context.run_id, stories)
    title = spec.script.title or broadcast.name
    cast = [member.name for member in spec.members]
    when = context.aired_at
    script_spec, key = spec.script, context.env.get("ANCHOR_LLM_API_KEY") or None
    writer = "templates"
    if script_spec.format == "dialogue":
        turns = None
        if script_spec.llm is not None:
            asked = llm.write_dialogue_with_llm(
                stories, script_spec.llm, language=script_spec.language, cast=cast, api_key=key
            )
            turns = _written(asked, "the dialogue", reporter)
            writer = f"llm:{asked.model}" if turns else writer
        the_script = dialogue.write_dialogue(stories, script_spec, title=title, aired_at=when, cast=cast, turns=turns)
    else:
        texts = None
        if script_spec.llm is not None:
            answer = llm.write_with_llm(
                stories, script_spec.llm, language=script_spec.language, anchor_name=cast[0], api_key=key
            )
            texts = _written(answer, "the script", reporter)
            writer = f"llm:{answer.model}" if texts else writer
        the_script = templates.write_script(
            stories, script_spec, title=title, aired_at=when, cast=cast, story_texts=texts
        )
    checkpoint.save_script(own, context.run_id, the_script, writer)
    return the_script, writer


def _written(answer: llm.LlmAnswer[T], what: str, reporter: Reporter) -> T | None:
    """What the model wrote, said in the run's events; None, with a warning saying why, when it failed (the built-in
    templates speak instead)."""
    if answer.content is None:
        reporter.warn(f"the LLM did not write {what} ({answer.problem}); the built-in templates were used")
        return None
    reporter.event("script.llm", f"{answer.model} wrote {what}", tokens=answer.tokens)
    return answer.content


def _pictures_meanwhile(broadcast: NewsBroadcast, the_script: Script, workdir: Path) -> Future[StoryImages] | None:
    """The stories' pictures (spec.video.storyImages), fetched in the background while the engine speaks, so that
    they add no time to the run, which holds its GPU meanwhile; None when the broadcast shows none. The thread is
    bounded by the image stage's own time limits and never fails the run (job/news/pictures.py)."""
    spec = broadcast.spec
    if not spec.video.story_images or not the_script.stories:
        return None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anchor-pictures")
    try:
        room = story_picture.picture_room(
            spec.video, cast_sides(spec.video, [m.position for m in spec.members])
        )  # as the slides will place it
        return pool.submit(fetch_story_images, the_script.stories, spec.sources, room, workdir)
    finally:
        pool.shutdown(wait=False)  # the one task runs on; nothing waits for it unless its result is wanted


def _fetched_portraits(
    spec: NewsBroadcastSpec, context: RunContext, directory: Path, reporter: Reporter
) -> dict[str, Path]:
    """The cast's portraits as local files, by name; one that cannot be had is a warning, and its member appears as
    a built-in character. None are fetched for nobody on screen."""
    if not cast_sides(spec.video, [m.position for m in spec.members]) or spec.video.anchor_image:
        return {}
    limits = assets.AssetLimits(assets.PORTRAIT_BYTES, "a portrait")
    fetched = {}
    for number, member in enumerate(spec.cast or ()):
        if member.portrait is not None:
            field, why = f"spec.cast[{number}].portrait", f"{member.name} appears as a built-in character instead"
            path = _fetched(member.portrait, field, directory / str(number), limits, why, spec, context, reporter)
            if path is not None:
                fetched[member.name] = path
    return fetched


def _fetched_music(spec: NewsBroadcastSpec, context: RunContext, directory: Path, reporter: Reporter) -> Path | None:
    """The music bed as a local file; one that cannot be had is a warning, and the broadcast goes without it."""
    if spec.audio.music is None:
        return None
    limits = assets.AssetLimits(assets.MUSIC_BYTES, "a music bed")
    why = "the broadcast goes without music"
    return _fetched(spec.audio.music, "spec.audio.music", directory, limits, why, spec, context, reporter)


def _fetched(
    source: MediaSource,
    field: str,
    directory: Path,
    limits: assets.AssetLimits,
    otherwise: str,
    spec: NewsBroadcastSpec,
    context: RunContext,
    reporter: Reporter,
) -> Path | None:
    """`source` as a local file (job/assets.py), or None with a warning saying why and what happens `otherwise`."""
    try:
        return assets.local_file(source, field, directory, spec, context.env, base_dir=context.base_dir, limits=limits)
    except assets.AssetUnavailable as exc:
        reporter.warn(f"{exc}; {otherwise}")
        return None


def _after_publish(
    broadcast: NewsBroadcast, context: RunContext, the_script: Script, own: state.State, cache: AudioCache | None
) -> None:
    """Remember what aired, drop the run's checkpoints, keep the audio cache within its bounds: all savings, so a
    failure here is logged by the state and never unpublishes the run."""
    hours = broadcast.spec.sources.remember_aired_hours
    if hours:
        memory = aired.load(own, context.aired_at, timedelta(hours=hours))
        aired.remember(own, memory, the_script.stories, context.aired_at, context.run_id)
    checkpoint.forget(own, context.run_id, datetime.now(UTC))
    settings = broadcast.spec.output.audio_cache
    if cache:
        with contextlib.suppress(Exception):  # the cache is a saving; pruning again next run is fine
            cache.prune(settings.max_size_mib * 2**20, timedelta(days=settings.max_age_days))


def _write_listing(broadcast: NewsBroadcast, context: RunContext, reporter: Reporter) -> str | None:
    """Rewrite the broadcast's page and feeds (job/publish/site.py) to include the run; return the page's URL. The run
    is published already, so nothing here may fail it: a failure is a warning and the result has no page URL."""
    if not broadcast.spec.output.listing.enabled:
        return None
    try:
        written = site.write_listing(broadcast, context.env)
    except Exception as exc:  # any failure at all (storage, a bug in the listing) must leave the run succeeded
        reporter.warn(f"the broadcast's page and feeds were not updated: {str(exc) or type(exc).__name__}")
        return None
    left_out = written.left_out
    if left_out:
        named = "; ".join(left_out[:3]) + (f"; and {len(left_out) - 3} more" if len(left_out) > 3 else "")
        reporter.warn(f"the broadcast's page and feeds leave out {len(left_out)} run(s): {named}")
    reporter.event("listing.done", f"{written.runs} runs listed on {written.page_url}", url=written.page_url)
    return written.page_url


def _nothing_new(broadcast: NewsBroadcast, context: RunContext, message: str, reporter: Reporter) -> RunResult:
    return RunResult(
        status="Succeeded",
        broadcast=broadcast.name,
        run_id=context.run_id,
        exit_code=int(ExitCode.OK),
        reason=NOTHING_NEW,
        message=message,
        stories=0,
        warnings=reporter.warnings,
    )


def engine_wait_reporter(reporter: Reporter) -> Callable[[narrator.EngineWait], None]:
    """The wait for the engine as the run's events: voice.engine.start (URL, where it came from, timeout), then
    voice.engine.waiting about every 10 s (waited, last reason) and voice.engine.ready."""

    def report(wait: narrator.EngineWait) -> None:
        reporter.event(f"voice.engine.{wait.state}", wait.message, **wait.fields)

    return report


def _news(broadcast: NewsBroadcast, context: RunContext, own: state.State, reporter: Reporter) -> list[Story]:
    sources = broadcast.spec.sources
    if context.base_dir is None:
        # No YAML file on disk: the broadcast came from the controller, in a pod, where a local path would read the
        # container's own files (its service-account token, say). Only network feeds make sense there.
        local = [f.url for f in sources.feeds if not f.url.lower().startswith(("http://", "https://"))]
        if local:
            raise ConfigError(
                f"spec.sources.feeds: {local[0]!r} is not an http(s) URL; local feeds work only outside a cluster"
            )
    reports = reader.read_sources(sources, now=context.aired_at.astimezone(UTC), base_dir=context.base_dir)
    for report in reports:
        if report.error:
            reporter.warn(f"feed skipped: {report.error}")
        else:
            reporter.event("news.feed", f"{len(report.stories)} stories from {report.url}", stories=len(report.stories))
    hours = sources.remember_aired_hours
    memory = aired.load(own, context.aired_at, timedelta(hours=hours)) if hours else {}
    fresh = [replace(r, stories=tuple(aired.unaired(r.stories, memory, context.run_id))) for r in reports]
    stories = reader.select_stories(fresh, broadcast.spec.script.stories)
    found = sum(len(r.stories) for r in reports)
    if not stories and found:
        feeds = sum(1 for r in reports if r.stories)
        raise NothingNew(
            f"no new stories: all {found} stories from {feeds} feed{'s' * (feeds != 1)} were aired by earlier runs "
            f"within the last {hours} h (spec.sources.rememberAiredHours)"
        )
    if found > sum(len(r.stories) for r in fresh):
        reporter.event("news.aired", f"{found - sum(len(r.stories) for r in fresh)} stories already aired, skipped")
    if not stories:
        reasons = "; ".join(r.error or f"{r.url}: no stories" for r in reports)
        raise TransientError(f"no stories to broadcast: {reasons}")
    reporter.event("news.done", f"{len(stories)} stories selected", stories=len(stories))
    return stories


def _publish(
    broadcast: NewsBroadcast,
    context: RunContext,
    the_script: Script,
    narration: Narration,
    rendering: Rendering,
    telemetry: dict[str, Any],
    details: dict[str, Any],
    workdir: Path,
    reporter: Reporter,
) -> Publication:
    script_json = workdir / "script.json"
    script_json.write_text(json.dumps(_script_document(the_script, rendering), ensure_ascii=False, indent=2) + "\n")
    credits_txt = workdir / "credits.txt"
    credits_txt.write_text(_credits_text(narration, rendering.music_credit), encoding="utf-8")
    artifacts = [
        Artifact("video.mp4", rendering.video, "video/mp4"),
        *_narration_audio(rendering, workdir, reporter),
        Artifact("thumbnail.jpg", rendering.thumbnail, "image/jpeg"),
        Artifact("subtitles.srt", rendering.srt, "application/x-subrip"),
        Artifact("subtitles.vtt", rendering.vtt, "text/vtt; charset=utf-8"),
        Artifact("script.json", script_json, "application/json"),
        Artifact("credits.txt", credits_txt, "text/plain; charset=utf-8"),
    ]
    manifest = {
        "apiVersion": "anchor.news/v1alpha1",
        "kind": "BroadcastManifest",
        "broadcast": broadcast.name,
        "runId": context.run_id,
        "airedAt": context.aired_at.isoformat(),
        "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "language": the_script.language,
        "title": the_script.title,
        "durationSeconds": round(rendering.duration, 3),
        "credits": list(narration.credit_lines),
        "voice": _voice_entry(narration.credit),
        "cast": [{"name": credit.member, **_voice_entry(credit)} for credit in narration.credits],
        "engine": {
            "version": narration.engine.version,
            "device": narration.engine.device,
            "supportedDevices": narration.engine.supported_devices,
        },
        "loudness": rendering.loudness,
        **({"music": {"credit": rendering.music_credit}} if rendering.music_credit else {}),
        "gpuTelemetry": telemetry,
        **details,
    }
    return store.publish(
        artifacts,
        manifest=manifest,
        output=broadcast.spec.output,
        broadcast=broadcast.name,
        run_id=context.run_id,
        env=context.env,
        progress=reporter.progress,
    )


def _narration_audio(rendering: Rendering, workdir: Path, reporter: Reporter) -> list[Artifact]:
    """narration.m4a, the podcast's episode: the video's sound copied out. Without it the run is still published
    (its video, page and video feed); only the podcast leaves it out, so a failure is a warning."""
    try:
        return [Artifact("narration.m4a", extract_m4a(rendering.video, workdir / "narration.m4a"), "audio/mp4")]
    except NoNarrationAudio as exc:
        reporter.warn(f"narration.m4a was not made, so the podcast leaves this run out: {exc}")
        return []


def _story_entry(story: Story, picture: str | None) -> dict[str, str]:
    """A story as the manifest lists it: its title, source and link, and the picture its slide showed, if any."""
    entry = {"title": story.title, "source": story.source, "link": story.link}
    if picture:
        entry["image"] = picture
    return entry


def _script_document(the_script: Script, rendering: Rendering) -> dict[str, Any]:
    return {**checkpoint.script_document(the_script), "cues": [asdict(cue) for cue in rendering.cues]}


def _voice_entry(credit: Credit) -> dict[str, Any]:
    """A voice as the manifest records it."""
    return {"speaker": credit.speaker, "style": credit.style, "styleId": credit.style_id, "policy": credit.policy}


def _credits_text(narration: Narration, music_credit: str = "") -> str:
    """credits.txt: every voice's credit line, who speaks with it, and its terms as the engine reports them; the
    music bed's credit."""
    lines = [*narration.credit_lines, *([f"Music: {music_credit}"] if music_credit else []), ""]
    lines += [f"Voice of {c.member}: {c.speaker} ({c.style})" if c.member else f"Voice: {c.speaker} ({c.style})"
              for c in narration.credits]  # fmt: skip
    lines.append("Speech synthesis: VOICEVOX engine " + narration.engine.version)
    terms = {credit.speaker: credit.policy for credit in narration.credits if credit.policy}
    for speaker, policy in terms.items():
        heading = "Terms of use of this voice" if len(terms) == 1 else f"Terms of use of {speaker}'s voice"
        lines += ["", f"{heading}, as the engine reports them:", policy.strip()]
    return "\n".join(lines) + "\n"
