"""NewsBroadcast, API group anchor.news, version v1alpha1: the one definition of a broadcast.

These models are the single source of truth for the spec: the job validates the YAML a user applies with them,
the controller builds its CronJob from them, and the CRD's OpenAPI schema is generated from them. Every field's
docstring becomes its description (what `kubectl explain` prints), so write them for users.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "anchor.news"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "NewsBroadcast"

DEFAULT_ENGINE_URL = "http://127.0.0.1:50021"

_HEX_COLOUR = r"^#[0-9a-fA-F]{6}$"
# A DNS-1123 label: what a CronJob's name (the broadcast's name plus a suffix) must be built from.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class _Spec(BaseModel):
    """Base for every spec model: camelCase on the wire, unknown fields rejected, docstrings as descriptions."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        use_attribute_docstrings=True,
        str_strip_whitespace=True,
    )


class SecretKeyRef(_Spec):
    """A key of a Kubernetes Secret in the broadcast's namespace. Secrets are only ever referenced, never inlined."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the Secret."""
    key: Annotated[str, Field(min_length=1, max_length=253)]
    """Key within the Secret whose value is used."""


class Feed(_Spec):
    """One RSS or Atom feed."""

    url: Annotated[str, Field(min_length=1, max_length=2048)]
    """Feed address: an http:// or https:// URL. Outside a cluster a file:// URL or a path relative to the
    broadcast's YAML file also works (the bundled sample uses one)."""
    name: Annotated[str | None, Field(max_length=100)] = None
    """Source name shown on the slides; defaults to the feed's own title."""
    max_items: Annotated[int | None, Field(ge=1, le=100)] = None
    """Most stories taken from this feed; defaults to sources.maxItemsPerFeed."""

    @field_validator("url")
    @classmethod
    def _scheme_allowed(cls, url: str) -> str:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme in ("http", "https", "file") or "://" not in url:
            return url
        raise ValueError(f"unsupported URL scheme {scheme!r}; allowed: http, https, file (or a relative path)")


class Sources(_Spec):
    """Where the news comes from and how much of it is taken."""

    feeds: Annotated[list[Feed], Field(min_length=1, max_length=20)]
    """The feeds to read, at least one. A feed that fails is skipped with a warning; the broadcast fails only
    when no feed yields a story."""
    max_items_per_feed: Annotated[int, Field(ge=1, le=100)] = 10
    """Most stories taken from each feed, unless the feed sets its own maxItems."""
    max_age_hours: Annotated[int, Field(ge=0, le=24 * 365)] = 48
    """Stories published longer ago than this are skipped; 0 keeps stories of any age. Stories without a date
    are kept."""
    allow_private_addresses: bool = False
    """Allow feeds on loopback, private (RFC 1918, ULA), link-local and cloud metadata addresses. Off by
    default so that a broadcast cannot be used to reach cluster-internal services."""
    allowed_addresses: Annotated[list[str], Field(max_length=20)] = []
    """Networks (CIDR, e.g. 10.1.2.0/24) that feeds may use even when allowPrivateAddresses is off: an
    in-cluster feed service, say."""
    remember_aired_hours: Annotated[int, Field(ge=0, le=24 * 365)] = 168
    """Only new stories: a story an earlier run of this broadcast aired within this many hours is skipped (the
    memory is kept beside the published runs). When every story was aired, the run ends as NothingNew, without a
    video. 0 airs stories again."""

    @field_validator("allowed_addresses")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network in CIDR form such as 10.1.2.0/24") from None
        return networks


class Llm(_Spec):
    """An OpenAI-compatible chat-completions endpoint that writes the anchor's script."""

    endpoint: Annotated[str, Field(pattern=r"^https?://", max_length=2048)]
    """Base URL of the API, e.g. https://api.openai.com/v1 or http://vllm.llm:8000/v1."""
    model: Annotated[str, Field(min_length=1, max_length=200)]
    """Model name passed to the API."""
    api_key_secret: SecretKeyRef | None = None
    """Secret key holding the API key. The job reads it from the ANCHOR_LLM_API_KEY environment variable."""
    timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 60
    """How long one request may take before the built-in templates are used instead."""


