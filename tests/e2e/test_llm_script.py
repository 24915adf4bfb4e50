"""spec.script.llm through a whole run: a local server speaking OpenAI's chat-completions protocol writes the
stories' words; when it fails, the templates speak and the run says why. The API key never leaves the request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import run_anchor
from tests.support.builders import a_broadcast
from tests.support.http import Reply, ScriptedServer, scripted_server
from voicevox_standin.server import StandinEngine

pytestmark = pytest.mark.e2e
KEY = "sk-e2e-secret-0123456789"


def _writer(method: str, path: str, body: bytes, *, dirty: bool = False) -> Reply:
    """Words for each story it is given, as a model would answer (JSON in the message content); `dirty`: as many
    models do answer, with a link, tags and emoji in the words and prose around the JSON."""
    request = json.loads(body)
    stories = json.loads(request["messages"][1]["content"])["stories"]
    words = "In short: <b>{title}</b> 📰 was reported by {source}, see https://news.example/{story}?ref=llm."
    if not dirty:
        words = "In short: {title} was reported by {source}."
    segments = [{"story": s["story"], "text": words.format(**s)} for s in stories]
    content = json.dumps({"segments": segments})
    completion = {
        "id": "chatcmpl-e2e",
        "object": "chat.completion",
        "model": request["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant",
                                     "content": f"Here is the script: {content}" if dirty else content},
             "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 300, "completion_tokens": 60, "total_tokens": 360},
    }  # fmt: skip
    return Reply(200, json.dumps(completion).encode())


def _run(
    feeds: ScriptedServer, engine: StandinEngine, llm: ScriptedServer, tmp_path: Path
) -> tuple[dict[str, Any], str]:
    path = (
        a_broadcast("llm-news")
        .feed(f"{feeds.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="en", stories=2, llm={"endpoint": f"{llm.url}/v1", "model": "local-model",
                                                "apiKeySecret": {"name": "llm", "key": "apiKey"}})
        .voice(engineUrl=engine.url)
        .video(resolution="1280x720", fps=10)  # what is checked is the words, not the motion
        .output(directory=str(tmp_path / "out"))
        .write(tmp_path / "broadcast.yaml")
    )  # fmt: skip
    run = run_anchor("render", str(path), "--run-id", "run-1", env={"ANCHOR_LLM_API_KEY": KEY}, cwd=tmp_path)
    assert run.code == 0, run.stderr
    assert KEY not in run.stdout + run.stderr
    published = tmp_path / "out" / "llm-news" / "run-1"
    assert KEY not in (published / "manifest.json").read_text() + (published / "script.json").read_text()
    return run.result, (published / "script.json").read_text(encoding="utf-8")


def test_the_llm_writes_each_storys_words_and_the_run_says_so(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    with scripted_server(_writer) as llm:
        result, script = _run(feed_server, engine, llm, tmp_path)
    assert result["scriptWriter"] == "llm:local-model"
    sentences = [s for segment in json.loads(script)["segments"] for s in segment["sentences"]]
    assert sum(s.startswith("In short:") for s in sentences) == 2
    assert llm.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    manifest = json.loads((tmp_path / "out" / "llm-news" / "run-1" / "manifest.json").read_text())
    assert manifest["script"] == {"writer": "llm:local-model"}


def test_an_llm_that_fails_leaves_the_templates_and_a_warning(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    failing = Reply(
        503, json.dumps({"error": {"message": "The server is overloaded", "type": "server_error"}}).encode()
    )
    with scripted_server(lambda _m, _p, _b: failing) as llm:
        result, script = _run(feed_server, engine, llm, tmp_path)
    assert result["scriptWriter"] == "templates"
    assert any("HTTP 503: The server is overloaded" in w and "templates were used" in w for w in result["warnings"])
    assert not any("In short" in s for seg in json.loads(script)["segments"] for s in seg["sentences"])


def test_the_models_links_tags_and_emoji_neither_speak_nor_show(
    feed_server: ScriptedServer, engine: StandinEngine, tmp_path: Path
) -> None:
    with scripted_server(lambda m, p, b: _writer(m, p, b, dirty=True)) as llm:
        result, script = _run(feed_server, engine, llm, tmp_path)
    assert result["scriptWriter"] == "llm:local-model"  # the JSON in its prose was taken
    published = tmp_path / "out" / "llm-news" / "run-1"
    sentences = [s for segment in json.loads(script)["segments"] for s in segment["sentences"]]
    assert sum("was reported by Anchor Sample Wire" in s for s in sentences) == 2, sentences
    for shown in (
        json.dumps(sentences),
        (published / "subtitles.srt").read_text(),
        (published / "subtitles.vtt").read_text(),
    ):
        assert "was reported by" in shown
        for residue in ("http", "news.example", "<b>", "</b>", "📰", "ref=llm"):
            assert residue not in shown, (residue, shown)
