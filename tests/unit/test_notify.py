"""The run webhook: Slack-compatible payloads, retries with backoff, the address guard, a queue that never blocks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from api.netguard import AddressPolicy
from api.result import RunResult
from controller.notify import Attempted, Delivery, Notifier, WebhookError, check_url, slack_message
from controller.status import Outcome
from tests.support.http import Reply, scripted_server

LOCAL = AddressPolicy.of(False, ["127.0.0.1/32"])
SUCCEEDED = Outcome(
    "evening-go",
    "Succeeded",
    "RunSucceeded",
    "video published: https://minio.test/v.mp4",
    "2026-11-24T19:00:00Z",
    "2026-11-24T19:04:10Z",
    RunResult(
        status="Succeeded",
        broadcast="evening",
        run_id="evening-go",
        video="s3://news/evening/v.mp4",
        video_url="https://minio.test/v.mp4",
        page_url="https://news.example/evening/index.html",
        duration_seconds=121.5,
        stories=4,
        credits=["VOICEVOX:ずんだもん"],
    ),
)


def _notifier(**kwargs: object) -> Iterator[Notifier]:
    notifier = Notifier(LOCAL, backoff=0.01, timeout=5, **kwargs)  # type: ignore[arg-type]
    try:
        yield notifier
    finally:
        notifier.close()


notifier = pytest.fixture(_notifier)


def test_the_payload_is_slack_incoming_webhook_json() -> None:
    message = slack_message("news", "evening", SUCCEEDED)
    assert message["text"].startswith("✅ news/evening: run evening-go succeeded")
    (attachment,) = message["attachments"]
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Video"] == "https://minio.test/v.mp4"
    assert fields["Page"] == "https://news.example/evening/index.html"
    assert (fields["Duration"], fields["Stories"], fields["Voice"]) == ("121.5 s", "4", "VOICEVOX:ずんだもん")
    failed = Outcome(
        "evening-x", "Failed", "DeadlineExceeded", "Job was active longer than specified", None, None, None
    )
    assert slack_message("news", "evening", failed)["text"].startswith("❌ news/evening: run evening-x failed")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("ftp://hooks.example/x", "must be http or https, not ftp"),
        ("https:///nohost", "has no host"),
        ("https://hooks.example/a b", "whitespace"),
        ("https://hooks.example/" + "x" * 3000, "longer than 2048"),
    ],
)
def test_a_bad_url_is_refused_without_repeating_it(url: str, problem: str) -> None:
    with pytest.raises(WebhookError, match=problem) as caught:
        check_url(url)
    assert "hooks.example" not in str(caught.value)


def test_a_failing_endpoint_is_retried_until_it_accepts(notifier: Notifier) -> None:
    answers = iter([Reply(503), Reply(429, headers={"Retry-After": "0"}), Reply(200, b"ok", "text/plain")])
    with scripted_server(lambda method, path, body: next(answers)) as server:
        attempted = notifier.deliver(Delivery(f"{server.url}/services/T0/B0/secret", {"text": "hi"}, "news/evening"))
    assert attempted == Attempted(True, 3, "HTTP 200 from 127.0.0.1")
    assert [r.method for r in server.requests] == ["POST"] * 3
    assert json.loads(server.requests[0].body) == {"text": "hi"}
    assert server.requests[0].headers["Content-Type"].startswith("application/json")


def test_a_client_error_is_not_retried_and_the_token_never_shows(notifier: Notifier) -> None:
    with scripted_server(lambda method, path, body: Reply(404)) as server:
        attempted = notifier.deliver(Delivery(f"{server.url}/services/T0/B0/secret-token", {"text": "x"}, "n/b"))
    assert (attempted.ok, attempted.attempts, attempted.detail) == (False, 1, "HTTP 404 from 127.0.0.1")
    assert "secret-token" not in attempted.detail


def test_gives_up_after_the_set_number_of_tries() -> None:
    with scripted_server(lambda method, path, body: Reply(500)) as server:
        for notifier in _notifier(attempts=3):
            attempted = notifier.deliver(Delivery(server.url, {"text": "x"}, "n/b"))
    assert (attempted.ok, attempted.attempts, len(server.requests)) == (False, 3, 3)
    assert attempted.detail == "HTTP 500 from 127.0.0.1 after 3 tries"


def test_loopback_and_metadata_addresses_are_refused_unless_allowed() -> None:
    guarded = Notifier(AddressPolicy.of(False, []), backoff=0.01)
    try:
        with scripted_server(lambda method, path, body: Reply(200)) as server:
            attempted = guarded.deliver(Delivery(server.url, {"text": "x"}, "n/b"))
            metadata = guarded.deliver(Delivery("http://169.254.169.254/latest", {"text": "x"}, "n/b"))
    finally:
        guarded.close()
    assert not attempted.ok and server.requests == []
    assert "loopback" in attempted.detail and "ANCHOR_WEBHOOK_ALLOWED_NETWORKS" in attempted.detail
    assert "metadata" in metadata.detail


def test_submit_never_blocks_and_drops_the_oldest_when_full() -> None:
    release = threading.Event()
    entered = threading.Event()
    done: list[tuple[str, Attempted]] = []
    finished = threading.Event()

    def slow(method: str, path: str, body: bytes) -> Reply:
        entered.set()
        release.wait(10)
        return Reply(200)

    def record(delivery: Delivery, attempted: Attempted) -> None:
        done.append((delivery.label, attempted))
        if len(done) == 3:
            finished.set()

    with scripted_server(slow) as server:
        for notifier in _notifier(capacity=1, workers=1, on_done=record):
            notifier.submit(Delivery(server.url, {"text": "1"}, "first"))
            assert entered.wait(10)  # the worker is busy with the first delivery
            notifier.submit(Delivery(server.url, {"text": "2"}, "second"))
            notifier.submit(Delivery(server.url, {"text": "3"}, "third"))  # the queue is full: "second" goes
            release.set()
            assert finished.wait(10)
    outcomes = {label: attempted for label, attempted in done}
    assert outcomes["second"].detail.startswith("dropped") and outcomes["second"].attempts == 0
    assert outcomes["first"].ok and outcomes["third"].ok


def test_a_hanging_endpoint_does_not_hold_up_another_broadcasts_webhook() -> None:
    release = threading.Event()
    fast_done = threading.Event()
    done: dict[str, Attempted] = {}

    def route(method: str, path: str, body: bytes) -> Reply:
        if path == "/slow":
            release.wait(10)
        return Reply(200)

    def record(delivery: Delivery, attempted: Attempted) -> None:
        done[delivery.label] = attempted
        if delivery.label == "fast":
            fast_done.set()

    with scripted_server(route) as server:
        for notifier in _notifier(workers=2, on_done=record):
            notifier.submit(Delivery(f"{server.url}/slow", {"text": "1"}, "slow"))
            notifier.submit(Delivery(f"{server.url}/fast", {"text": "2"}, "fast"))
            try:
                assert fast_done.wait(10), "the fast delivery waited behind the hanging one"
                assert "slow" not in done
            finally:
                release.set()
    assert done["fast"].ok