class Script(_Spec):
    """What the anchor says."""

    language: Literal["ja", "en"] = "ja"
    """Language of the built-in templates and of the subtitles."""
    anchor_name: Annotated[str, Field(min_length=1, max_length=40)] = "アンカー"
    """The name the anchor introduces themself with (without spec.cast; with one, the members' names are used)."""
    format: Literal["monologue", "dialogue"] = "monologue"
    """monologue: the first cast member (or the one anchor of spec.voice) presents every story. dialogue: the
    cast take turns as TV news does, each presenting a story and handing over to the next by name; needs at least
    two members in spec.cast."""
    title: Annotated[str | None, Field(max_length=80)] = None
    """Programme title shown on the intro card; defaults to the broadcast's name."""
    stories: Annotated[int, Field(ge=1, le=20)] = 5
    """How many stories the broadcast covers (newest first across all feeds)."""
    max_sentence_chars: Annotated[int, Field(ge=20, le=400)] = 90
    """Longest sentence sent to the voice engine; longer ones are split at a natural boundary."""
    llm: Llm | None = None
    """Optional LLM that writes the script. Without it, built-in templates are used."""


class _Sound(_Spec):
    """The voice parameters a VOICEVOX voice is spoken with: spec.voice's and each cast member's."""

    style_id: Annotated[int, Field(ge=0, le=2**31 - 1)] = 3
    """VOICEVOX style id (a character's speaking style; 3 is ずんだもん's normal style). The job fails at start,
    listing the engine's styles, when the id is unknown."""
    speed_scale: Annotated[float, Field(ge=0.5, le=2.0)] = 1.0
    """Speaking speed (AudioQuery speedScale)."""
    pitch_scale: Annotated[float, Field(ge=-0.15, le=0.15)] = 0.0
    """Pitch shift (AudioQuery pitchScale)."""
    intonation_scale: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    """Intonation strength (AudioQuery intonationScale)."""
    volume_scale: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    """Volume (AudioQuery volumeScale)."""
    credit: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    """Credit line for the voice. VOICEVOX's terms require each voice to be credited, so it can be reworded
    (e.g. to the form a character's terms ask for) but never removed; defaults to "VOICEVOX:<character>"."""


class Voice(_Sound):
    """The VOICEVOX voice and how it speaks. With spec.cast, only engineUrl is given here."""

    engine_url: Annotated[str | None, Field(pattern=r"^https?://", max_length=2048)] = None
    """VOICEVOX engine base URL. Defaults to the ANCHOR_VOICEVOX_URL environment variable, else
    http://127.0.0.1:50021 (the sidecar in a broadcast's pod)."""


class MediaSource(_Spec):
    """Where a file comes from: exactly one of file, url and object."""

    file: Annotated[str | None, Field(min_length=1, max_length=2048)] = None
    """A path in the job's filesystem (relative to the YAML file outside a cluster; in a cluster, a volume the
    pod mounts)."""
    url: Annotated[str | None, Field(pattern=r"^https?://", max_length=2048)] = None
    """An http(s) URL, fetched with size and time limits from public addresses and the networks in
    spec.sources.allowedAddresses only."""
    object: Annotated[str | None, Field(min_length=1, max_length=1024, pattern=r"^[^/].*$")] = None
    """An object key in spec.output.s3's bucket (read with the output's credentials; needs spec.output.s3)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> MediaSource:
        given = [name for name in ("file", "url", "object") if getattr(self, name) is not None]
        if len(given) != 1:
            said = (
                f"{' and '.join(given)} are {'both' if len(given) == 2 else 'all'} given" if given else "none is given"
            )
            raise ValueError(f"give exactly one of file, url and object ({said})")
        return self

    @property
    def where(self) -> str:
        """The source as a user wrote it, for messages."""
        return self.file or self.url or f"object {self.object}"


class PortraitLayers(_Spec):
    """Which layers of a PSD portrait are the mouth and eye states, as paths of layer names from the top
    ("口/あ", "目/閉じ"); a state left out is found by the PSDToolKit naming convention."""

    mouth_a: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The mouth open on a (あ)."""
    mouth_i: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The mouth on i (い)."""
    mouth_u: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The mouth on u (う)."""
    mouth_e: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The mouth on e (え)."""
    mouth_o: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The mouth on o (お)."""
    mouth_closed: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The closed mouth (ん, pauses and silence)."""
    eyes_open: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The open eyes."""
    eyes_closed: Annotated[str | None, Field(min_length=1, max_length=300)] = None
    """The closed eyes (a blink)."""


