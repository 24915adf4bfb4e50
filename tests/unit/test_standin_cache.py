"""The stand-in's speech cache (voicevox_standin/cache.py): a request answered before gets the same bytes without
OpenJTalk, what is refused is never cached, and entries unused for a while are dropped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from voicevox_standin import speech
from voicevox_standin.cache import SpeechCache, from_env
from voicevox_standin.server import start_standin


def test_a_sentence_spoken_before_is_answered_from_the_cache_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SpeechCache(tmp_path / "speech")
    with start_standin(cache=cache) as engine, requests.Session() as http:
        params = {"text": "きょうのニュースです。", "speaker": 3}
        first = http.post(f"{engine.url}/audio_query", params=params, timeout=30)
        wav = http.post(f"{engine.url}/synthesis", params={"speaker": 3}, data=first.content, timeout=30)
        assert first.status_code == wav.status_code == 200 and wav.content[:4] == b"RIFF"
        assert len(list((tmp_path / "speech").iterdir())) == 2

        def silent(*_args: object, **_kwargs: object) -> object:
            raise AssertionError("OpenJTalk was asked again")

        monkeypatch.setattr(speech, "audio_query", silent)
        monkeypatch.setattr(speech, "synthesise", silent)
        again = http.post(f"{engine.url}/audio_query", params=params, timeout=30)
        wav_again = http.post(f"{engine.url}/synthesis", params={"speaker": 3}, data=first.content, timeout=30)
        assert (again.content, wav_again.content) == (first.content, wav.content)
        assert again.headers["Content-Type"] == "application/json" and wav_again.headers["Content-Type"] == "audio/wav"
        other_voice = http.post(f"{engine.url}/synthesis", params={"speaker": 2}, data=first.content, timeout=5)
        assert other_voice.status_code == 500, "another voice is a new request: OpenJTalk was asked (and refused here)"
        refused = http.post(f"{engine.url}/synthesis", params={"speaker": 999999}, data=first.content, timeout=5)
        assert refused.status_code == 422
    assert len(list((tmp_path / "speech").iterdir())) == 2, "only what was spoken is kept"


def test_entries_unused_for_two_weeks_are_dropped_when_the_cache_is_opened(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path)
    cache.put("old", b"said in November")
    cache.put("recent", b"said today")
    weeks_ago = time.time() - 15 * 86400
    os.utime(tmp_path / "old", (weeks_ago, weeks_ago))
    reopened = SpeechCache(tmp_path)
    assert reopened.get("old") is None and reopened.get("recent") == b"said today"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]


def test_the_cache_is_off_unless_a_directory_is_named(tmp_path: Path) -> None:
    assert from_env({}) is None and from_env({"ANCHOR_STANDIN_CACHE_DIR": " "}) is None
    named = from_env({"ANCHOR_STANDIN_CACHE_DIR": str(tmp_path / "c")})
    assert named is not None and named.directory == tmp_path / "c" and named.directory.is_dir()


def test_an_answer_spoken_by_other_code_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key holds the stand-in's code and OpenJTalk's version: after a change to either, nothing old is read."""
    from voicevox_standin import cache

    before = SpeechCache.key("/synthesis", {"speaker": "3"}, b"{}")
    assert before == SpeechCache.key("/synthesis", {"speaker": "3"}, b"{}")
    monkeypatch.setattr(cache, "code_version", lambda: "speech.py as edited")
    assert SpeechCache.key("/synthesis", {"speaker": "3"}, b"{}") != before
