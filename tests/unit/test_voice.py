"""The VOICEVOX client and the voice stage, against the CPU stand-in and against a scripted misbehaving engine."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from api.v1alpha1 import CastMember, Voice
from job.model import ConfigError, Script, Segment, TransientError
from job.voice.engine_client import EngineError, Retry, VoicevoxClient
from job.voice.narrator import credit_for, narrate, unspoken_warning
from tests.support.http import Reply, relay, scripted_server
from voicevox_standin.server import StandinEngine, start_standin

FAST = Retry(attempts=3, first_delay=0.01, connect_timeout=1, read_timeout=5)


@pytest.fixture(scope="module")
def engine() -> Iterator[StandinEngine]:
    with start_standin() as running:
        yield running


def _script(*sentences: str) -> Script:
    return Script(
        language="ja",
        title="テスト",
        anchor_name="アンカー",
        aired_at=datetime(2026, 11, 24, 7, tzinfo=ZoneInfo("Asia/Tokyo")),
        segments=(Segment("intro", sentences[:1]), Segment("outro", sentences[1:])),
    )


def test_narration_speaks_every_sentence_with_real_lengths_and_credits_the_voice(
    engine: StandinEngine, tmp_path: Path
) -> None:
    script = _script("こんにちは。", "今日は東京都の新しい防災計画について、詳しくお伝えします。")
    narration = narrate(script, Voice(), tmp_path, env={"ANCHOR_VOICEVOX_URL": engine.url})
    assert [u.segment for u in narration.utterances] == [0, 1]
    short, long = narration.utterances
    for utterance in narration.utterances:
        with wave.open(str(utterance.wav)) as wav:
            assert (wav.getframerate(), wav.getnchannels()) == (24000, 1)
            assert utterance.seconds == pytest.approx(wav.getnframes() / 24000)
    assert long.seconds > short.seconds * 2
    assert narration.credit.text == "VOICEVOX:ずんだもん"
    assert narration.credit.style_id == 3
    assert narration.engine.version
    assert narration.engine.device == "cpu"
    assert narration.engine.supported_devices["cpu"] is True
    client = VoicevoxClient(engine.url)
    assert client.session.get(f"{engine.url}/is_initialized_speaker", params={"speaker": 3}).json() is True


def test_voice_parameters_reach_the_audio_query(engine: StandinEngine, tmp_path: Path) -> None:
    text = ("ゆっくり話すと長くなります。",)
    normal = narrate(_script(*text), Voice(), tmp_path / "a", env={"ANCHOR_VOICEVOX_URL": engine.url})
    fast = Voice.model_validate({"speedScale": 2.0, "engineUrl": engine.url})
    quick = narrate(_script(*text), fast, tmp_path / "b", env={})
    assert quick.utterances[0].seconds < normal.utterances[0].seconds * 0.75


class _Memory:
    """A SentenceCache in a dict: what the voice stage asks of the broadcast's memory."""

    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}

    def get(self, key: str, usable: Callable[[bytes], bool] | None = None) -> bytes | None:
        found = self.kept.get(key)
        return found if found is not None and (usable is None or usable(found)) else None

    def put(self, key: str, wav: bytes) -> None:
        self.kept[key] = wav


def _dialogue(lines: list[tuple[str, str]]) -> Script:
    return Script(
        language="ja",
        title="テスト",
        anchor_name="めたん",
        aired_at=datetime(2026, 11, 24, 7, tzinfo=ZoneInfo("Asia/Tokyo")),
        segments=(Segment("intro", tuple(t for _, t in lines), None, tuple(w for w, _ in lines)),),
        cast=("めたん", "ずんだもん"),
        format="dialogue",
    )


CAST = [CastMember.model_validate({"name": "めたん", "styleId": 2}), CastMember.model_validate({"name": "ずんだもん"})]