class Portrait(MediaSource):
    """A member's picture on screen, animated: a folder of PNGs with alpha (base.png, mouth-a.png … mouth-o.png,
    mouth-closed.png, eyes-open.png, eyes-closed.png; a missing mouth falls back to the nearest shape; from a file
    path only), or a layered PSD (PSDToolKit's layer naming, or spec.cast[].portrait.layers; a file, url or object).
    A portrait that cannot be read is a warning, and the member appears as a built-in character."""

    layers: PortraitLayers | None = None
    """For a PSD whose layers are not named by the PSDToolKit convention: which layer is which state."""


class CastMember(_Sound):
    """One of the broadcast's presenters: a name, a VOICEVOX voice, and a picture on screen."""

    name: Annotated[str, Field(min_length=1, max_length=40)]
    """The name the member goes by on air: they introduce themself with it, the others hand over to them by it,
    and subtitles mark their lines with it."""
    portrait: Portrait | None = None
    """The member's picture, whose mouth moves with the voice and whose eyes blink. Without it the member is drawn
    with one of anchor's own built-in characters."""
    position: Literal["left", "right"] | None = None
    """Which side of the frame the member stands on. By default a lone anchor stands on the right; a cast of two or
    more alternates left, right, left in cast order."""

    @classmethod
    def speaking_as(cls, voice: Voice, name: str) -> CastMember:
        """spec.voice's voice as a member named `name`: the one anchor of a spec without a cast."""
        return cls.model_validate({"name": name, **voice.model_dump(by_alias=True, exclude={"engine_url"})})


Resolution = Literal["1920x1080", "1280x720", "1080x1920"]


class Theme(_Spec):
    """Colours of the slides, as #RRGGBB."""

    background: Annotated[str, Field(pattern=_HEX_COLOUR)] = "#0b1d3a"
    """Slide background."""
    accent: Annotated[str, Field(pattern=_HEX_COLOUR)] = "#e5484d"
    """Lower third, headline rule and intro card accent."""
    text: Annotated[str, Field(pattern=_HEX_COLOUR)] = "#ffffff"
    """Headline and body text."""
    subtitle_background: Annotated[str, Field(pattern=_HEX_COLOUR)] = "#000000"
    """Box behind subtitles (drawn semi-transparent)."""


