"""The wait for the VOICEVOX engine: where its URL came from, the progress a user sees while it lasts, and a failure
that names the setting to change. Time is a fake clock here, except against a port where nothing listens."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from api.v1alpha1 import DEFAULT_ENGINE_URL, Voice
from job.model import TransientError
from job.pipeline import RunContext, engine_wait_reporter, run_broadcast
from job.progress import Reporter
from job.voice.engine_client import VoicevoxClient
from job.voice.narrator import EngineAddress, EngineWait, UrlSource, engine_address, wait_for_engine
from tests.support.builders import a_broadcast
from tests.support.processes import free_port
from voicevox_standin.server import start_standin

SAMPLE_FEED = Path(__file__).resolve().parents[2] / "job" / "sample" / "feed-en.xml"
SETTINGS = ("--engine-url", "spec.voice.engineUrl", "ANCHOR_VOICEVOX_URL")


class FakeClock:
    """time.monotonic and time.sleep in one: sleeping moves the clock on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class EngineStartingAt(requests.Session):
    """An engine that refuses connections until `up_at` on the clock (never, if None), then answers /version."""

    def __init__(self, clock: FakeClock, up_at: float | None = None, loading: bool = False) -> None:
        super().__init__()
        self.clock, self.up_at, self.loading = clock, up_at, loading

    def get(self, url: str | bytes, **_: Any) -> requests.Response:  # type: ignore[override]
        self.clock.now += 0.01  # a refused connection is quick, but not free
        if self.up_at is None or self.clock.now < self.up_at:
            if self.loading:
                return _response(503, b'{"detail": "loading"}')
            raise requests.ConnectionError("HTTPConnectionPool: [Errno 111] Connection refused")
        return _response(200, b'"0.25.0"')


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    return response


def _client(session: EngineStartingAt) -> VoicevoxClient:
    return VoicevoxClient("http://engine.test:50021", session=session, clock=session.clock, sleep=session.clock.sleep)


@pytest.mark.parametrize(
    ("option", "spec_url", "env_url", "source", "url"),
    [
        ("http://option:1", "http://spec:2", "http://env:3", UrlSource.OPTION, "http://option:1"),
        (None, "http://spec:2", "http://env:3", UrlSource.SPEC, "http://spec:2"),
        (None, None, "http://env:3", UrlSource.ENVIRONMENT, "http://env:3"),
        (None, None, None, UrlSource.DEFAULT, DEFAULT_ENGINE_URL),
    ],
)
def test_the_engine_url_comes_from_the_first_setting_given_and_its_hint_names_that_setting(
    option: str | None, spec_url: str | None, env_url: str | None, source: UrlSource, url: str
) -> None:
    spec = Voice.model_validate({"engineUrl": spec_url} if spec_url else {})
    env = {"ANCHOR_VOICEVOX_URL": env_url} if env_url else {}
    address = engine_address(spec, env, option)
    assert address == EngineAddress(url, source)
    if source is UrlSource.DEFAULT:
        assert DEFAULT_ENGINE_URL in address.hint and all(s in address.hint for s in SETTINGS)
    else:  # only the setting that was used: changing another would not help
        assert [s for s in SETTINGS if s in address.hint] == [source.value]


def test_waiting_reports_the_start_then_progress_about_every_10_s_then_fails_naming_the_setting() -> None:
    session = EngineStartingAt(FakeClock())
    address = EngineAddress("http://engine.test:50021", UrlSource.SPEC)
    seen: list[EngineWait] = []
    with pytest.raises(TransientError) as failure:
        wait_for_engine(_client(session), address, 60, seen.append)
    message = str(failure.value)
    assert message.startswith("VOICEVOX engine at http://engine.test:50021 not ready after 60 s (Connection refused)")
    assert "set spec.voice.engineUrl to a running VOICEVOX engine" in message
    assert "ANCHOR_VOICEVOX_URL" not in message and "--engine-url" not in message
    assert [w.state for w in seen] == ["start"] + ["waiting"] * 5
    assert seen[0].message == "waiting up to 60 s for the VOICEVOX engine at http://engine.test:50021 " + (
        "(from spec.voice.engineUrl)"
    )
    waited = [w.waited for w in seen[1:]]
    for n, seconds in enumerate(waited, 1):
        assert 10 * n <= seconds < 10 * n + 2.5, waited  # every 10 s, give or take one poll
    assert {w.reason for w in seen[1:]} == {"Connection refused"}
    assert seen[2].message == (
        f"still waiting for the VOICEVOX engine at http://engine.test:50021: {waited[1]:.0f} s of 60 s "
        "(Connection refused)"
    )
    assert session.clock.now <= 60  # gave up at the deadline, not a poll later