def test_each_line_is_spoken_in_its_speakers_voice_and_each_voice_is_credited(
    engine: StandinEngine, tmp_path: Path
) -> None:
    lines = [("めたん", "こんにちは。"), ("ずんだもん", "こんにちは。"), ("めたん", "ニュースです。")]
    memory = _Memory()
    first = narrate(_dialogue(lines), Voice(), tmp_path / "a", env={"ANCHOR_VOICEVOX_URL": engine.url}, cast=CAST,
                    cache=memory)  # fmt: skip
    assert [u.speaker for u in first.utterances] == ["めたん", "ずんだもん", "めたん"]
    assert first.utterances[0].wav.read_bytes() != first.utterances[1].wav.read_bytes()  # same words, two voices
    assert len(memory.kept) == 3  # cached per voice: the same sentence twice is two entries
    assert [(c.member, c.text, c.style_id) for c in first.credits] == [
        ("めたん", "VOICEVOX:四国めたん", 2),
        ("ずんだもん", "VOICEVOX:ずんだもん", 3),
    ]
    assert first.credit_lines == ("VOICEVOX:四国めたん", "VOICEVOX:ずんだもん")
    client = VoicevoxClient(engine.url)
    assert all(client.session.get(f"{engine.url}/is_initialized_speaker", params={"speaker": s}).json() for s in (2, 3))
    # Spoken again (a resumed run): every line from the cache, in the same voices, with no engine call.
    with scripted_server(relay(engine.url)) as watched:
        again = narrate(_dialogue(lines), Voice(), tmp_path / "b", env={"ANCHOR_VOICEVOX_URL": watched.url},
                        cast=CAST, cache=memory)  # fmt: skip
    assert not [r for r in watched.requests if r.path.startswith(("/audio_query", "/synthesis"))]
    assert [u.wav.read_bytes() for u in again.utterances] == [u.wav.read_bytes() for u in first.utterances]


def test_two_members_of_one_character_ask_for_its_terms_once_and_a_stranger_gets_the_leads_voice(
    engine: StandinEngine, tmp_path: Path
) -> None:
    """A checkpoint written before the cast changed may name someone no longer in it: the lead speaks, with a
    warning, rather than the run failing."""
    cast = [CastMember.model_validate({"name": "ずんだ", "styleId": 3}),
            CastMember.model_validate({"name": "あまあま", "styleId": 1})]  # fmt: skip
    warnings: list[str] = []
    with scripted_server(relay(engine.url)) as watched:
        narration = narrate(_dialogue([("ずんだ", "はい。"), ("誰か", "こんにちは。")]), Voice(), tmp_path,
                            env={"ANCHOR_VOICEVOX_URL": watched.url}, cast=cast, warn=warnings.append)  # fmt: skip
    assert len([r for r in watched.requests if r.path.startswith("/speaker_info")]) == 1
    assert [c.text for c in narration.credits] == ["VOICEVOX:ずんだもん", "VOICEVOX:ずんだもん"]
    assert narration.credit_lines == ("VOICEVOX:ずんだもん",)
    assert [u.speaker for u in narration.utterances] == ["ずんだ", "ずんだ"]
    assert warnings == ["the script names 誰か, who is not in the cast; ずんだ speaks instead"]


def test_a_cast_members_unknown_style_is_named_by_its_place_in_the_cast(engine: StandinEngine, tmp_path: Path) -> None:
    cast = [CAST[0], CastMember.model_validate({"name": "誰か", "styleId": 9999})]
    with pytest.raises(ConfigError, match=r"spec\.cast\[1\]\.styleId 9999 is not a talk style"):
        narrate(_dialogue([("めたん", "テスト。")]), Voice(), tmp_path, env={"ANCHOR_VOICEVOX_URL": engine.url},
                cast=cast)  # fmt: skip


def test_unknown_style_fails_fast_listing_the_available_styles(engine: StandinEngine, tmp_path: Path) -> None:
    voice = Voice.model_validate({"styleId": 9999, "engineUrl": engine.url})
    with pytest.raises(ConfigError, match=r"spec\.voice\.styleId 9999 .*available: .*3 \(ずんだもん ノーマル\)"):
        narrate(_script("テスト。"), voice, tmp_path, env={})
    assert not list(tmp_path.glob("*.wav"))


def test_engine_down_is_transient_after_waiting(tmp_path: Path) -> None:
    with scripted_server(lambda *_: Reply(503, b'{"detail": "loading"}')) as server:
        url = server.url
    # The server is gone: nothing listens on that port any more.
    with pytest.raises(TransientError, match=r"not ready after 1 s .*ANCHOR_VOICEVOX_URL"):
        narrate(_script("テスト。"), Voice(), tmp_path, env={"ANCHOR_VOICEVOX_URL": url}, ready_timeout=1)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            '{"detail": "話者が見つかりません"}'.encode(),
            "application/json",
            "話者が見つかりません",
        ),
        (
            json.dumps({"detail": [{"loc": ["query", "text"], "msg": "Field required", "type": "missing"}]}).encode(),
            "application/json",
            "query.text: Field required",
        ),
        (b"plain words from a proxy", "text/plain", "plain words from a proxy"),
        (b"<html><body><h1>Bad Request</h1></body></html>", "text/html", "Bad Request"),
        (b'{"message": "odd shape"}', "application/json", "odd shape"),
    ],
)
def test_engine_errors_carry_the_engines_own_words(body: bytes, content_type: str, expected: str) -> None:
    with scripted_server(lambda *_: Reply(400, body, content_type)) as server:
        client = VoicevoxClient(server.url, retry=FAST)
        with pytest.raises(EngineError) as caught:
            client.audio_query("テスト", 3)
    assert caught.value.status == 400
    assert expected in str(caught.value)
    assert "<h1>" not in str(caught.value)


