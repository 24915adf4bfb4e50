"""The run webhook: Slack-compatible JSON about a finished run, posted from a background thread.

Reconciliation never waits for it: `Notifier.submit` queues a delivery (a bounded queue; when full, the oldest
waiting delivery is dropped and counted) and returns. A worker posts each one with a deadline, retries
connection failures, timeouts, 408, 429 and 5xx with exponential backoff (honouring a bounded Retry-After), and
gives up at once on other answers. The URL comes from a Secret and often carries a token: it is never logged,
never in an Event; messages name the host at most. Webhook hosts pass the same address guard as feeds
(api.netguard): no loopback, link-local, metadata or private addresses unless the operator allows networks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from api.netguard import AddressPolicy, Deadline, GuardError, PinnedAdapter, resolve
from controller.status import Outcome

log = logging.getLogger("anchor.controller.notify")

MAX_URL_CHARS = 2048
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_USER_AGENT = "anchor-controller/0.1 (+webhook)"


class WebhookError(ValueError):
    """A webhook URL that cannot be used; the message never contains the URL itself."""


def check_url(url: str) -> str:
    """The URL, stripped, if it is an absolute http(s) URL with a host; WebhookError naming the problem if not."""
    url = url.strip()
    if not url:
        raise WebhookError("the webhook URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise WebhookError(f"the webhook URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise WebhookError("the webhook URL is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError(f"the webhook URL must be http or https, not {parts.scheme or 'scheme-less'}")
    if not host:
        raise WebhookError("the webhook URL has no host")
    if any(ch in url for ch in "\r\n\t "):
        raise WebhookError("the webhook URL contains whitespace")
    return url


def slack_message(namespace: str, broadcast: str, outcome: Outcome) -> dict[str, Any]:
    """Slack incoming-webhook JSON (also understood by Mattermost, Rocket.Chat, Discord's /slack, Teams
    workflows): a `text` line any of them shows, and an attachment with the details."""
    ok = outcome.phase == "Succeeded"
    text = f"{'✅' if ok else '❌'} {namespace}/{broadcast}: run {outcome.job} {outcome.phase.lower()}"
    fields = [{"title": "Result", "value": f"{outcome.reason}: {outcome.message}"[:1000], "short": False}]
    result = outcome.result
    if result is not None:
        if result.video_url or result.video:
            fields.append({"title": "Video", "value": str(result.video_url or result.video), "short": False})
        if result.page_url:
            fields.append({"title": "Page", "value": result.page_url, "short": False})
        if result.duration_seconds is not None:
            fields.append({"title": "Duration", "value": f"{result.duration_seconds:.1f} s", "short": True})
        if result.stories is not None:
            fields.append({"title": "Stories", "value": str(result.stories), "short": True})
        if result.credits:
            fields.append({"title": "Voice", "value": ", ".join(result.credits)[:300], "short": True})
    attachment = {
        "color": "#2eb886" if ok else "#d40e0d",
        "fallback": text,
        "fields": fields,
        "footer": "anchor",
    }
    if outcome.finished_at:
        attachment["footer"] = f"anchor · {outcome.finished_at}"
    return {"text": text, "attachments": [attachment]}


@dataclass(frozen=True)
class Delivery:
    url: str
    payload: Mapping[str, Any]
    label: str
    """What logs and events may say about this delivery (namespace/broadcast and job), never the URL."""
    involved: Mapping[str, str] | None = None
    """The object a failed delivery is reported on (an Event's involvedObject)."""


@dataclass(frozen=True)
class Attempted:
    ok: bool
    attempts: int
    detail: str


class Notifier:
    """A few worker threads posting queued deliveries, so one slow or throttling endpoint does not hold up the
    others' deliveries. `on_done(delivery, attempted)` is told how each ended."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        attempts: int = 5,
        backoff: float = 2.0,
        max_delay: float = 60.0,
        timeout: float = 10.0,
        capacity: int = 100,
        workers: int = 4,
        on_done: Callable[[Delivery, Attempted], None] | None = None,
    ) -> None:
        self._policy = policy
        self._attempts = attempts
        self._backoff = backoff
        self._max_delay = max_delay
        self._timeout = timeout
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._on_done = on_done
        self._threads = [
            threading.Thread(target=self._work, name=f"anchor-webhook-{n}", daemon=True) for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, delivery: Delivery) -> None:
        while True:
            try:
                self._queue.put_nowait(delivery)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                self._done(dropped, Attempted(False, 0, "dropped: too many webhook deliveries waiting"))

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._done(delivery, self.deliver(delivery))
            except Exception as exc:  # the worker must outlive any one delivery
                log.exception("webhook delivery for %s failed unexpectedly", delivery.label)
                self._done(delivery, Attempted(False, 0, f"internal error: {type(exc).__name__}"))

    def _done(self, delivery: Delivery, attempted: Attempted) -> None:
        if attempted.ok:
            log.info("webhook for %s delivered (%s)", delivery.label, attempted.detail)
        else:
            log.warning("webhook for %s not delivered: %s", delivery.label, attempted.detail)
        if self._on_done is not None:
            try:
                self._on_done(delivery, attempted)
            except Exception:
                log.exception("reporting the webhook delivery for %s failed", delivery.label)

    def deliver(self, delivery: Delivery) -> Attempted:
        """Post one delivery, retrying what may pass; the backoff wait ends early when the notifier closes."""
        body = json.dumps(delivery.payload, ensure_ascii=False).encode()
        host = urlsplit(delivery.url).hostname or "?"
        detail = ""
        for attempt in range(1, self._attempts + 1):
            try:
                status, retry_after = self._post(delivery.url, body)
            except GuardError as refused:
                return Attempted(False, attempt, f"{refused}; allow its network in ANCHOR_WEBHOOK_ALLOWED_NETWORKS")
            except requests.RequestException as exc:
                detail, retry_after, status = f"{host}: {type(exc).__name__}", None, 0
            else:
                if 200 <= status < 300:
                    return Attempted(True, attempt, f"HTTP {status} from {host}")
                detail = f"HTTP {status} from {host}"
                if status not in _RETRY_STATUS:
                    return Attempted(False, attempt, detail)
            if attempt == self._attempts:
                break
            delay = min(self._max_delay, self._backoff * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(self._max_delay, max(delay, retry_after))
            if self._stop.wait(delay):
                return Attempted(False, attempt, f"{detail}; the controller stopped before the next try")
        return Attempted(False, self._attempts, f"{detail} after {self._attempts} tries")

    def _post(self, url: str, body: bytes) -> tuple[int, float | None]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = resolve(host, port, self._policy)
        request = requests.Request(
            "POST",
            url,
            data=body,
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": _USER_AGENT},
        ).prepare()
        request.headers["Host"] = parts.netloc.rpartition("@")[2]
        with Deadline(self._timeout) as deadline:
            adapter = PinnedAdapter(addresses[0], deadline)
            try:
                # No redirects: a webhook that moves is a configuration to fix, not a hop to take with a token.
                reply = adapter.send(request, stream=True, timeout=(self._timeout, self._timeout))
                try:
                    # Drain a little so the connection closes cleanly (bounded). The status is what counts:
                    # urllib3's own errors, which requests does not wrap here, must not turn a 2xx into a failure.
                    with contextlib.suppress(Exception):
                        reply.raw.read(64 * 1024)
                finally:
                    reply.close()
            finally:
                adapter.close()
        return reply.status_code, _retry_after(reply.headers.get("Retry-After"))


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None