def test_an_engine_that_comes_up_ends_the_wait_with_its_version_and_how_long_it_took() -> None:
    session = EngineStartingAt(FakeClock(), up_at=25.0, loading=True)
    seen: list[EngineWait] = []
    version = wait_for_engine(_client(session), EngineAddress("http://e:1", UrlSource.DEFAULT), 120, seen.append)
    assert version == "0.25.0"
    assert [w.state for w in seen] == ["start", "waiting", "waiting", "ready"]
    assert {w.reason for w in seen if w.state == "waiting"} == {"HTTP 503"}
    assert 25 <= seen[-1].waited < 27 and seen[-1].version == "0.25.0"
    assert seen[-1].message == f"VOICEVOX engine at http://e:1 ready after {seen[-1].waited:.1f} s (version 0.25.0)"


def test_the_wait_goes_to_the_runs_json_events_off_a_terminal() -> None:
    stream = io.StringIO()
    reporter = Reporter(env={}, stream=stream, interactive=False, context={"run": "r1"})
    session = EngineStartingAt(FakeClock(), up_at=12.0)
    address = EngineAddress("http://engine.test:50021", UrlSource.ENVIRONMENT)
    wait_for_engine(_client(session), address, 30, engine_wait_reporter(reporter))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["voice.engine.start", "voice.engine.waiting", "voice.engine.ready"]
    start, waiting, ready = events
    assert start["url"] == "http://engine.test:50021" and start["source"] == "ANCHOR_VOICEVOX_URL"
    assert start["timeout"] == 30 and start["run"] == "r1" and start["level"] == "info"
    assert "(from ANCHOR_VOICEVOX_URL)" in start["message"]
    assert waiting["reason"] == "Connection refused" and 10 <= waiting["waited"] < 12
    assert "of 30 s" in waiting["message"]
    assert ready["version"] == "0.25.0" and ready["waited"] >= 12


def test_on_a_terminal_the_wait_reads_as_plain_lines() -> None:
    stream = io.StringIO()
    reporter = Reporter(env={}, stream=stream, interactive=True)
    session = EngineStartingAt(FakeClock(), up_at=11.0)
    wait_for_engine(_client(session), EngineAddress("http://e:1", UrlSource.OPTION), 30, engine_wait_reporter(reporter))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "waiting up to 30 s for the VOICEVOX engine at http://e:1 (from --engine-url)"
    assert lines[1].startswith("still waiting for the VOICEVOX engine at http://e:1: 1") and "of 30 s" in lines[1]
    assert re.fullmatch(r"VOICEVOX engine at http://e:1 ready after 1[1-3]\.\d s \(version 0\.25\.0\)", lines[2])


def test_a_real_engine_ready_at_once_is_reported_ready_without_progress_lines() -> None:
    seen: list[EngineWait] = []
    with start_standin() as engine:
        address = EngineAddress(engine.url, UrlSource.OPTION)
        wait_for_engine(VoicevoxClient(engine.url), address, 30, seen.append)
    assert [w.state for w in seen] == ["start", "ready"]
    assert seen[-1].version and seen[-1].waited < 10


def test_a_run_given_engine_url_on_the_command_line_names_that_option_when_nothing_listens(tmp_path: Path) -> None:
    """Through the pipeline, as `anchor render --engine-url` runs it: the option, not the spec, is named."""
    dead = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    broadcast = (
        a_broadcast("engine-gone")
        .feed(str(SAMPLE_FEED))
        .sources(maxAgeHours=0)
        .voice(engineUrl="http://spec.invalid:50021")
        .output(directory=str(tmp_path / "out"))
        .model()
    )
    stream = io.StringIO()
    reporter = Reporter(env={}, stream=stream, interactive=False)
    context = RunContext(
        "r1", datetime(2026, 11, 24, 7, tzinfo=UTC), tmp_path, {}, engine_ready_timeout=1, engine_url=dead
    )
    with pytest.raises(TransientError) as failure:
        run_broadcast(broadcast, context, reporter)
    message = str(failure.value)
    assert message.startswith(f"VOICEVOX engine at {dead} not ready after 1 s (Connection refused)")
    assert "the URL came from --engine-url" in message and "spec.voice.engineUrl" not in message
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (start,) = [e for e in events if e["event"] == "voice.engine.start"]
    assert (start["url"], start["source"], start["timeout"]) == (dead, "--engine-url", 1)
