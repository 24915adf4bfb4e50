"""End-to-end fixtures: a feed server, the stand-in engine, and `anchor` run as users run it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import a_broadcast
from tests.support.http import Reply, ScriptedServer, scripted_server
from voicevox_standin.cache import VARIABLE as STANDIN_CACHE
from voicevox_standin.cache import from_env
from voicevox_standin.server import StandinEngine, start_standin

REPO = Path(__file__).resolve().parents[2]
FEEDS = {
    "/ja.xml": REPO / "job" / "sample" / "feed-ja.xml",
    "/en.atom": REPO / "job" / "sample" / "feed-en.xml",
    "/rdf.xml": Path(__file__).parent / "feeds" / "rdf.xml",
}
SLOW_FEED_DELAY = 1.0


def _feed_route(method: str, path: str, body: bytes) -> Reply:
    if path in FEEDS:
        return Reply(200, FEEDS[path].read_bytes(), "application/rss+xml; charset=utf-8")
    if path == "/broken.xml":
        return Reply(200, b"\x00\x01 not a feed at all {", "application/rss+xml")
    if path == "/slow.xml":
        threading.Event().wait(SLOW_FEED_DELAY)  # the server is slow on purpose; the client must cope
        return Reply(200, FEEDS["/ja.xml"].read_bytes(), "application/rss+xml; charset=utf-8")
    return Reply(404, b"not found", "text/plain")


@pytest.fixture(scope="session")
def feed_server() -> Iterator[ScriptedServer]:
    with scripted_server(_feed_route) as server:
        yield server


@pytest.fixture(scope="session")
def engine() -> Iterator[StandinEngine]:
    with start_standin(cache=from_env()) as running:
        yield running


@dataclass
class AnchorRun:
    code: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        lines = self.stdout.strip().splitlines()
        assert lines, f"no result line; stderr:\n{self.stderr}"
        parsed: dict[str, Any] = json.loads(lines[-1])
        return parsed

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]


def run_anchor(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> AnchorRun:
    """`python -m job ARGS` with a clean environment: no inherited secrets, structured logs (not a TTY)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH", STANDIN_CACHE)}
    completed = subprocess.run(
        [sys.executable, "-m", "anchor", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return AnchorRun(completed.returncode, completed.stdout, completed.stderr)


def render_feed_text(
    work: Path, name: str, feed: str, engine: StandinEngine, *, title: str, stories: int, fps: int = 10
) -> tuple[AnchorRun, Path]:
    """Render a Japanese broadcast of one local feed (given as its XML) at 720p: the run, and its folder."""
    (work / "feed.xml").write_text(feed, encoding="utf-8")
    broadcast = (
        a_broadcast(name)
        .feed("feed.xml")
        .sources(maxAgeHours=0)
        .script(language="ja", title=title, stories=stories)
        .video(resolution="1280x720", fps=fps)
        .output(directory=str(work / "out"))
        .set(timeZone="Asia/Tokyo")
        .write(work / "broadcast.yaml")
    )
    run = run_anchor("render", str(broadcast), "--run-id", "run-1", env={"ANCHOR_VOICEVOX_URL": engine.url})
    return run, work / "out" / name / "run-1"
