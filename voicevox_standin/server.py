"""The stand-in's HTTP server: the VOICEVOX engine's API for the endpoints anchor uses, on the standard library.

Shapes follow the engine's OpenAPI document (shared/reference/voicevox-openapi.json) and, where the document is
silent, what the engine (FastAPI) actually answers:

- bad or missing parameters and invalid bodies: 422 ``{"detail": [{"type", "loc", "msg", "input", ...}]}``;
- an unknown style id, on /audio_query, /synthesis, /initialize_speaker and /is_initialized_speaker alike: 422
  ``{"message": "指定されたスタイルが見つかりませんでした。"}`` and no other key (upstream: CoreAdapter
  ._assert_style_exists in voicevox_engine/core/core_adapter.py raises CoreStyleIdError, and
  voicevox_engine/app/global_exceptions.py answers it); it is checked after the parameters and body are valid, and
  also for text with nothing to say;
- an unknown path: 404 ``{"detail": "Not Found"}``; a known path with the wrong method: 405
  ``{"detail": "Method Not Allowed"}``;
- optional fields the engine leaves empty are ``null`` (its schema hides that with pydantic's SkipJsonSchema).

One synthesis (or analysis) runs at a time, as in the engine; requests are bounded (body size, text length,
length of audio) so a stray client cannot make it allocate without limit.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata, resources
from types import TracebackType
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field, ValidationError

from voicevox_standin import speech
from voicevox_standin.cache import SpeechCache

VERSION = "0.25.2+anchor-standin"
"""What /version answers: the engine API release it follows, marked as anchor's stand-in."""
SPEAKER_VERSION = "0.0.0-standin"
ENGINE_UUID = "5d3a8e4e-9b1c-4c1e-8f3f-2a6c0b7d9e11"
MAX_BODY_BYTES = 1024 * 1024
_DRAIN_LIMIT = 16 * 1024 * 1024
"""An oversize body up to this size is read and dropped so the connection stays usable; beyond it we hang up."""
LOOPBACK_NAMES = ("localhost",)


# -- the catalogue -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    id: int
    name: str
    half_tone: float
    """How far (in semitones) this style raises the OpenJTalk voice, so that characters and styles sound apart: the
    characters lie 3 to 6.5 semitones from each other, so that a dialogue on the stand-in is two voices to a
    listener."""


@dataclass(frozen=True)
class Character:
    name: str
    uuid: str
    styles: tuple[Style, ...]
    colour: tuple[int, int, int]
    """The colour of the placeholder portrait and icons."""


CATALOGUE = (
    Character(
        "四国めたん",
        "7ffcb7ce-00ec-4bdc-82cd-45a8889e43ff",
        (Style(2, "ノーマル", -1.5), Style(0, "あまあま", 0.0)),
        (214, 92, 156),
    ),
    Character(
        "ずんだもん",
        "388f246b-8c41-4ac1-8e2d-5d79f3ff56d9",
        (Style(3, "ノーマル", 5.0), Style(1, "あまあま", 6.5)),
        (120, 200, 80),
    ),
    Character("春日部つむぎ", "35b2c544-660e-401e-b503-0e14c635303a", (Style(8, "ノーマル", 2.0),), (240, 190, 60)),
)


def _policy(name: str) -> str:
    return (
        f"# {name}（anchor のスタンドイン）\n\n"
        f"この音声は anchor の CPU スタンドインが OpenJTalk（HTS voice「Mei」）で合成したもので、"
        f"{name}の声ではありません。\n\n"
        f"This voice is anchor's CPU stand-in (OpenJTalk with the HTS voice Mei), not {name}'s real voice.\n\n"
        f"本物の VOICEVOX エンジンで{name}の声を使うときは、クレジット「VOICEVOX:{name}」の表記が必要です。"
        f"公開する前に{name}の利用規約を読んでください。\n\n"
        f"Real VOICEVOX voices require the credit 「VOICEVOX:{name}」; read the character's terms before you "
        "publish.\n"
    )


