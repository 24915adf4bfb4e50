"""The voice stage: the narration of a script through the VOICEVOX engine (job/voice/engine_client.py), one WAV per
sentence.

The client follows the engine's OpenAPI document (shared/reference/voicevox-openapi.json): /version,
/speakers, /speaker_info, /supported_devices, /initialize_speaker?skip_reinit=true, then /audio_query and
/synthesis per sentence. The engine serves one synthesis at a time, so sentences are spoken one after another.
A sentence with nothing to say (a query without moras, or a WAV without sound) is left out of the narration, so
that it never becomes an empty or mute subtitle; the narration keeps the sentences it left out.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar

from api.v1alpha1 import DEFAULT_ENGINE_URL, CastMember
from api.v1alpha1 import Voice as VoiceSpec
from job.model import ConfigError, Credit, EngineInfo, Narration, Script, SentenceCache, TransientError, Utterance
from job.voice import timing
from job.voice.engine_client import EngineError, EngineNotReady, VoicevoxClient

T = TypeVar("T")

SAMPLE_RATE = 24000
MAX_POLICY_CHARS = 4000
MIN_SPEECH_SECONDS = 0.05
"""A WAV shorter than this carries no speech (one mora alone lasts longer): the engine had nothing to say."""
_UNSPOKEN_LISTED = 5


def _silent_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
    return buffer.getvalue()


SILENT_WAV = _silent_wav()
"""A WAV of 0 frames: what the cache keeps for a sentence with nothing to say (no moras), so it is not asked again."""
_CREDIT_IN_POLICY = re.compile(r"VOICEVOX[:：]\s?[^\s、。,，「」『』()（）\"'`*]+")


# -- narration -------------------------------------------------------------------------------------------


class UrlSource(Enum):
    """Where the engine's URL came from, in the order they take precedence; named when the engine is not there."""

    OPTION = "--engine-url"
    SPEC = "spec.voice.engineUrl"
    ENVIRONMENT = "ANCHOR_VOICEVOX_URL"
    DEFAULT = "default"


_HINTS = {
    UrlSource.OPTION: "the URL came from --engine-url: point --engine-url at a running VOICEVOX engine",
    UrlSource.SPEC: "the URL came from spec.voice.engineUrl: set spec.voice.engineUrl to a running VOICEVOX engine",
    UrlSource.ENVIRONMENT: (
        "the URL came from ANCHOR_VOICEVOX_URL: set ANCHOR_VOICEVOX_URL to a running VOICEVOX engine (in a "
        "broadcast's pod the controller sets it to the engine sidecar: read the sidecar's log)"
    ),
    UrlSource.DEFAULT: (
        f"no engine URL was given, so the default {DEFAULT_ENGINE_URL} was used: start an engine there "
        "(`anchor standin-engine` for the CPU stand-in) or give one with --engine-url, spec.voice.engineUrl or "
        "ANCHOR_VOICEVOX_URL"
    ),
}


@dataclass(frozen=True)
class EngineAddress:
    """The engine's URL and the setting it came from."""

    url: str
    source: UrlSource

    @property
    def origin(self) -> str:
        return "the default" if self.source is UrlSource.DEFAULT else f"from {self.source.value}"

    @property
    def hint(self) -> str:
        """What to change when no engine answers at this URL."""
        return _HINTS[self.source]


def engine_address(spec: VoiceSpec, env: Mapping[str, str], option: str | None = None) -> EngineAddress:
    """The engine URL: the command line's --engine-url, else spec.voice.engineUrl, else ANCHOR_VOICEVOX_URL, else
    the sidecar's default address."""
    if option:
        return EngineAddress(option, UrlSource.OPTION)
    if spec.engine_url:
        return EngineAddress(spec.engine_url, UrlSource.SPEC)
    if env.get("ANCHOR_VOICEVOX_URL"):
        return EngineAddress(env["ANCHOR_VOICEVOX_URL"], UrlSource.ENVIRONMENT)
    return EngineAddress(DEFAULT_ENGINE_URL, UrlSource.DEFAULT)


