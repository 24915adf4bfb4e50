"""The typed hand-offs between the job's stages. Stages import these and the spec, never each other.

news ──Story[]──► script ──Script──► voice ──Narration──► render ──Rendering──► store ──Publication
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol


class JobError(Exception):
    """Base of the errors a stage raises on purpose; the message is for the user, never a traceback."""


class ConfigError(JobError):
    """Bad configuration: retrying cannot help (exit code 2)."""


class TransientError(JobError):
    """Worth retrying later: a server down, a timeout (exit code 75)."""


@dataclass(frozen=True)
class Story:
    """One news item, cleaned: plain text, no HTML."""

    title: str
    link: str
    source: str
    summary: str
    published: datetime | None = None
    guid: str = ""
    image: str = ""
    """The story's own picture, as its feed names it: an absolute http(s) URL, or "" when the feed names none
    (the image stage may still find one on the article's page)."""


@dataclass(frozen=True)
class FeedReport:
    """What reading one feed gave: its stories, or why it gave none."""

    url: str
    stories: tuple[Story, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Segment:
    """A stretch of the broadcast that shares one slide: the intro, one story, or the sign-off."""

    kind: Literal["intro", "story", "outro"]
    sentences: tuple[str, ...]
    story: Story | None = None
    speakers: tuple[str, ...] = ()
    """Who says each sentence (a cast member's name), one per sentence; empty: the lead anchor says them all."""


@dataclass(frozen=True)
class Script:
    """What the anchor says, in order."""

    language: Literal["ja", "en"]
    title: str
    anchor_name: str
    aired_at: datetime
    """When the broadcast is dated (timezone-aware, in the broadcast's time zone)."""
    segments: tuple[Segment, ...]
    cast: tuple[str, ...] = ()
    """The presenters' names, the lead (anchor_name) first; empty: the lead alone."""
    format: Literal["monologue", "dialogue"] = "monologue"

    @property
    def stories(self) -> tuple[Story, ...]:
        return tuple(s.story for s in self.segments if s.story is not None)

    @property
    def presenters(self) -> tuple[str, ...]:
        return self.cast or (self.anchor_name,)

    def speaker(self, segment: int, sentence: int) -> str:
        """Who says sentence `sentence` of segment `segment`."""
        speakers = self.segments[segment].speakers
        return speakers[sentence] if sentence < len(speakers) else self.anchor_name


@dataclass(frozen=True)
class Credit:
    """A voice's credit, as VOICEVOX's terms require it (e.g. "VOICEVOX:ずんだもん")."""

    text: str
    speaker: str
    """The VOICEVOX character."""
    style: str
    style_id: int
    policy: str | None = None
    member: str = ""
    """The cast member who speaks with this voice."""


@dataclass(frozen=True)
class EngineInfo:
    url: str
    version: str
    device: Literal["cuda", "dml", "cpu", "unknown"]
    supported_devices: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Phoneme:
    """One sound of a spoken sentence, as VOICEVOX names it (a consonant such as k or sh; a vowel a i u e o, unvoiced
    A I U E O; N, cl; pau for a pause, sil for the silence around the sentence) and when it is heard: seconds from
    the start of the sentence's WAV."""

    phoneme: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """One synthesised sentence: its WAV on disk and its real length."""

    segment: int
    """Index into Script.segments."""
    text: str
    wav: Path
    seconds: float
    speaker: str = ""
    """The cast member who says it."""
    phonemes: tuple[Phoneme, ...] = ()
    """Its sounds as the engine timed them (job/voice/timing.py); () when the engine's query could not be read."""


@dataclass(frozen=True)
class Narration:
    utterances: tuple[Utterance, ...]
    """The sentences spoken, in order; each has sound, so each becomes a subtitle cue of real length."""
    sample_rate: int
    credits: tuple[Credit, ...]
    """Each cast member's voice, in the cast's order (the lead first)."""
    engine: EngineInfo
    unspoken: tuple[str, ...] = ()
    """Sentences the engine had nothing to say for (symbols only, or a script it cannot read): left out of the
    narration, so they get no zero-length or silent subtitle cue."""

    @property
    def credit(self) -> Credit:
        """The lead anchor's voice."""
        return self.credits[0]

    @property
    def credit_lines(self) -> tuple[str, ...]:
        """Every voice's credit line, each once (two members may share a character)."""
        return tuple(dict.fromkeys(credit.text for credit in self.credits))

    @property
    def credit_line(self) -> str:
        """Every voice's credit in one line, as slides and MP4 tags carry it."""
        return " / ".join(self.credit_lines)


@dataclass(frozen=True)
class Cue:
    """A subtitle: seconds from the start of the video."""

    start: float
    end: float
    text: str
    speaker: str = ""
    """Who says it, in a dialogue; empty in a monologue, where the subtitles name nobody."""


@dataclass(frozen=True)
class Rendering:
    """The files a render produced, in a scratch directory, and their timing."""

    video: Path
    thumbnail: Path
    srt: Path
    vtt: Path
    duration: float
    cues: tuple[Cue, ...]
    warnings: tuple[str, ...] = ()
    encoder: str = "libx264"
    """The H.264 encoder that made the video."""
    loudness: dict[str, object] = field(default_factory=dict)
    """The sound's loudness as the manifest records it (job/video/mix.py's report, measured on the video)."""
    music_credit: str = ""
    """The music bed's credit, when the video has one."""


@dataclass(frozen=True)
class PublishedObject:
    name: str
    """Name within the run (e.g. "video.mp4")."""
    location: str
    """Full local path or object key."""
    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True)
class Publication:
    location: str
    """The run's directory or s3://bucket/prefix/."""
    video: str
    video_url: str
    manifest: str
    objects: tuple[PublishedObject, ...]


@dataclass(frozen=True)
class Artifact:
    """A file a run publishes: its name within the run, where it lies in scratch space, its content type."""

    name: str
    path: Path
    content_type: str


@dataclass(frozen=True)
class PictureRoom:
    """The room a story's picture takes on its slide, which the video stage decides (job/video/story_picture.py)
    and the news stage prepares the picture for (job/news/pictures.py): at most `size` pixels, transparency
    flattened onto `matte` (the card's colour), a small picture enlarged at most `max_scale` times."""

    size: tuple[int, int]
    matte: tuple[int, int, int]
    max_scale: float


class SentenceCache(Protocol):
    """Spoken sentences kept between runs, by a key of what decides their sound (job/voice/narrator.py's
    `cache_key`): the voice stage reads and fills it, the broadcast's memory keeps it (job/memory/audio_cache.py)."""

    def get(self, key: str, usable: Callable[[bytes], bool] | None = None) -> bytes | None:
        """The kept WAV, or None when there is none or `usable` refuses it (then it counts as a miss)."""
        ...

    def put(self, key: str, wav: bytes) -> None: ...