def png(rgb: tuple[int, int, int], width: int, height: int) -> bytes:
    """A solid-colour PNG: the placeholder for portraits and icons (the stand-in has no character art)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


STYLE_NOT_FOUND = "指定されたスタイルが見つかりませんでした。"
"""The engine's words for an unknown style id, exactly: it names neither the id nor the styles there are."""


def _find_style(style_id: int) -> tuple[Character, Style]:
    for character in CATALOGUE:
        for style in character.styles:
            if style.id == style_id:
                return character, style
    raise StyleNotFound(STYLE_NOT_FOUND)


# -- requests, replies and errors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes
    content_type: str
    base_url: str
    """http://host:port as the client addressed us, for resource URLs."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        return cls(status, text.encode("utf-8"), "application/json", headers)


class Invalid(Exception):
    """Request validation failed; `errors` are FastAPI's error objects."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self.errors = errors


class StyleNotFound(Exception):
    """The style id is not in the catalogue (the engine's CoreStyleIdError)."""


class HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """pydantic's errors in FastAPI's shape: loc prefixed with query/body, no docs URL, null input when missing."""
    errors = []
    for error in exc.errors(include_url=False):
        shaped = {**error, "loc": [where, *error["loc"]]}
        if error["type"] == "missing":
            shaped["input"] = None
        errors.append(shaped)
    return errors


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], value: Any, where: str, errors: list[dict[str, Any]]) -> M | None:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors.extend(_errors(exc, where))
        return None


def _parse_query(model: type[M], request: Request) -> M:
    errors: list[dict[str, Any]] = []
    params = _validated(model, dict(request.query), "query", errors)
    if params is None:
        raise Invalid(errors)
    return params


def _json_body(request: Request, errors: list[dict[str, Any]]) -> Any:
    """The body as FastAPI reads it: JSON when declared as JSON (or undeclared), else the raw text."""
    if not request.body:
        errors.append({"type": "missing", "loc": ["body"], "msg": "Field required", "input": None})
        return None
    subtype = request.content_type.split(";")[0].strip().lower()
    if subtype and not (subtype == "application/json" or subtype.endswith("+json")):
        return request.body.decode("utf-8", errors="replace")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        position = getattr(exc, "pos", 0)
        reason = getattr(exc, "msg", str(exc))
        errors.append(
            {
                "type": "json_invalid",
                "loc": ["body", position],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": reason},
            }
        )
        return None


# -- query parameters per endpoint (names and defaults as in the OpenAPI document) --------------------------


class _CoreVersion(BaseModel):
    core_version: str | None = None


class _SpeakerInfoParams(_CoreVersion):
    speaker_uuid: str
    resource_format: Literal["base64", "url"] = "base64"


class _StyleParams(_CoreVersion):
    speaker: int


class _InitializeParams(_StyleParams):
    skip_reinit: bool = False


class _AudioQueryParams(_StyleParams):
    text: Annotated[str, Field(max_length=speech.MAX_TEXT_CHARS)]
    enable_katakana_english: bool = True


class _SynthesisParams(_StyleParams):
    enable_interrogative_upspeak: bool = True


# -- the engine --------------------------------------------------------------------------------------------


@dataclass
class _Engine:
    """What the endpoints share: one lock for OpenJTalk, the initialised styles, the image resources."""

    speech_lock: threading.Lock = field(default_factory=threading.Lock)
    state_lock: threading.Lock = field(default_factory=threading.Lock)
    initialized: set[int] = field(default_factory=set)
    resources: dict[str, bytes] = field(default_factory=dict)
    cache: SpeechCache | None = None
    """Speech answered before, from disk (voicevox_standin/cache.py); None: every request is spoken."""

    def spoken(self, request: Request, content_type: str, speak: Callable[[], bytes]) -> Reply:
        """The reply to a valid speech request: from the cache when it was answered before, else spoken (under the
        OpenJTalk lock) and kept."""
        if self.cache is None:
            with self.speech_lock:
                return Reply(200, speak(), content_type)
        key = SpeechCache.key(request.path, request.query, request.body)
        data = self.cache.get(key)
        if data is None:
            with self.speech_lock:
                data = speak()
            self.cache.put(key, data)
        return Reply(200, data, content_type)

    def resource(self, data: bytes, request: Request, resource_format: str) -> str:
        """A picture as the client asked for it: base64, or a URL under /_resources/ as the engine serves them."""
        if resource_format == "base64":
            return base64.b64encode(data).decode("ascii")
        digest = hashlib.sha256(data).hexdigest()
        with self.state_lock:
            self.resources[digest] = data
        return f"{request.base_url}/_resources/{digest}"