class Video(_Spec):
    """How the broadcast looks."""

    resolution: Resolution = "1920x1080"
    """Frame size: 1920x1080 and 1280x720 (landscape) or 1080x1920 (vertical, for short-video platforms)."""
    fps: Annotated[int, Field(ge=1, le=60)] = 30
    """Frames per second of the MP4."""
    theme: Theme = Theme()
    """Slide colours."""
    anchor_image: Annotated[str | None, Field(max_length=2048)] = None
    """PNG or JPEG of the anchor shown on each story slide (a path in the job's filesystem, relative to the
    YAML file outside a cluster)."""
    background_image: Annotated[str | None, Field(max_length=2048)] = None
    """PNG or JPEG drawn behind every slide, scaled to cover the frame."""
    encoder: Literal["auto", "libx264", "h264_nvenc"] = "auto"
    """H.264 encoder: auto takes NVIDIA's NVENC when the job's container sees a GPU (on one PC it can; in a
    cluster the GPU belongs to the engine's container) and libx264 otherwise; a failed NVENC falls back to
    libx264 with a warning. The encoder used is in the manifest."""
    subtitles: bool = True
    """Burn subtitles into the picture. SRT and WebVTT files are written either way."""
    font: Annotated[str | None, Field(max_length=2048)] = None
    """Font file (TTF/OTF/TTC) for all text. Defaults to the ANCHOR_FONT environment variable, else a
    Japanese-capable font found on the system (Noto Sans CJK, IPAexGothic)."""
    show_cast: bool = True
    """Show the cast on screen (spec.cast, or the one anchor): each member's portrait, its mouth moving with the
    voice and its eyes blinking. anchorImage, when given, is shown still in its place."""
    story_images: bool = True
    """Show each story's own picture on its slide, credited to its source: the feed's media:content,
    media:thumbnail or image enclosure, else the article's og:image. Pictures are fetched with size and time
    limits from public addresses and the networks in sources.allowedAddresses only (the feeds' content names them,
    so sources.allowPrivateAddresses does not apply to them); a story whose picture cannot be had is shown without
    one."""

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.resolution.split("x")
        return int(width), int(height)


class Music(MediaSource):
    """A music bed under the voices: MP3, AAC/M4A, Ogg, FLAC or WAV, looped or trimmed to the broadcast, faded in
    and out, and dipped while anyone speaks."""

    credit: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    """Credit line for the music (e.g. "Title by Artist (CC BY 4.0)"), on the sign-off card and wherever the
    voices' credits are published (MP4 tags, credits.txt, the manifest, the page, the podcast)."""
    level_db: Annotated[float, Field(ge=-40.0, le=0.0)] = -14.0
    """The bed's loudness between stories, in dB relative to the voices'."""
    duck_db: Annotated[float, Field(ge=6.0, le=40.0)] = 15.0
    """How far the bed dips under speech, in dB."""
    fade_seconds: Annotated[float, Field(ge=0.0, le=10.0)] = 2.0
    """Fade-in at the start and fade-out at the end."""


class Loudness(_Spec):
    """The loudness the final mix (video and podcast) is normalised to, measured as EBU R128 / ITU-R BS.1770."""

    integrated_lufs: Annotated[float, Field(ge=-36.0, le=-5.0)] = -16.0
    """Integrated loudness target: -16 is the podcast norm; -14 streaming platforms, -23 EBU broadcast."""
    true_peak_dbtp: Annotated[float, Field(ge=-9.0, le=0.0)] = -1.5
    """True-peak ceiling, in dBTP."""


class Audio(_Spec):
    """The sound under and around the voices."""

    music: Music | None = None
    """Optional music bed."""
    loudness: Loudness = Loudness()
    """Loudness normalisation of the final mix."""


class S3Credentials(_Spec):
    """The Secret that holds the bucket's credentials. The controller passes its keys to the job as the
    environment variables ANCHOR_S3_ACCESS_KEY_ID and ANCHOR_S3_SECRET_ACCESS_KEY; outside a cluster, set
    those yourself. Credentials never appear in the spec."""

    secret_name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the Secret in the broadcast's namespace."""
    access_key_id_key: Annotated[str, Field(min_length=1, max_length=253)] = "accessKeyId"
    """Key of the Secret that holds the access key id."""
    secret_access_key_key: Annotated[str, Field(min_length=1, max_length=253)] = "secretAccessKey"  # noqa: S105
    """Key of the Secret that holds the secret access key."""


class S3Output(_Spec):
    """An S3-compatible bucket (MinIO, AWS S3, ...)."""

    endpoint: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-\[\]:]+$")]
    """Host and optional port of the S3 API, without a scheme, e.g. minio.minio.svc:9000 or s3.amazonaws.com."""
    bucket: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")]
    """Bucket to publish into; it must exist."""
    prefix: Annotated[str, Field(max_length=512, pattern=r"^[A-Za-z0-9!_.*'()/\-]*$")] = "broadcasts"
    """Key prefix; objects land under <prefix>/<broadcast>/<run-id>/."""
    secure: bool = True
    """Use TLS."""
    region: Annotated[str | None, Field(max_length=64)] = None
    """Bucket region, when the server needs one."""
    credentials: S3Credentials | None = None
    """Secret with the bucket's credentials (used by the controller; the job reads the environment)."""
    presign_expiry_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 7 * 24 * 3600
    """Lifetime of the presigned video URL in the run's result (S3 allows at most 7 days)."""


