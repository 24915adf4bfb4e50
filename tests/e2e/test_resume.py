"""Runs that remember: the audio cache across runs, only new stories, a run killed mid-render resumed without
speaking anything anew, and the script from an LLM. Every engine call goes through a recording proxy in front of
the stand-in engine, so "no synthesis" is counted where the engine would see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from tests.e2e.conftest import AnchorRun, run_anchor
from tests.support.builders import BroadcastBuilder, a_broadcast
from tests.support.http import ScriptedServer, relay, scripted_server
from tests.support.media import decoded_md5
from tests.support.minio_server import MinioServer
from tests.support.published import check_published, object_sha256
from voicevox_standin.server import StandinEngine

pytestmark = [pytest.mark.e2e, pytest.mark.minio]


@pytest.fixture
def proxy(engine: StandinEngine) -> Iterator[ScriptedServer]:
    """The stand-in engine behind a proxy that records each request (method and path)."""

    with scripted_server(relay(engine.url)) as server:
        yield server


def _synthesis_calls(proxy: ScriptedServer) -> int:
    return sum(1 for r in proxy.requests if r.path.startswith(("/synthesis", "/audio_query")))


def _broadcast(feeds: ScriptedServer, proxy: ScriptedServer, name: str = "resume") -> BroadcastBuilder:
    return (
        a_broadcast(name)
        .feed(f"{feeds.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="en", stories=1)  # what is checked is what a run speaks again, not how much it says
        .voice(engineUrl=proxy.url)
        .video(resolution="1280x720", fps=10)  # resuming is about words and sound: a few frames a second do
    )


# Every run is dated the same moment, as a CronJob's runs of one schedule slot are: the intro says the time, and a
# run a minute later would rightly have a new sentence to speak.
SCHEDULED = {"ANCHOR_SCHEDULED_TIME": "2026-11-24T07:00:00Z"}


def _render(builder: BroadcastBuilder, tmp_path: Path, run_id: str, env: dict[str, str] | None = None) -> AnchorRun:
    path = builder.write(tmp_path / "broadcast.yaml")
    return run_anchor("render", str(path), "--run-id", run_id, env={**SCHEDULED, **(env or {})}, cwd=tmp_path)


def _s3(minio: MinioServer) -> tuple[Minio, str, dict[str, str]]:
    client = Minio(minio.endpoint, access_key=minio.access_key, secret_key=minio.secret_key, secure=False)
    bucket = f"resume-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    env = {"ANCHOR_S3_ACCESS_KEY_ID": minio.access_key, "ANCHOR_S3_SECRET_ACCESS_KEY": minio.secret_key}
    return client, bucket, env


def test_the_next_run_speaks_unchanged_sentences_from_the_bucket_and_both_publish(
    feed_server: ScriptedServer, proxy: ScriptedServer, minio: MinioServer, tmp_path: Path
) -> None:
    client, bucket, env = _s3(minio)
    builder = (
        _broadcast(feed_server, proxy)
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"], rememberAiredHours=0)  # the same stories again
        .s3(endpoint=minio.endpoint, bucket=bucket, prefix="news", secure=False)
    )
    first = _render(builder, tmp_path, "run-1", env)
    assert first.code == 0, first.stderr
    spoken = _synthesis_calls(proxy)
    assert spoken > 0 and first.result["synthesizedSentences"] > 0
    assert any(
        o.object_name.startswith("news/.anchor/audio/") for o in client.list_objects(bucket, "news/.anchor/audio/")
    )

    second = _render(builder, tmp_path, "run-2", env)
    assert second.code == 0, second.stderr
    assert _synthesis_calls(proxy) == spoken, "no /audio_query or /synthesis the second time"
    assert second.result["synthesizedSentences"] == 0
    done = next(e for e in second.events if e["event"] == "voice.done")
    assert done["cache"]["hits"] > 0 and done["cache"]["misses"] == 0
    one = check_published(client, bucket, "news/resume/run-1/")
    two = check_published(client, bucket, "news/resume/run-2/")
    assert two["audioCache"]["misses"] == 0 and one["audioCache"]["saved"] > 0
    assert object_sha256(one, "subtitles.srt") == object_sha256(two, "subtitles.srt")
    assert not list(client.list_objects(bucket, "news/resume/.anchor/runs/", recursive=True)), "checkpoints dropped"


def test_stories_an_earlier_run_aired_are_skipped_and_nothing_new_is_a_success_without_a_video(
    feed_server: ScriptedServer, proxy: ScriptedServer, minio: MinioServer, tmp_path: Path
) -> None:
    client, bucket, env = _s3(minio)
    builder = (
        _broadcast(feed_server, proxy, "daily")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"], maxItemsPerFeed=2)
        .s3(endpoint=minio.endpoint, bucket=bucket, secure=False)
    )
    titles = []
    for run_id in ("run-1", "run-2"):
        run = _render(builder, tmp_path, run_id, env)
        assert run.code == 0, run.stderr
        manifest = check_published(client, bucket, f"broadcasts/daily/{run_id}/")
        titles.append({s["title"] for s in manifest["stories"]})
    assert len(titles[0]) == len(titles[1]) == 1 and not titles[0] & titles[1], "run-2 aired what run-1 did not"

    third = _render(builder, tmp_path, "run-3", env)
    assert third.code == 0, third.stderr
    result = third.result
    assert (result["status"], result["reason"], result["stories"]) == ("Succeeded", "NothingNew", 0)
    assert result["message"].startswith("no new stories: all 2 stories from 1 feed were aired by earlier runs")
    assert "video" not in result
    assert not list(client.list_objects(bucket, "broadcasts/daily/run-3/", recursive=True)), "nothing published"
    again = _render(builder, tmp_path, "run-1", env)
    assert again.code == 0 and again.result.get("reason") is None, "a re-run of run-1 airs its own stories again"


def _events_until(process: subprocess.Popen[str], event: str) -> list[dict[str, Any]]:
    seen = []
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == event:
                return seen
    raise AssertionError(f"the run ended before {event}: {seen[-3:]}")


def test_a_run_killed_mid_render_resumes_from_its_checkpoints_without_speaking_again(
    feed_server: ScriptedServer, proxy: ScriptedServer, tmp_path: Path
) -> None:
    builder = _broadcast(feed_server, proxy).output(directory=str(tmp_path / "out"))
    path = builder.write(tmp_path / "broadcast.yaml")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")} | SCHEDULED
    process = subprocess.Popen(
        [sys.executable, "-m", "anchor", "render", str(path), "--run-id", "run-1"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _events_until(process, "voice.done")  # every sentence spoken; the render starts
    finally:
        process.kill()  # a spot node gone: no SIGTERM, no cleanup
        process.wait(timeout=30)
    spoken = _synthesis_calls(proxy)
    state = tmp_path / "out" / "resume" / ".anchor" / "runs" / "run-1"
    checkpointed = json.loads((state / "script.json").read_text(encoding="utf-8"))
    assert not (tmp_path / "out" / "resume" / "run-1").exists(), "nothing was published"

    resumed = _render(builder, tmp_path, "run-1")
    assert resumed.code == 0, resumed.stderr
    assert _synthesis_calls(proxy) == spoken, "the retried run spoke nothing anew"
    assert any(e["event"] == "run.resume" for e in resumed.events)
    published = json.loads((tmp_path / "out" / "resume" / "run-1" / "script.json").read_text(encoding="utf-8"))
    assert [s["sentences"] for s in published["segments"]] == [s["sentences"] for s in checkpointed["segments"]]
    assert not state.exists(), "a published run's checkpoints are dropped"

    # The same run again, from scratch (no checkpoint now) but every sentence from the cache: the same video.
    video = tmp_path / "out" / "resume" / "run-1" / "video.mp4"
    first = decoded_md5(video)
    again = _render(builder, tmp_path, "run-1")
    assert again.code == 0, again.stderr
    assert _synthesis_calls(proxy) == spoken
    assert decoded_md5(video) == first, "the same pictures and sound"