def _version(engine: _Engine, request: Request) -> Reply:
    return Reply.json(VERSION)


def _license_text(name: str) -> str:
    try:
        return (resources.files("pyopenjtalk") / "htsvoice" / name).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return "Creative Commons Attribution 3.0; see http://www.mmdagent.jp/"


def _installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _engine_manifest(engine: _Engine, request: Request) -> Reply:
    _parse_query(_CoreVersion, request)
    manifest = {
        "manifest_version": "0.13.1",
        "name": "anchor VOICEVOX stand-in (OpenJTalk)",
        "brand_name": "anchor stand-in",
        "uuid": ENGINE_UUID,
        "url": "https://github.com/tsukumijima/pyopenjtalk-plus",
        "icon": base64.b64encode(png((90, 90, 90), 32, 32)).decode("ascii"),
        "default_sampling_rate": speech.DEFAULT_SAMPLING_RATE,
        "frame_rate": speech.FRAME_RATE,
        "terms_of_service": (
            "anchor's CPU stand-in for the VOICEVOX engine. It speaks with OpenJTalk and the HTS voice Mei "
            "(Nagoya Institute of Technology, CC BY 3.0), not with VOICEVOX voices; the characters it lists only "
            "mirror the real engine's catalogue. Use the real VOICEVOX engine, and follow each character's terms, "
            "for anything you publish."
        ),
        "update_infos": [
            {
                "version": VERSION,
                "descriptions": ["anchor's stand-in: OpenJTalk speech behind the VOICEVOX API"],
                "contributors": [],
            }
        ],
        "dependency_licenses": [
            {
                "name": "pyopenjtalk-plus",
                "version": _installed("pyopenjtalk-plus"),
                "license": "MIT",
                "text": "MIT License; see https://github.com/tsukumijima/pyopenjtalk-plus",
            },
            {
                "name": "Open JTalk",
                "license": "Modified BSD",
                "text": "Modified BSD License; see https://open-jtalk.sourceforge.net/",
            },
            {"name": "HTS voice Mei", "license": "CC BY 3.0", "text": _license_text("LICENSE_mei_normal.htsvoice")},
        ],
        "supported_features": {
            "adjust_mora_pitch": False,
            "adjust_phoneme_length": False,
            "adjust_speed_scale": True,
            "adjust_pitch_scale": True,
            "adjust_intonation_scale": False,
            "adjust_volume_scale": True,
            "adjust_pause_length": True,
            "interrogative_upspeak": True,
            "synthesis_morphing": False,
            "sing": False,
            "manage_library": False,
            "return_resource_url": True,
            "apply_katakana_english": True,
        },
    }
    return Reply.json(manifest)


def _speakers(engine: _Engine, request: Request) -> Reply:
    _parse_query(_CoreVersion, request)
    return Reply.json(
        [
            {
                "name": c.name,
                "speaker_uuid": c.uuid,
                "styles": [{"name": s.name, "id": s.id, "type": "talk"} for s in c.styles],
                "version": SPEAKER_VERSION,
                "supported_features": {"permitted_synthesis_morphing": "NOTHING"},
            }
            for c in CATALOGUE
        ]
    )


def _speaker_info(engine: _Engine, request: Request) -> Reply:
    params = _parse_query(_SpeakerInfoParams, request)
    character = next((c for c in CATALOGUE if c.uuid == params.speaker_uuid), None)
    if character is None:
        raise HttpError(404, "該当するキャラクターが見つかりません")
    portrait = engine.resource(png(character.colour, 24, 32), request, params.resource_format)
    icon = engine.resource(png(character.colour, 16, 16), request, params.resource_format)
    return Reply.json(
        {
            "policy": _policy(character.name),
            "portrait": portrait,
            "style_infos": [
                {"id": s.id, "icon": icon, "portrait": portrait, "voice_samples": []} for s in character.styles
            ],
        }
    )