def test_transient_errors_are_retried_with_backoff() -> None:
    calls = []

    def flaky(method: str, path: str, body: bytes) -> Reply:
        calls.append(path)
        return Reply(503, b'{"detail": "busy"}') if len(calls) < 3 else Reply(200, b'"0.25.0"')

    with scripted_server(flaky) as server:
        assert VoicevoxClient(server.url, retry=FAST).version() == "0.25.0"
    assert len(calls) == 3


def test_persistent_server_errors_give_up_with_the_engines_words() -> None:
    with scripted_server(lambda *_: Reply(500, b'{"detail": "CUDA out of memory"}')) as server:
        client = VoicevoxClient(server.url, retry=FAST)
        with pytest.raises(EngineError, match="500 to /synthesis: CUDA out of memory"):
            client.synthesis({"accent_phrases": []}, 3)
        assert len(server.requests) == FAST.attempts


def test_oversized_engine_replies_are_refused() -> None:
    huge = b'"' + b"x" * (5 * 1024 * 1024) + b'"'
    with scripted_server(lambda *_: Reply(200, huge)) as server, pytest.raises(TransientError, match="larger than"):
        VoicevoxClient(server.url, retry=FAST).version()


def test_a_sentence_the_engine_refuses_is_skipped_with_a_warning(engine: StandinEngine, tmp_path: Path) -> None:
    """A 4xx for one sentence (odd characters from a feed) drops that sentence, not the broadcast."""

    def picky(method: str, path: str, body: bytes) -> Reply:
        query = parse_qs(urlsplit(path).query)
        if path.startswith("/audio_query") and "拒否" in query.get("text", [""])[0]:
            return Reply(422, b'{"detail": "refused text"}')
        return relay(engine.url)(method, path, body)

    warnings: list[str] = []
    with scripted_server(picky) as server:
        narration = narrate(
            _script("始めます。", "拒否される文。", "最後の文。"),
            Voice(),
            tmp_path,
            env={"ANCHOR_VOICEVOX_URL": server.url},
            warn=warnings.append,
        )
    assert [u.text for u in narration.utterances] == ["始めます。", "最後の文。"]
    assert len(warnings) == 1 and "refused text" in warnings[0]


def test_credit_defaults_follows_policy_and_honours_override() -> None:
    speaker = {"name": "ずんだもん", "speaker_uuid": "u"}
    style = {"name": "ノーマル", "id": 3}
    assert credit_for(speaker, style, None, None).text == "VOICEVOX:ずんだもん"
    policy = "クレジット表記は「VOICEVOX：ずんだもん」としてください。"
    assert credit_for(speaker, style, policy, None).text == "VOICEVOX:ずんだもん"
    policy = "動画には VOICEVOX:ずんだもん(CV) と表記"
    assert credit_for(speaker, style, policy, None).text == "VOICEVOX:ずんだもん"
    assert credit_for(speaker, style, policy, "ずんだもん（VOICEVOX）").text == "ずんだもん（VOICEVOX）"


