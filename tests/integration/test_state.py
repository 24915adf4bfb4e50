"""The broadcast's state (job/memory/state.py) and what is built on it — the audio cache and the aired-stories memory —
the same on a local output directory and on a real MinIO bucket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio import Minio

from api.v1alpha1 import Output, Voice
from job.memory import aired, state
from job.memory.audio_cache import AudioCache
from job.model import Story
from job.voice.narrator import cache_key
from tests.support.minio_server import MinioServer, running_minio

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
WAV = b"RIFF" + b"\x00" * 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with running_minio(tmp_path_factory.mktemp("minio-state")) as running:
        yield running


@pytest.fixture(params=["directory", "bucket"])
def output(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Output, dict[str, str]]:
    if request.param == "directory":
        return Output.model_validate({"directory": str(tmp_path / "out")}), {}
    server: MinioServer = request.getfixturevalue("server")
    bucket = f"state-{uuid.uuid4().hex[:10]}"
    Minio(server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False).make_bucket(bucket)
    s3 = {"endpoint": server.endpoint, "bucket": bucket, "secure": False, "prefix": "news/daily"}
    env = {"ANCHOR_S3_ACCESS_KEY_ID": server.access_key, "ANCHOR_S3_SECRET_ACCESS_KEY": server.secret_key}
    return Output.model_validate({"s3": s3}), env


def test_state_keeps_objects_bounded_and_apart_from_published_runs(output: tuple[Output, dict[str, str]]) -> None:
    shared, own = state.opened(output[0], "morning", output[1])
    own.put("runs/run-1/script.json", b"{}")
    shared.put("audio/ab.wav", WAV)
    assert own.get("runs/run-1/script.json", 10) == b"{}"
    assert own.get("runs/run-1/script.json", 1) is None, "larger than the limit reads as absent"
    assert own.get("runs/run-2/script.json", 10) is None
    assert [e.key for e in shared.entries("audio")] == ["audio/ab.wav"]
    assert own.entries("audio") == [], "the broadcast's own state is apart from the shared cache"
    shared.delete(["audio/ab.wav"])
    assert shared.get("audio/ab.wav", 100) is None
    with pytest.raises(ValueError):
        own.put("../escape", b"x")


def test_the_audio_cache_is_keyed_by_sound_and_pruned_by_age_then_size(output: tuple[Output, dict[str, str]]) -> None:
    shared, _ = state.opened(output[0], "morning", output[1])
    voice = Voice.model_validate({"styleId": 3})
    key = cache_key("0.25.0", voice, "こんにちは。")
    assert key == cache_key(
        "0.25.0", Voice.model_validate({"styleId": 3, "credit": "VOICEVOX:ずんだもん"}), "こんにちは。"
    )
    for other in (
        cache_key("0.25.1", voice, "こんにちは。"),
        cache_key("0.25.0", Voice.model_validate({"styleId": 1}), "こんにちは。"),
        cache_key("0.25.0", Voice.model_validate({"styleId": 3, "speedScale": 1.1}), "こんにちは。"),
        cache_key("0.25.0", voice, "こんばんは。"),
    ):
        assert other != key
    cache = AudioCache(shared)
    assert cache.get(key) is None
    cache.put(key, WAV)
    assert AudioCache(shared).get(key) == WAV
    for n in range(3):
        cache.put(f"{n:064x}", WAV)
    assert cache.summary() == {"hits": 0, "misses": 1, "saved": 4}
    now = datetime.now(UTC)
    assert cache.prune(max_bytes=10**9, max_age=timedelta(days=30), now=now) == 0
    assert cache.prune(max_bytes=10**9, max_age=timedelta(days=30), now=now + timedelta(days=31)) == 4, "expired"
    for n in range(4):
        cache.put(f"{n:064x}", WAV)
    assert cache.prune(max_bytes=2 * len(WAV), max_age=timedelta(days=30), now=now) == 2, "the size cap"
    assert len(shared.entries("audio")) == 2


def _story(n: int, **fields: str) -> Story:
    return Story(**{"title": f"story {n}", "link": f"https://news.example/{n}", "source": "s", "summary": "", **fields})


def test_aired_stories_are_remembered_for_the_window_and_skipped(output: tuple[Output, dict[str, str]]) -> None:
    _, own = state.opened(output[0], "morning", output[1])
    window = timedelta(hours=72)
    assert aired.load(own, NOW, window) == {}
    assert aired.remember(own, {}, [_story(1), _story(2)], NOW - timedelta(hours=100), "run-a")
    assert aired.remember(own, aired.load(own, NOW, window), [_story(3)], NOW - timedelta(hours=1), "run-b")
    remembered = aired.load(own, NOW, window)
    assert set(remembered) == {aired.identity(_story(3))}, "outside the window, stories may air again"
    fresh = [_story(3), _story(4), _story(3, link="https://NEWS.example/3/#comments")]
    assert aired.unaired(fresh, remembered, "run-c") == [_story(4)], "the same link in another spelling is the same"
    assert aired.unaired(fresh, remembered, "run-b") == fresh, "a re-run of the run that aired them airs them again"
    assert aired.identity(_story(5, guid="g-1")) == aired.identity(_story(6, guid="g-1"))


def test_unreadable_state_is_absent_not_an_error(tmp_path: Path) -> None:
    own = state.LocalState(tmp_path)
    own.put(aired.KEY, b"{not json")
    assert aired.load(own, NOW, timedelta(hours=1)) == {}
    own.put("audio/x.wav", b"<html>not a wav</html>")
    assert AudioCache(own).get("x") is None