def _supported_devices(engine: _Engine, request: Request) -> Reply:
    _parse_query(_CoreVersion, request)
    return Reply.json({"cpu": True, "cuda": False, "dml": False})


def _initialize_speaker(engine: _Engine, request: Request) -> Reply:
    params = _parse_query(_InitializeParams, request)
    _find_style(params.speaker)
    with engine.state_lock:  # OpenJTalk has nothing to load per style; remember the call, as the engine does
        engine.initialized.add(params.speaker)
    return Reply(204)


def _is_initialized_speaker(engine: _Engine, request: Request) -> Reply:
    params = _parse_query(_StyleParams, request)
    _find_style(params.speaker)
    with engine.state_lock:
        return Reply.json(params.speaker in engine.initialized)


def _audio_query(engine: _Engine, request: Request) -> Reply:
    params = _parse_query(_AudioQueryParams, request)
    _, style = _find_style(params.speaker)

    def speak() -> bytes:
        query = speech.audio_query(params.text, half_tone=style.half_tone)
        return Reply.json(query.model_dump(mode="json")).body

    return engine.spoken(request, "application/json", speak)


def _synthesis(engine: _Engine, request: Request) -> Reply:
    errors: list[dict[str, Any]] = []
    params = _validated(_SynthesisParams, dict(request.query), "query", errors)
    body = _json_body(request, errors)
    query = _validated(speech.AudioQuery, body, "body", errors) if body is not None else None
    if params is None or query is None:
        raise Invalid(errors)
    _, style = _find_style(params.speaker)
    expected = speech.estimated_seconds(query)
    if expected > speech.MAX_AUDIO_SECONDS:
        message = (
            f"The query would make about {expected:.0f} s of audio; at most {speech.MAX_AUDIO_SECONDS:.0f} s at once"
        )
        raise Invalid([{"type": "too_long", "loc": ["body"], "msg": message, "input": None}])
    upspeak = params.enable_interrogative_upspeak
    return engine.spoken(
        request, "audio/wav", lambda: speech.synthesise(query, half_tone=style.half_tone, upspeak=upspeak)
    )


def _resource(engine: _Engine, request: Request) -> Reply:
    digest = request.path.rsplit("/", 1)[-1]
    with engine.state_lock:
        data = engine.resources.get(digest)
    if data is None:
        raise HttpError(404, "Not Found")
    return Reply(200, data, "image/png", (("Cache-Control", "max-age=2592000"),))


Handler = Callable[[_Engine, Request], Reply]
ROUTES: dict[str, dict[str, Handler]] = {
    "/version": {"GET": _version},
    "/engine_manifest": {"GET": _engine_manifest},
    "/speakers": {"GET": _speakers},
    "/speaker_info": {"GET": _speaker_info},
    "/supported_devices": {"GET": _supported_devices},
    "/initialize_speaker": {"POST": _initialize_speaker},
    "/is_initialized_speaker": {"GET": _is_initialized_speaker},
    "/audio_query": {"POST": _audio_query},
    "/synthesis": {"POST": _synthesis},
}
_RESOURCE_PREFIX = "/_resources/"


def _route(path: str) -> dict[str, Handler] | None:
    if path.startswith(_RESOURCE_PREFIX) and "/" not in path[len(_RESOURCE_PREFIX) :]:
        return {"GET": _resource}
    return ROUTES.get(path)