def _wav_of(frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(24000)
        wav.writeframes(b"\0\0" * frames)
    return buffer.getvalue()


def test_sentences_with_nothing_to_say_are_left_out_not_spoken_as_silence(
    engine: StandinEngine, tmp_path: Path
) -> None:
    """Symbols only, or a script OpenJTalk cannot read: /audio_query has no moras, so nothing is synthesised and no
    utterance (no subtitle cue) is made; the narration counts them and the run hears one warning."""
    warnings: list[str] = []
    steps: list[tuple[int, int]] = []
    with scripted_server(relay(engine.url)) as server:
        narration = narrate(
            _script("始めます。", "！？", "…", "안녕하세요。", "最後の文。"),
            Voice(),
            tmp_path,
            env={"ANCHOR_VOICEVOX_URL": server.url},
            warn=warnings.append,
            progress=lambda step, done, total: steps.append((done, total)),
        )
        synthesised = [r for r in server.requests if r.path.startswith("/synthesis")]
    assert [u.text for u in narration.utterances] == ["始めます。", "最後の文。"]
    assert all(u.seconds > 0.3 for u in narration.utterances)
    assert narration.unspoken == ("！？", "…", "안녕하세요。")
    assert len(synthesised) == 2  # no request for what has no moras
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["0000.wav", "0004.wav"]
    [warning] = warnings
    assert warning.startswith("3 sentences with nothing the voice engine could speak")
    assert "'！？', '…', '안녕하세요。'" in warning
    assert steps[-1] == (5, 5)


@pytest.mark.parametrize("frames", [0, 400])
def test_a_wav_without_speech_is_left_out(engine: StandinEngine, tmp_path: Path, frames: int) -> None:
    """An engine that answers a WAV of 0 frames (as the real engine in mock mode does for a query with nothing to
    say), or of under 50 ms, for a sentence: no utterance, so no zero-length cue."""
    asked: list[str] = []

    def hollow(method: str, path: str, body: bytes) -> Reply:
        if path.startswith("/audio_query"):
            asked.append(parse_qs(urlsplit(path).query)["text"][0])
        if path.startswith("/synthesis") and asked[-1] == "消える文。":
            return Reply(200, _wav_of(frames), "audio/wav")
        return relay(engine.url)(method, path, body)

    with scripted_server(hollow) as server:
        narration = narrate(
            _script("始めます。", "消える文。", "最後の文。"),
            Voice(),
            tmp_path,
            env={"ANCHOR_VOICEVOX_URL": server.url},
        )
    assert [u.text for u in narration.utterances] == ["始めます。", "最後の文。"]
    assert narration.unspoken == ("消える文。",)


def test_a_script_with_nothing_to_say_at_all_is_transient(engine: StandinEngine, tmp_path: Path) -> None:
    with pytest.raises(TransientError, match=r"spoke none of the script's 2 sentences \(2 with nothing to say"):
        narrate(_script("！？", "…"), Voice(), tmp_path, env={"ANCHOR_VOICEVOX_URL": engine.url})


def test_the_unspoken_warning_lists_a_few_and_counts_the_rest() -> None:
    assert unspoken_warning(["※"]).startswith("1 sentence with nothing")
    many = unspoken_warning([f"{n}" + "x" * 50 for n in range(8)])
    assert many.startswith("8 sentences") and many.endswith("and 3 more")
    assert "'0" + "x" * 39 + "…'" in many


def test_a_sentence_kept_without_its_timing_is_spoken_once_more_and_kept_with_it(
    engine: StandinEngine, tmp_path: Path
) -> None:
    """The audio cache of a version before the cast's mouths: its WAVs carry no timing, so each sentence is spoken
    again, once, and kept with it; the cache counts that as a miss, so the run says what it synthesised."""
    from job.memory.audio_cache import AudioCache
    from job.memory.state import LocalState
    from job.voice.narrator import cache_key
    from job.voice.timing import phonemes_in

    cache = AudioCache(LocalState(tmp_path / "state"))
    voice = Voice.model_validate({"engineUrl": engine.url})
    first = narrate(_script("こんにちは。"), voice, tmp_path / "a", env={}, cache=cache)
    key = cache_key(first.engine.version, CastMember.speaking_as(voice, "アンカー"), "こんにちは。")
    untimed = io.BytesIO()
    with wave.open(untimed, "wb") as wav, wave.open(str(first.utterances[0].wav)) as spoken:
        wav.setparams(spoken.getparams())
        wav.writeframes(spoken.readframes(spoken.getnframes()))
    cache.put(key, untimed.getvalue())  # as an older version kept it
    assert phonemes_in(untimed.getvalue()) is None
    counted = AudioCache(cache.state)
    with scripted_server(relay(engine.url)) as watched:
        again = narrate(_script("こんにちは。"), voice.model_copy(update={"engine_url": watched.url}), tmp_path / "b",
                        env={}, cache=counted)  # fmt: skip
    assert len([r for r in watched.requests if r.path.startswith("/synthesis")]) == 1
    assert counted.summary()["misses"] == 1 and counted.summary()["hits"] == 0
    assert again.utterances[0].phonemes and phonemes_in(counted.get(key) or b"")