@dataclass(frozen=True)
class EngineWait:
    """How the wait for the engine stands: reported when it starts, about every 10 s while the engine does not
    answer, and when it does."""

    state: Literal["start", "waiting", "ready"]
    address: EngineAddress
    timeout: float
    waited: float = 0.0
    reason: str | None = None
    """Why the last poll failed (while waiting)."""
    version: str | None = None
    """The engine's version (once ready)."""

    @property
    def message(self) -> str:
        engine = f"VOICEVOX engine at {self.address.url}"
        if self.state == "start":
            return f"waiting up to {self.timeout:.0f} s for the {engine} ({self.address.origin})"
        if self.state == "waiting":
            return f"still waiting for the {engine}: {self.waited:.0f} s of {self.timeout:.0f} s ({self.reason})"
        return f"{engine} ready after {self.waited:.1f} s (version {self.version})"

    @property
    def fields(self) -> dict[str, Any]:
        """The same facts as JSON fields, for the run's event lines."""
        found: dict[str, Any] = {"url": self.address.url, "source": self.address.source.value}
        found.update(timeout=self.timeout, waited=round(self.waited, 1), reason=self.reason, version=self.version)
        return {k: v for k, v in found.items() if v is not None}


def find_style(
    speakers: list[dict[str, Any]], style_id: int, field: str = "spec.voice.styleId"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The speaker and style for a style id, or a ConfigError listing every style the engine has."""
    available = []
    for speaker in speakers:
        for style in speaker.get("styles", []) or []:
            if not isinstance(style, dict):
                continue
            if style.get("id") == style_id and style.get("type", "talk") == "talk":
                return speaker, style
            if style.get("type", "talk") == "talk":
                available.append(f"{style.get('id')} ({speaker.get('name')} {style.get('name')})")
    listed = ", ".join(available[:60]) + (" …" if len(available) > 60 else "")
    raise ConfigError(f"{field} {style_id} is not a talk style of this VOICEVOX engine; available: {listed or 'none'}")


def credit_for(
    speaker: Mapping[str, Any], style: Mapping[str, Any], policy: str | None, override: str | None, member: str = ""
) -> Credit:
    """The voice's credit: the spec's wording if given, else the form the character's policy names, else
    "VOICEVOX:<character>" as VOICEVOX's terms ask."""
    name = str(speaker.get("name", "")).strip() or "unknown"
    text = override
    if not text and policy:
        forms = [m.group(0) for m in _CREDIT_IN_POLICY.finditer(policy) if name in m.group(0)]
        text = forms[0].replace("：", ":") if forms else None
    return Credit(
        text=text or f"VOICEVOX:{name}",
        speaker=name,
        style=str(style.get("name", "")),
        style_id=int(style["id"]),
        policy=policy[:MAX_POLICY_CHARS] if policy else None,
        member=member,
    )


def _device(supported: Mapping[str, bool], env: Mapping[str, str]) -> str:
    # The engine does not say which device it runs on; it uses CUDA when started with --use_gpu on a GPU.
    if env.get("ANCHOR_ENGINE_USE_GPU", "").lower() in ("1", "true") and supported.get("cuda"):
        return "cuda"
    if env.get("ANCHOR_ENGINE_USE_GPU", "").lower() in ("1", "true") and supported.get("dml"):
        return "dml"
    return "cpu" if supported.get("cpu", True) else "unknown"


def cache_key(engine_version: str, voice: VoiceSpec | CastMember, text: str) -> str:
    """The cache key of `text` spoken by this engine version with this voice (not its URL, credit line or the
    member's name: two members with the same voice share their sentences)."""
    sound = voice.model_dump(mode="json", exclude={"engine_url", "credit", "name"})
    material = json.dumps({"engine": engine_version, "voice": sound, "text": text}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def narrate(
    script: Script,
    spec: VoiceSpec,
    workdir: Path,
    *,
    env: Mapping[str, str],
    cast: Sequence[CastMember] | None = None,
    client: VoicevoxClient | None = None,
    engine_url: str | None = None,
    ready_timeout: float = 120.0,
    on_wait: Callable[[EngineWait], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    cache: SentenceCache | None = None,
) -> Narration:
    """Speak every sentence of the script, each in its speaker's voice (`cast`, the spec's members; without it,
    spec.voice is the one anchor's); one 24 kHz mono WAV per sentence under `workdir`. Sentences with nothing to say
    are left out (Narration.unspoken) with one warning.

    `engine_url` is the command line's --engine-url, which overrides the spec; `on_wait` hears how the wait for the
    engine goes. With a `cache` (job/memory/audio_cache.py), a sentence this engine version already spoke with this
    voice is taken from it without asking the engine, and each sentence spoken is saved to it at once; a style is
    initialised only when a sentence must be spoken with it."""
    members = tuple(cast) if cast else (CastMember.speaking_as(spec, script.anchor_name),)
    address = engine_address(spec, env, engine_url)
    client = client or VoicevoxClient(address.url)
    version = wait_for_engine(client, address, ready_timeout, on_wait)
    speakers = _config_call(client.speakers)
    policy = functools.cache(lambda uuid: _policy(client, uuid))  # members may share a character: asked once
    credits = tuple(_credit(speakers, policy, member, n, cast is not None) for n, member in enumerate(members))
    supported = _config_call(client.supported_devices)
    engine = EngineInfo(client.base_url, version, _device(supported, env), supported)  # type: ignore[arg-type]
    voices = {member.name: member for member in members}
    initialised: set[int] = set()

    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        (i, script.speaker(i, n), text)
        for i, segment in enumerate(script.segments)
        for n, text in enumerate(segment.sentences)
    ]
    strangers = sorted({name for _, name, _ in lines if name not in voices})
    if strangers and warn:
        warn(f"the script names {', '.join(strangers)}, who is not in the cast; {members[0].name} speaks instead")
    utterances: list[Utterance] = []
    unspoken: list[str] = []
    for n, (segment, name, text) in enumerate(lines):
        voice = voices.get(name, members[0])
        key = cache_key(version, voice, text) if cache else ""
        # A sentence kept before sentences carried their timing is spoken again, once, to have it.
        cached = cache.get(key, usable=_timed) if cache else None
        try:
            if cached is not None:
                wav: bytes | None = cached
            else:
                if voice.style_id not in initialised:
                    _config_call(functools.partial(client.initialize_speaker, voice.style_id))
                    initialised.add(voice.style_id)
                wav = _speak(client, text, voice)
                if cache:
                    cache.put(key, wav if wav is not None else SILENT_WAV)  # nothing to say is remembered too
        except EngineError as exc:
            if exc.transient:
                raise TransientError(str(exc)) from None
            # A sentence the engine refuses (odd characters from a feed, say) is dropped, not the broadcast.
            if warn:
                warn(f"sentence skipped: {exc}")
            continue
        seconds = 0.0 if wav is None else _wav_seconds(wav)
        if wav is None or seconds < MIN_SPEECH_SECONDS:
            # Nothing to say: no moras in the query (symbols only; the engine would answer the 0.19 s of silence
            # around nothing, or 0 frames in mock mode), or a WAV too short to hold speech. Its cue would be mute.
            unspoken.append(text)
        else:
            path = workdir / f"{n:04d}.wav"
            path.write_bytes(wav)
            utterances.append(Utterance(segment, text, path, seconds, voice.name, timing.phonemes_in(wav) or ()))
        if progress:
            progress("voice", n + 1, len(lines))
    if not utterances:
        raise TransientError(
            f"the VOICEVOX engine spoke none of the script's {len(lines)} sentences "
            f"({len(unspoken)} with nothing to say, {len(lines) - len(unspoken)} refused)"
        )
    if unspoken and warn:
        warn(unspoken_warning(unspoken))
    return Narration(tuple(utterances), SAMPLE_RATE, credits, engine, tuple(unspoken))


def _credit(
    speakers: list[dict[str, Any]],
    policy: Callable[[str], str | None],
    member: CastMember,
    number: int,
    in_cast: bool,
) -> Credit:
    """The member's voice as the engine describes it, and its credit."""
    field = f"spec.cast[{number}].styleId" if in_cast else "spec.voice.styleId"
    speaker, style = find_style(speakers, member.style_id, field)
    terms = policy(str(speaker["speaker_uuid"])) if speaker.get("speaker_uuid") else None
    return credit_for(speaker, style, terms, member.credit, member.name)


def _policy(client: VoicevoxClient, uuid: str) -> str | None:
    """A character's terms of use, as the engine's /speaker_info gives them."""
    info = _config_call(lambda: client.speaker_info(uuid))
    return str(info["policy"]) if isinstance(info.get("policy"), str) else None


def unspoken_warning(unspoken: Sequence[str]) -> str:
    """One line for the run's warnings: how many sentences had nothing to say, and the first few of them."""
    shown = ", ".join(repr(text if len(text) <= 40 else text[:40] + "…") for text in unspoken[:_UNSPOKEN_LISTED])
    more = f" and {len(unspoken) - _UNSPOKEN_LISTED} more" if len(unspoken) > _UNSPOKEN_LISTED else ""
    noun = "sentence" if len(unspoken) == 1 else "sentences"
    return (
        f"{len(unspoken)} {noun} with nothing the voice engine could speak (symbols only, or a script it cannot "
        f"read) left out of the narration and subtitles: {shown}{more}"
    )


def wait_for_engine(
    client: VoicevoxClient,
    address: EngineAddress,
    timeout: float,
    on_wait: Callable[[EngineWait], None] | None = None,
) -> str:
    """Wait for the engine, telling `on_wait` how it goes; when it does not come, say which setting to change."""

    def tell(state: Literal["start", "waiting", "ready"], waited: float, **facts: str) -> None:
        if on_wait:
            on_wait(EngineWait(state, address, timeout, waited, **facts))

    tell("start", 0.0)
    started = client.clock()
    try:
        version = client.wait_ready(timeout, lambda waited, reason: tell("waiting", waited, reason=reason))
    except EngineNotReady as exc:
        raise TransientError(f"{exc}; {address.hint}") from None
    tell("ready", client.clock() - started, version=version)
    return version


def _timed(wav: bytes) -> bool:
    """Whether a kept WAV carries its sounds' timing (or is the silence kept for a sentence with nothing to say)."""
    return wav == SILENT_WAV or timing.phonemes_in(wav) is not None


def _speak(client: VoicevoxClient, text: str, spec: CastMember) -> bytes | None:
    """The sentence's WAV carrying its sounds' timing (job/voice/timing.py), or None when the engine finds nothing to
    say in it (a query without moras)."""
    query = client.audio_query(text, spec.style_id)
    if not any(isinstance(p, dict) and p.get("moras") for p in query["accent_phrases"]):
        return None
    query.update(
        speedScale=spec.speed_scale,
        pitchScale=spec.pitch_scale,
        intonationScale=spec.intonation_scale,
        volumeScale=spec.volume_scale,
        outputSamplingRate=SAMPLE_RATE,
        outputStereo=False,
    )
    return timing.with_phonemes(client.synthesis(query, spec.style_id), timing.phonemes(query))


def _wav_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getframerate() != SAMPLE_RATE or wav.getnchannels() != 1:
                raise TransientError(
                    f"VOICEVOX engine returned {wav.getframerate()} Hz x{wav.getnchannels()} audio; "
                    f"asked for {SAMPLE_RATE} Hz mono"
                )
            return float(wav.getnframes()) / float(wav.getframerate())
    except (wave.Error, EOFError) as exc:
        raise TransientError(f"VOICEVOX engine returned an unreadable WAV: {exc}") from None


def _config_call(call: Callable[[], T]) -> T:
    """Engine calls made before any sentence: a 4xx here means our configuration is wrong."""
    try:
        return call()
    except EngineError as exc:
        if exc.transient:
            raise TransientError(str(exc)) from None
        raise ConfigError(str(exc)) from None