def answer(engine: _Engine, request: Request) -> Reply:
    """The reply to one request: routing, then the handler, with errors in the engine's shapes."""
    methods = _route(request.path)
    if methods is None:
        return Reply.json({"detail": "Not Found"}, 404)
    handler = methods.get(request.method)
    if handler is None:
        return Reply.json({"detail": "Method Not Allowed"}, 405, (("Allow", ", ".join(methods)),))
    try:
        return handler(engine, request)
    except Invalid as exc:
        return Reply.json({"detail": exc.errors}, 422)
    except StyleNotFound as exc:
        return Reply.json({"message": str(exc)}, 422)
    except HttpError as exc:
        return Reply.json({"detail": exc.detail}, exc.status)


# -- HTTP plumbing ---------------------------------------------------------------------------------------


class _BodyError(Exception):
    def __init__(self, status: int, detail: str, *, hang_up: bool) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.hang_up = hang_up


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    engine: _Engine
    log_requests: bool


class _Server6(_Server):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "anchor-voicevox-standin"
    timeout = 60  # seconds a client may stall mid-request before we drop it

    def _handle(self) -> None:
        started = time.monotonic()
        try:
            request = self._request()
        except _BodyError as exc:
            reply = Reply.json({"detail": exc.detail}, exc.status)
            self.close_connection = exc.hang_up or self.close_connection
        else:
            try:
                reply = answer(self.server.engine, request)
            except Exception:  # a bug of ours: say so briefly to the client, fully in our log
                traceback.print_exc(file=sys.stderr)
                reply = Reply(500, b"Internal Server Error", "text/plain; charset=utf-8")
        self._send(reply)
        if self.server.log_requests:
            target = self.path if len(self.path) <= 160 else self.path[:160] + "…"
            elapsed = time.monotonic() - started
            sys.stderr.write(
                f'{self.client_address[0]} "{self.command} {target}" {reply.status} {len(reply.body)} {elapsed:.3f}s\n'
            )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def _request(self) -> Request:
        url = urlsplit(self.path)
        # FastAPI takes the last value of a repeated query parameter.
        query = {name: values[-1] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return Request(
            method=self.command,
            path=url.path,
            query=query,
            body=self._body(),
            content_type=self.headers.get("Content-Type", ""),
            base_url=f"http://{host}",
        )

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _BodyError(
                411, "Send the body with a Content-Length (chunked bodies are not supported)", hang_up=True
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BodyError(400, "Invalid Content-Length", hang_up=True) from None
        if length < 0:
            raise _BodyError(400, "Invalid Content-Length", hang_up=True)
        if length > MAX_BODY_BYTES:
            drainable = length <= _DRAIN_LIMIT
            if drainable:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 64 * 1024))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise _BodyError(413, f"Request body is larger than {MAX_BODY_BYTES} bytes", hang_up=not drainable)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.status != 204:  # 204 carries neither a body nor its headers
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and reply.status != 204:
            self.wfile.write(reply.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged once, after the reply, by `_handle`."""

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            sys.stderr.write(f"{self.client_address[0]} {format % args}\n")


# -- starting and stopping -------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StandinEngine:
    """A running stand-in: serve_forever in a daemon thread; `close()` (or leaving `with`) stops it."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self._closed = False
        self.host: str = server.server_address[0]  # type: ignore[assignment]
        self.port: int = server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> StandinEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_standin(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_remote: bool = False,
    log_requests: bool = False,
    cache: SpeechCache | None = None,
) -> StandinEngine:
    """Serve the stand-in on host:port (0: a free port) in a daemon thread; it answers /version at once.

    Only loopback addresses unless `allow_remote`: the stand-in has no authentication. `cache`: speech answered
    before is answered from it (voicevox_standin/cache.py).
    Raises ValueError for a refused host and OSError when the address cannot be bound."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host}: the stand-in has no authentication, so it listens on loopback "
            "addresses (127.0.0.1, ::1, localhost) only; pass --allow-remote (allow_remote=True) to listen on "
            "another address, e.g. 0.0.0.0 inside a container"
        )
    server = (_Server6 if ":" in host else _Server)((host, port), _RequestHandler)
    server.engine = _Engine(cache=cache)
    server.log_requests = log_requests
    thread = threading.Thread(target=server.serve_forever, name=f"voicevox-standin:{port}", daemon=True)
    thread.start()
    return StandinEngine(server, thread)