class AudioCache(_Spec):
    """Each spoken sentence's audio, kept beside the published runs (<output>/.anchor/audio/) and keyed by the
    engine version, the voice and the text, so a retried or later run speaks unchanged sentences without the
    engine."""

    enabled: bool = True
    """Use and fill the cache; false speaks every sentence anew and keeps nothing."""
    max_size_mib: Annotated[int, Field(ge=1, le=1024 * 1024)] = 1024
    """The cache's size cap; the oldest entries go first."""
    max_age_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Entries older than this are removed."""


class Listing(_Spec):
    """The broadcast's own page and feeds, rewritten beside its runs (<output>/<broadcast>/) after each published
    run: index.html (every listed run with its player, subtitles, stories and credits), podcast.xml (an RSS
    podcast of the narration as AAC audio) and videos.xml (the same feed with the MP4s)."""

    enabled: bool = True
    """Write the page and the feeds; a failure there is a warning and never fails the run."""
    runs: Annotated[int, Field(ge=1, le=500)] = 30
    """How many of the newest runs are listed; older runs stay published but drop out of the page and feeds."""
    description: Annotated[str | None, Field(min_length=1, max_length=4000)] = None
    """What the page and the feeds say the broadcast is; defaults to a line naming its sources."""
    author: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    """The feeds' author (itunes:author); defaults to script.anchorName."""


class Output(_Spec):
    """Where a finished broadcast is published: a local directory, or a bucket when s3 is set."""

    directory: Annotated[str, Field(min_length=1, max_length=2048)] = "out"
    """Local directory; runs land in <directory>/<broadcast>/<run-id>/. Used when s3 is not set, and as scratch
    space otherwise. Relative paths are relative to the working directory."""
    s3: S3Output | None = None
    """Publish to an S3-compatible bucket instead of the local directory."""
    audio_cache: AudioCache = AudioCache()
    """The audio cache (on by default)."""
    listing: Listing = Listing()
    """The broadcast's page and podcast/video feeds (on by default)."""
    public_base_url: Annotated[str | None, Field(pattern=r"^https?://[^\s?#]+$", max_length=2048)] = None
    """Where the output is readable without credentials: the URL of the bucket prefix (or of the output
    directory), e.g. a public-read prefix, a CDN or a gateway, such that <publicBaseUrl>/<broadcast>/index.html is
    the broadcast's page. The page and feeds link there, so their links never expire. Without it, S3 links are
    presigned for s3.presignExpirySeconds and the page says when they expire."""


