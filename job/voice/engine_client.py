"""The VOICEVOX engine's HTTP API, as its OpenAPI document (shared/reference/voicevox-openapi.json) and the real
engine describe it: the calls the voice stage makes, each reply bounded in size and time, errors in the engine's
own words (whatever the shape of its error body), transient failures retried with backoff.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from job.model import TransientError

# What one engine reply may cost us: the engine is outside our control, so bound size and time.
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_WAV_BYTES = 64 * 1024 * 1024


class EngineError(Exception):
    """A non-2xx answer from the engine; the message carries the engine's own words."""

    def __init__(self, endpoint: str, status: int, detail: str) -> None:
        super().__init__(f"VOICEVOX engine answered {status} to {endpoint}: {detail}")
        self.status = status
        self.detail = detail

    @property
    def transient(self) -> bool:
        return self.status >= 500 or self.status in (408, 429)


class EngineNotReady(TransientError):
    """The engine did not answer /version within the time allowed."""

    def __init__(self, url: str, timeout: float, reason: str) -> None:
        super().__init__(f"VOICEVOX engine at {url} not ready after {timeout:.0f} s ({reason})")


@dataclass(frozen=True)
class Retry:
    attempts: int = 4
    first_delay: float = 0.5
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    """A long sentence on a CPU engine can take a while."""


class VoicevoxClient:
    """A typed client for the VOICEVOX engine's HTTP API."""

    def __init__(
        self,
        base_url: str,
        *,
        retry: Retry = Retry(),
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.session = session or requests.Session()
        self.clock = clock
        self.sleep = sleep

    # -- endpoints ---------------------------------------------------------------------------------------
    def version(self) -> str:
        value = self._json("GET", "/version")
        return str(value)

    def speakers(self) -> list[dict[str, Any]]:
        value = self._json("GET", "/speakers")
        if not isinstance(value, list):
            raise TransientError(f"VOICEVOX engine at {self.base_url}: /speakers did not return a list")
        return [s for s in value if isinstance(s, dict)]

    def speaker_info(self, speaker_uuid: str) -> dict[str, Any]:
        value = self._json("GET", "/speaker_info", params={"speaker_uuid": speaker_uuid, "resource_format": "url"})
        return value if isinstance(value, dict) else {}

    def supported_devices(self) -> dict[str, bool]:
        value = self._json("GET", "/supported_devices")
        if not isinstance(value, dict):
            return {}
        return {str(k): bool(v) for k, v in value.items() if isinstance(v, bool)}

    def initialize_speaker(self, style_id: int) -> None:
        self._request("POST", "/initialize_speaker", params={"speaker": style_id, "skip_reinit": "true"})

    def audio_query(self, text: str, style_id: int) -> dict[str, Any]:
        value = self._json("POST", "/audio_query", params={"text": text, "speaker": style_id})
        if not isinstance(value, dict) or not isinstance(value.get("accent_phrases"), list):
            raise TransientError(f"VOICEVOX engine at {self.base_url}: /audio_query did not return an AudioQuery")
        return value

    def synthesis(self, query: Mapping[str, Any], style_id: int) -> bytes:
        response = self._request("POST", "/synthesis", params={"speaker": style_id}, json=dict(query))
        return _bounded_body(response, MAX_WAV_BYTES, "/synthesis")

    def wait_ready(
        self, timeout: float, on_wait: Callable[[float, str], None] | None = None, *, every: float = 10.0
    ) -> str:
        """Poll /version until the engine answers (a sidecar engine may still be loading its models) and return its
        version. While it does not, `on_wait(seconds waited, why the last poll failed)` is called about every
        `every` seconds; after `timeout` seconds EngineNotReady is raised."""
        started = self.clock()
        deadline, next_report = started + timeout, started + every
        delay = 0.2
        while True:
            try:
                response = self.session.get(f"{self.base_url}/version", timeout=(2.0, 5.0))
                if response.ok:
                    return str(response.json())
                last = f"HTTP {response.status_code}"
            except (requests.RequestException, ValueError) as exc:
                last = _short_reason(exc)
            now = self.clock()
            if now + delay > deadline:
                raise EngineNotReady(self.base_url, timeout, last)
            if on_wait and now >= next_report:
                on_wait(now - started, last)
                next_report = now + every
            self.sleep(delay)  # polling an outside server's readiness, not synchronising our own threads
            delay = min(delay * 1.5, 2.0)

    # -- plumbing ----------------------------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        body = _bounded_body(response, MAX_JSON_BYTES, path)
        try:
            return json.loads(body)
        except ValueError:
            raise TransientError(f"VOICEVOX engine at {self.base_url}: {path} returned invalid JSON") from None

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        delay = self.retry.first_delay
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self.session.request(
                    method,
                    f"{self.base_url}{path}",
                    timeout=(self.retry.connect_timeout, self.retry.read_timeout),
                    stream=True,
                    **kwargs,
                )
            except requests.RequestException as exc:
                if attempt == self.retry.attempts:
                    raise TransientError(
                        f"VOICEVOX engine at {self.base_url} unreachable ({path}): {_short_reason(exc)}"
                    ) from None
            else:
                if response.ok:
                    return response
                error = EngineError(path, response.status_code, _engine_detail(response))
                if not error.transient or attempt == self.retry.attempts:
                    raise error
            self.sleep(delay)  # backoff before retrying a transient engine failure
            delay *= 2
        raise AssertionError("unreachable")


def _bounded_body(response: requests.Response, limit: int, path: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > limit:
            response.close()
            raise TransientError(f"VOICEVOX engine reply to {path} is larger than {limit} bytes; refused")
        chunks.append(chunk)
    return b"".join(chunks)


def _engine_detail(response: requests.Response) -> str:
    """The engine's own words, whatever shape its error body has (FastAPI detail string or list, text, HTML)."""
    try:
        raw = _bounded_body(response, 64 * 1024, "error")
    except TransientError:
        return "(error body too large)"
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    where = ".".join(str(p) for p in item.get("loc", []))
                    parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg", item)))
                else:
                    parts.append(str(item))
            text = "; ".join(parts)
        else:
            text = str(detail)
    elif isinstance(body, dict) and "message" in body:
        text = str(body["message"])
    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return (text[:300] + "…") if len(text) > 300 else (text or response.reason or "no detail")


def _short_reason(exc: Exception) -> str:
    reason = str(exc)
    for known in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if known in reason:
            return known
    return (reason[:200] + "…") if len(reason) > 200 else reason
