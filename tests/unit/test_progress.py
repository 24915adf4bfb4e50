"""Progress and logs: JSON lines off a terminal, bars on one, secrets blanked; the result stays under 4 KiB."""

from __future__ import annotations

import io
import json

from api.result import RunResult
from job.progress import Reporter

SECRET = "s3cr3t-value-9f8e7d"


def test_json_lines_carry_context_and_blank_secrets() -> None:
    stream = io.StringIO()
    reporter = Reporter(env={"ANCHOR_S3_SECRET_ACCESS_KEY": SECRET}, stream=stream, interactive=False)
    reporter.context.update(broadcast="b", run="r")
    reporter.event("store.failed", f"upload to http://minio:9000?secret={SECRET} refused", level="error")
    reporter.warn(f"token {SECRET} in a feed URL")
    for done in range(0, 101):
        reporter.progress("render", done, 100)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert SECRET not in stream.getvalue()
    assert lines[0]["event"] == "store.failed" and lines[0]["level"] == "error"
    assert lines[0]["broadcast"] == "b" and "***" in lines[0]["message"]
    assert reporter.warnings == ["token *** in a feed URL"]
    progress = [line for line in lines if line["event"] == "progress"]
    assert [p["percent"] for p in progress] == list(range(0, 101, 10))


def test_terminal_shows_bars_and_plain_messages() -> None:
    stream = io.StringIO()
    reporter = Reporter(env={}, stream=stream, interactive=True)
    reporter.progress("voice", 1, 4)
    reporter.progress("voice", 4, 4)
    reporter.event("voice.done", "4 sentences spoken")
    text = stream.getvalue()
    assert "voice" in text and "4/4" in text and "4 sentences spoken\n" in text
    assert not text.lstrip().startswith("{")


def test_result_is_compacted_under_the_termination_message_limit() -> None:
    result = RunResult(
        status="Failed",
        broadcast="b",
        run_id="r",
        exit_code=75,
        message="x" * 5000,
        warnings=[f"feed {n} skipped: " + "y" * 200 for n in range(50)],
        credits=["VOICEVOX:ずんだもん"],
    )
    compact = result.compact_json(4096)
    assert len(compact.encode()) <= 4096
    parsed = RunResult.parse(compact)
    assert parsed.status == "Failed" and parsed.exit_code == 75 and parsed.credits == ["VOICEVOX:ずんだもん"]
    assert len(parsed.warnings) < 50