class Gpu(_Spec):
    """The GPU the VOICEVOX engine runs on, requested through a Kubernetes device plugin."""

    count: Annotated[int, Field(ge=0, le=8)] = 1
    """GPUs requested for the engine container; 0 runs the engine's CPU image."""
    resource_name: Annotated[str, Field(pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-_]+$", max_length=253)] = "nvidia.com/gpu"
    """Extended resource name of the device plugin."""


class Toleration(_Spec):
    """A Kubernetes toleration for the broadcast's pods (the nvidia.com/gpu taint is tolerated already)."""

    key: Annotated[str | None, Field(max_length=316)] = None
    """Taint key; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists or Equal."""
    value: Annotated[str | None, Field(max_length=63)] = None
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; empty tolerates all effects."""
    toleration_seconds: Annotated[int | None, Field(ge=0)] = None
    """How long a NoExecute taint is tolerated."""


class Scheduling(_Spec):
    """Where and how the broadcast's pods run."""

    node_selector: Annotated[dict[str, str], Field(max_length=20)] = {}
    """Node labels the pod requires, e.g. nvidia.com/gpu.product: NVIDIA-L4."""
    tolerations: Annotated[list[Toleration], Field(max_length=20)] = []
    """Extra tolerations."""
    affinity: dict[str, Any] | None = None
    """A Kubernetes affinity object, passed through as is."""
    runtime_class_name: Annotated[str | None, Field(max_length=253)] = None
    """RuntimeClass for the pod (e.g. nvidia, where the GPU runtime is not the default)."""
    priority_class_name: Annotated[str | None, Field(max_length=253)] = None
    """PriorityClass for the pod."""
    queue_name: Annotated[str | None, Field(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] = None
    """Kueue LocalQueue in the broadcast's namespace that its runs wait in for their GPU (the
    kueue.x-k8s.io/queue-name label on each run's Job); defaults to the chart's job.queueName. Without Kueue
    installed the label changes nothing."""
    workload_priority_class_name: Annotated[
        str | None, Field(max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    ] = None
    """Kueue WorkloadPriorityClass of the runs (the kueue.x-k8s.io/priority-class label): the order of the queue
    and which broadcast may preempt another; the pod's own priorityClassName is apart."""


class RunPolicy(_Spec):
    """How runs are started, retried and kept."""

    concurrency_policy: Literal["Forbid", "Allow", "Replace"] = "Forbid"
    """What to do when a run is due while the previous one is still going (CronJob concurrencyPolicy)."""
    starting_deadline_seconds: Annotated[int | None, Field(ge=10, le=86400)] = 600
    """A run that could not start within this many seconds of its time is skipped."""
    successful_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Finished successful Jobs kept."""
    failed_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Finished failed Jobs kept."""
    backoff_limit: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries of a run after a transient failure. Bad configuration fails at once; node disruptions (drain,
    spot preemption) are retried without counting."""
    active_deadline_seconds: Annotated[int, Field(ge=60, le=86400)] = 3600
    """Longest a run may take, retries included."""
    ttl_seconds_after_finished: Annotated[int | None, Field(ge=0, le=30 * 86400)] = 86400
    """Finished Jobs are deleted this long after they end (their result stays in the status)."""


class Notify(_Spec):
    """A webhook told about each run (Slack-compatible JSON)."""

    webhook_secret: SecretKeyRef
    """Secret key holding the webhook URL (a URL often carries a token, so it is never in the spec)."""
    on_success: bool = True
    """Post when a run succeeds."""
    on_failure: bool = True
    """Post when a run fails."""


class NewsBroadcastSpec(_Spec):
    """A recurring (or one-off) narrated news video."""

    sources: Sources
    """News feeds."""
    script: Script = Script()
    """The anchor's script."""
    voice: Voice = Voice()
    """The VOICEVOX voice of the one anchor (a cast of one, named spec.script.anchorName). With spec.cast, only
    engineUrl."""
    cast: Annotated[list[CastMember] | None, Field(min_length=1, max_length=3)] = None
    """The presenters, 1 to 3, each with their own name and voice; the first leads (greets and signs off).
    Instead of spec.voice's voice and spec.script.anchorName."""
    video: Video = Video()
    """Picture and subtitles."""
    audio: Audio = Audio()
    """Music bed and loudness."""
    output: Output = Output()
    """Where runs are published."""
    schedule: Annotated[str | None, Field(max_length=100)] = None
    """Cron schedule (5 fields, or @hourly/@daily/...) of the CronJob. Without one, the broadcast runs once."""
    time_zone: Annotated[str, Field(max_length=64)] = "UTC"
    """IANA time zone of the schedule and of the date and time the anchor announces, e.g. Asia/Tokyo."""
    suspend: bool = False
    """Suspend the schedule; runs already started carry on."""
    gpu: Gpu = Gpu()
    """GPU for the VOICEVOX engine."""
    run: RunPolicy = RunPolicy()
    """Retries, deadlines and history of runs."""
    scheduling: Scheduling = Scheduling()
    """Node placement of the broadcast's pods."""
    notify: Notify | None = None
    """Optional webhook on run success/failure."""

    @model_validator(mode="after")
    def _one_cast(self) -> NewsBroadcastSpec:
        if self.cast is not None:
            sound = sorted(self.voice.model_fields_set - {"engine_url"})
            if sound:
                named = ", ".join(f"spec.voice.{to_camel(field)}" for field in sound)
                raise ValueError(
                    f"spec.voice and spec.cast both give the voice ({named}): with spec.cast, give each member's "
                    "styleId and voice settings in spec.cast and leave spec.voice to engineUrl"
                )
            if "anchor_name" in self.script.model_fields_set:
                raise ValueError(
                    "spec.script.anchorName and spec.cast both name the anchor: with spec.cast, the names are "
                    "spec.cast[].name"
                )
            names = [member.name for member in self.cast]
            if twice := sorted({name for name in names if names.count(name) > 1}):
                raise ValueError(
                    f"spec.cast names {', '.join(map(repr, twice))} more than once; each member's name is their own"
                )
        if self.script.format == "dialogue" and len(self.members) < 2:
            raise ValueError(
                f"spec.script.format is dialogue, which needs at least two presenters in spec.cast; it has "
                f"{len(self.members)}: add a member to spec.cast or use format monologue"
            )
        return self

    @model_validator(mode="after")
    def _objects_need_a_bucket(self) -> NewsBroadcastSpec:
        if self.output.s3 is None:
            named = [
                f"spec.cast[{n}].portrait.object"
                for n, m in enumerate(self.cast or ())
                if m.portrait and m.portrait.object
            ]
            if self.audio.music is not None and self.audio.music.object is not None:
                named.append("spec.audio.music.object")
            if named:
                raise ValueError(
                    f"{', '.join(named)} names an object in spec.output.s3's bucket, but spec.output.s3 is not set: "
                    "give the file or url instead, or publish to S3"
                )
        return self

    @property
    def members(self) -> tuple[CastMember, ...]:
        """The cast: spec.cast, or the one anchor spec.voice and spec.script.anchorName describe."""
        if self.cast is not None:
            return tuple(self.cast)
        return (CastMember.speaking_as(self.voice, self.script.anchor_name),)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}; use an IANA name such as Asia/Tokyo or UTC") from None
        return zone

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str | None) -> str | None:
        if schedule is None:
            return None
        macros = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
        if schedule in macros or len(schedule.split()) == 5:
            if "TZ=" in schedule:
                raise ValueError("set the time zone with spec.timeZone, not TZ= in the schedule")
            return schedule
        raise ValueError(f"{schedule!r} is not a cron schedule: use 5 fields (e.g. '0 7 * * *') or @daily etc.")


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata a broadcast uses; the rest is accepted and ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=52)]
    namespace: str | None = None

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        # 52 = the CronJob name limit; the Jobs it creates add an 11-character suffix to stay within 63.
        if not _DNS_LABEL.match(name):
            raise ValueError(
                f"{name!r} is not a valid name: lower-case letters, digits and '-', starting and ending "
                "with a letter or digit"
            )
        return name


class NewsBroadcast(BaseModel):
    """The whole object a user applies: apiVersion, kind, metadata and spec."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=False, validate_by_alias=True
    )

    api_version: Literal["anchor.news/v1alpha1"]
    kind: Literal["NewsBroadcast"]
    metadata: ObjectMeta
    spec: NewsBroadcastSpec
    status: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _explain_wrong_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") not in (None, KIND):
            raise ValueError(f"kind is {data.get('kind')!r}; this file must hold a {KIND} ({API_VERSION})")
        return data

    @property
    def name(self) -> str:
        return self.metadata.name


def spec_json_schema() -> dict[str, Any]:
    """The spec's JSON schema as pydantic generates it (with $defs); the CRD generator flattens it."""
    return NewsBroadcastSpec.model_json_schema(by_alias=True, mode="validation")
