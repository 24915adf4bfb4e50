"""The CPU stand-in speaks the VOICEVOX engine's API: shapes checked against the engine's OpenAPI document, real
accent phrases from OpenJTalk, WAVs whose length follows the moras, and FastAPI's error shapes."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import requests

from tests.support.audio import pitch
from voicevox_standin.server import StandinEngine, start_standin

REPO = Path(__file__).resolve().parents[2]
# The engine's OpenAPI document: a copy in the repository, else the shared reference beside the checkout.
OPENAPI_COPIES = (
    REPO / "tests" / "support" / "voicevox-openapi.json",
    REPO.parent / "shared" / "reference" / "voicevox-openapi.json",
)
ZUNDAMON = "388f246b-8c41-4ac1-8e2d-5d79f3ff56d9"
SENTENCE = "今日は東京で会議があります。"
# The engine declares these `X | SkipJsonSchema[None]`: its document shows only X, its replies carry null.
ENGINE_NULLABLE = {"Mora": ("consonant", "consonant_length"), "AccentPhrase": ("pause_mora",)}


@cache
def _openapi() -> dict[str, Any]:
    found = next((path for path in OPENAPI_COPIES if path.exists()), None)
    if found is None:
        pytest.fail(
            f"the VOICEVOX engine's OpenAPI document is missing; looked at {', '.join(map(str, OPENAPI_COPIES))}"
        )
    document: dict[str, Any] = json.loads(found.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    for model, fields in ENGINE_NULLABLE.items():
        for name in fields:
            schemas[model]["properties"][name] = {"anyOf": [schemas[model]["properties"][name], {"type": "null"}]}
    return document


def assert_documented(path: str, method: str, status: int, body: Any) -> None:
    """The body matches the schema the engine's document gives for this path, method and status."""
    document = _openapi()
    response = document["paths"][path][method]["responses"][str(status)]
    schema = {**response["content"]["application/json"]["schema"], "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def assert_validation_error(response: requests.Response, *locations: list[Any]) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    body = response.json()
    jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/HTTPValidationError", "components": _openapi()["components"]}
    ).validate(body)
    assert [error["loc"] for error in body["detail"]][: len(locations)] == list(locations)
    errors: list[dict[str, Any]] = body["detail"]
    return errors


@pytest.fixture(scope="module")
def engine() -> Iterator[StandinEngine]:
    with start_standin() as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def query_for(engine: StandinEngine, http: requests.Session, text: str, speaker: int = 3) -> dict[str, Any]:
    response = http.post(f"{engine.url}/audio_query", params={"text": text, "speaker": str(speaker)}, timeout=30)
    assert response.status_code == 200, response.text
    query: dict[str, Any] = response.json()
    return query


def synthesise(
    engine: StandinEngine, http: requests.Session, query: dict[str, Any], speaker: int = 3
) -> wave.Wave_read:
    response = http.post(f"{engine.url}/synthesis", params={"speaker": speaker}, json=query, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.content[:4] == b"RIFF" and response.content[8:12] == b"WAVE"
    return wave.open(io.BytesIO(response.content), "rb")


def seconds(wav: wave.Wave_read) -> float:
    return wav.getnframes() / wav.getframerate()


# -- documented shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("get", "/version", {}),
        ("get", "/engine_manifest", {}),
        ("get", "/speakers", {}),
        ("get", "/speaker_info", {"speaker_uuid": ZUNDAMON}),
        ("get", "/speaker_info", {"speaker_uuid": ZUNDAMON, "resource_format": "url"}),
        ("get", "/supported_devices", {}),
        ("get", "/is_initialized_speaker", {"speaker": 3}),
        ("post", "/audio_query", {"text": "こんにちは、元気ですか？", "speaker": 3}),
    ],
)
def test_json_endpoints_answer_in_the_documented_shape(
    engine: StandinEngine, http: requests.Session, method: str, path: str, params: dict[str, Any]
) -> None:
    response = http.request(method.upper(), f"{engine.url}{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert_documented(path, method, 200, response.json())


def test_version_and_manifest_say_it_is_the_stand_in(engine: StandinEngine, http: requests.Session) -> None:
    assert "standin" in http.get(f"{engine.url}/version", timeout=5).json()
    manifest = http.get(f"{engine.url}/engine_manifest", timeout=5).json()
    assert manifest["default_sampling_rate"] == 24000
    assert "OpenJTalk" in manifest["terms_of_service"]
    # It claims only what it does: no morphing, no per-mora pitch.
    assert manifest["supported_features"]["synthesis_morphing"] is False
    assert manifest["supported_features"]["adjust_mora_pitch"] is False
    assert http.get(f"{engine.url}/supported_devices", timeout=5).json() == {"cpu": True, "cuda": False, "dml": False}


def test_catalogue_mirrors_the_real_engines_characters(engine: StandinEngine, http: requests.Session) -> None:
    speakers = http.get(f"{engine.url}/speakers", timeout=5).json()
    styles = {(s["name"], s["speaker_uuid"], style["name"], style["id"]) for s in speakers for style in s["styles"]}
    assert styles == {
        ("ずんだもん", ZUNDAMON, "ノーマル", 3),
        ("ずんだもん", ZUNDAMON, "あまあま", 1),
        ("四国めたん", "7ffcb7ce-00ec-4bdc-82cd-45a8889e43ff", "ノーマル", 2),
        ("四国めたん", "7ffcb7ce-00ec-4bdc-82cd-45a8889e43ff", "あまあま", 0),
        ("春日部つむぎ", "35b2c544-660e-401e-b503-0e14c635303a", "ノーマル", 8),
    }


def test_speaker_info_names_the_credit_and_serves_real_pictures(engine: StandinEngine, http: requests.Session) -> None:
    info = http.get(f"{engine.url}/speaker_info", params={"speaker_uuid": ZUNDAMON}, timeout=5).json()
    assert "VOICEVOX:ずんだもん" in info["policy"]
    assert "stand-in" in info["policy"] and "OpenJTalk" in info["policy"]
    assert base64.b64decode(info["portrait"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(s["id"] for s in info["style_infos"]) == [1, 3]

    by_url = http.get(
        f"{engine.url}/speaker_info", params={"speaker_uuid": ZUNDAMON, "resource_format": "url"}, timeout=5
    ).json()
    assert by_url["portrait"].startswith(f"{engine.url}/_resources/")
    picture = http.get(by_url["style_infos"][0]["icon"], timeout=5)
    assert picture.headers["Content-Type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_character_is_404_with_detail(engine: StandinEngine, http: requests.Session) -> None:
    response = http.get(f"{engine.url}/speaker_info", params={"speaker_uuid": "no-such-uuid"}, timeout=5)
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


# -- accent phrases ------------------------------------------------------------------------------------------


def test_audio_query_has_real_accent_phrases_and_moras(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, SENTENCE)
    phrases = query["accent_phrases"]
    assert len(phrases) >= 3
    # Mora texts come from the phonemes, as in the engine: 東京 (トーキョー) is ト オ キョ オ.
    assert "".join(m["text"] for p in phrases for m in p["moras"]) == "キョオワトオキョオデカイギガアリマス"
    tokyo = next(p for p in phrases if p["moras"][0]["text"] == "ト")
    assert [(m["consonant"], m["vowel"]) for m in tokyo["moras"][:3]] == [("t", "o"), (None, "o"), ("ky", "o")]
    assert tokyo["accent"] == len(tokyo["moras"])  # 東京で is flat: VOICEVOX writes that as accent = mora count
    kyou = phrases[0]
    assert kyou["accent"] == 1  # 今日は: キョ'オワ, the fall after the first mora
    assert kyou["moras"][0]["pitch"] > kyou["moras"][1]["pitch"] > 0
    last = phrases[-1]["moras"][-1]
    assert (last["text"], last["vowel"], last["pitch"]) == ("ス", "U", 0.0)  # the devoiced す of ます
    for mora in (m for p in phrases for m in p["moras"]):
        assert 0.0 < mora["vowel_length"] < 0.3
        assert (mora["consonant"] is None) == (mora["consonant_length"] is None)
    assert query["kana"] == "キョ'オワ/トオキョオデ'/カ'イギガ/アリマ'_ス"
    defaults = {k: v for k, v in query.items() if k not in ("accent_phrases", "kana")}
    assert defaults == {
        "speedScale": 1.0,
        "pitchScale": 0.0,
        "intonationScale": 1.0,
        "volumeScale": 1.0,
        "prePhonemeLength": 0.1,
        "postPhonemeLength": 0.1,
        "pauseLength": None,
        "pauseLengthScale": 1.0,
        "outputSamplingRate": 24000,
        "outputStereo": False,
    }


def test_punctuation_gives_pause_moras_and_a_question_is_interrogative(
    engine: StandinEngine, http: requests.Session
) -> None:
    phrases = query_for(engine, http, "はい、そうです。本当ですか？")["accent_phrases"]
    pauses = [p["pause_mora"] for p in phrases if p["pause_mora"] is not None]
    assert len(pauses) == 2
    assert all((m["text"], m["vowel"], m["consonant"]) == ("、", "pau", None) for m in pauses)
    assert phrases[-1]["pause_mora"] is None
    assert phrases[-1]["is_interrogative"] is True
    assert not any(p["is_interrogative"] for p in phrases[:-1])


def test_english_is_read_in_katakana(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, "Hello world")
    assert query["accent_phrases"] and query["kana"]
    assert seconds(synthesise(engine, http, query)) > 0.5


# -- synthesis -----------------------------------------------------------------------------------------------


def test_synthesis_is_24khz_mono_16bit_and_as_long_as_its_moras(engine: StandinEngine, http: requests.Session) -> None:
    wav = synthesise(engine, http, query_for(engine, http, SENTENCE))
    assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
    assert 1.2 < seconds(wav) < 4.0  # 18 moras and the 0.2 s of silence around them


def test_synthesis_honours_sampling_rate_and_stereo(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, SENTENCE)
    mono = synthesise(engine, http, query)
    stereo = synthesise(engine, http, {**query, "outputSamplingRate": 48000, "outputStereo": True})
    assert (stereo.getframerate(), stereo.getnchannels(), stereo.getsampwidth()) == (48000, 2, 2)
    assert seconds(stereo) == pytest.approx(seconds(mono), abs=0.01)


def test_longer_text_gives_longer_audio_and_speed_two_halves_it(engine: StandinEngine, http: requests.Session) -> None:
    short = seconds(synthesise(engine, http, query_for(engine, http, "こんにちは。")))
    query = query_for(engine, http, "今日は東京都の新しい防災計画について、詳しくお伝えします。")
    long = seconds(synthesise(engine, http, query))
    fast = seconds(synthesise(engine, http, {**query, "speedScale": 2.0}))
    assert long > short * 2.5
    assert 0.4 < fast / long < 0.62


def test_each_character_speaks_in_a_voice_of_its_own(engine: StandinEngine, http: requests.Session) -> None:
    """A dialogue on the stand-in is two voices to a listener: 四国めたん (2) and ずんだもん (3) lie far apart."""
    heights = {}
    for style in (2, 3, 8):
        wav = synthesise(engine, http, query_for(engine, http, SENTENCE, style), style)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        heights[style] = pitch(samples, wav.getframerate())
    semitones = 12 * math.log2(heights[3] / heights[2])
    assert semitones > 4.5, heights  # a fourth and more: two people, not one voice's mood
    assert heights[2] < heights[8] < heights[3], heights


def test_synthesis_reads_the_moras_not_the_text(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, SENTENCE)
    whole = seconds(synthesise(engine, http, query))
    first_phrase_only = {**query, "accent_phrases": query["accent_phrases"][:1]}
    assert seconds(synthesise(engine, http, first_phrase_only)) < whole * 0.5


def test_pauses_pre_and_post_silence_follow_the_query(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, "はい、そうです。")
    base = seconds(synthesise(engine, http, query))
    longer_pause = seconds(synthesise(engine, http, {**query, "pauseLength": 1.35}))
    padded = seconds(synthesise(engine, http, {**query, "prePhonemeLength": 0.6, "postPhonemeLength": 1.1}))
    assert longer_pause - base == pytest.approx(1.0, abs=0.01)  # the one pause: 0.35 s → 1.35 s
    assert padded - base == pytest.approx(1.5, abs=0.01)


def test_volume_scale_scales_the_samples(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, "こんにちは。")

    def peak(volume: float) -> int:
        wav = synthesise(engine, http, {**query, "volumeScale": volume})
        frames = wav.readframes(wav.getnframes())
        return max(abs(int.from_bytes(frames[i : i + 2], "little", signed=True)) for i in range(0, len(frames), 2))

    assert peak(0.0) == 0
    assert peak(0.5) == pytest.approx(peak(1.0) / 2, rel=0.02)


SYMBOLS_ONLY = ("！？", "!?", "…", "※", "（）", "。")


@pytest.mark.parametrize("text", SYMBOLS_ONLY)
def test_text_with_nothing_to_say_gives_an_empty_query(
    engine: StandinEngine, http: requests.Session, text: str
) -> None:
    # The engine: text_to_full_context_labels finds no phoneme in symbols, full_context_labels_to_accent_phrases makes
    # no phrase of no label, create_kana([]) is "" (voicevox_engine/tts_pipeline/njd_feature_processor.py,
    # text_analyzer.py, kana_converter.py; /audio_query in voicevox_engine/app/routers/tts_pipeline.py).
    query = query_for(engine, http, text)
    assert_documented("/audio_query", "post", 200, query)
    assert (query["accent_phrases"], query["kana"]) == ([], "")
    assert (query["prePhonemeLength"], query["postPhonemeLength"]) == (0.1, 0.1)


def _frames_and_header(engine: StandinEngine, http: requests.Session, query: dict[str, Any]) -> tuple[int, bytes]:
    response = http.post(f"{engine.url}/synthesis", params={"speaker": 3}, json=query, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        frames = wav.getnframes()
        assert set(wav.readframes(frames)) <= {0}, "nothing to say is silence"
    assert len(response.content) == 44 + 2 * frames  # RIFF, fmt and data headers only: no other chunk
    return frames, response.content[:44]


def test_a_query_with_no_moras_is_the_engines_silence_in_whole_frames(
    engine: StandinEngine, http: requests.Session
) -> None:
    # The engine with its core (voicevox_engine/tts_pipeline/tts_engine.py): _query_to_decoder_feature puts a silent
    # mora of prePhonemeLength before and of postPhonemeLength after the (here no) moras, divides them by speedScale,
    # _to_frame rounds each to frames of 93.75 Hz (half to even), and the decoder (CoreWrapper.decode_forward in
    # voicevox_engine/core/core_wrapper.py) gives 256 samples at 24 kHz a frame: 2 x round(9.375) = 18 frames.
    query = query_for(engine, http, "！？")
    frames, header = _frames_and_header(engine, http, query)
    assert frames == 18 * 256  # 0.192 s: not the 0.2 s of the query's nominal silence
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt " and header[36:40] == b"data"
    assert _frames_and_header(engine, http, {**query, "speedScale": 2.0})[0] == 2 * round(0.05 * 93.75) * 256
    # No silence asked for: no frame at all, the header of an empty WAV. The engine started with --enable_mock
    # answers this even with the default silences (voicevox_engine/dev/tts_engine/mock.py speaks only the moras'
    # text); the job must cope with both.
    empty, header = _frames_and_header(engine, http, {**query, "prePhonemeLength": 0.0, "postPhonemeLength": 0.0})
    assert empty == 0
    assert int.from_bytes(header[4:8], "little") == 36 and int.from_bytes(header[40:44], "little") == 0


def test_concurrent_syntheses_are_served_one_at_a_time_and_agree(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, "同時に頼んでも同じ声です。")

    def wav_bytes(_: int) -> bytes:
        response = requests.post(f"{engine.url}/synthesis", params={"speaker": 3}, json=query, timeout=60)
        assert response.status_code == 200
        return response.content

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(wav_bytes, range(3)))
    assert results[0] == results[1] == results[2]


# -- errors --------------------------------------------------------------------------------------------------


# What the engine answers for a style id it does not have: CoreAdapter._assert_style_exists raises CoreStyleIdError
# with these words (voicevox_engine/core/core_adapter.py), configure_global_exception_handlers turns it into a 422
# with this body and no `detail` (voicevox_engine/app/global_exceptions.py); the upstream snapshots
# test/e2e/__snapshots__/test_invalid_style_id/*.json show the same body.
UNKNOWN_STYLE = {"message": "指定されたスタイルが見つかりませんでした。"}


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("post", "/audio_query", {"text": "テスト", "speaker": 9999}),
        ("post", "/audio_query", {"text": "！？", "speaker": 9999}),  # checked even with nothing to say
        ("post", "/initialize_speaker", {"speaker": 9999}),
        ("post", "/initialize_speaker", {"speaker": -1024, "skip_reinit": "true"}),
        ("get", "/is_initialized_speaker", {"speaker": 9999}),
    ],
)
def test_unknown_style_is_422_with_the_engines_message_only(
    engine: StandinEngine, http: requests.Session, method: str, path: str, params: dict[str, Any]
) -> None:
    response = http.request(method.upper(), f"{engine.url}{path}", params=params, timeout=5)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == UNKNOWN_STYLE


def test_unknown_style_in_synthesis(engine: StandinEngine, http: requests.Session) -> None:
    query = query_for(engine, http, "テスト")
    response = http.post(f"{engine.url}/synthesis", params={"speaker": 9999}, json=query, timeout=5)
    assert (response.status_code, response.json()) == (422, UNKNOWN_STYLE)
    # An invalid body is FastAPI's validation error first, whatever the style.
    invalid = http.post(f"{engine.url}/synthesis", params={"speaker": 9999}, json={}, timeout=5)
    assert_validation_error(invalid, ["body", "accent_phrases"])


def test_missing_or_malformed_parameters_are_fastapi_validation_errors(
    engine: StandinEngine, http: requests.Session
) -> None:
    missing = http.post(f"{engine.url}/audio_query", params={"speaker": 3}, timeout=5)
    [error] = assert_validation_error(missing, ["query", "text"])
    assert (error["type"], error["msg"]) == ("missing", "Field required")

    assert_validation_error(
        http.post(f"{engine.url}/audio_query", params={"text": "あ", "speaker": "x"}, timeout=5), ["query", "speaker"]
    )
    too_long = http.post(f"{engine.url}/audio_query", params={"text": "あ" * 1001, "speaker": "3"}, timeout=5)
    assert_validation_error(too_long, ["query", "text"])
    assert_validation_error(
        http.get(f"{engine.url}/speaker_info", params={"speaker_uuid": ZUNDAMON, "resource_format": "png"}, timeout=5),
        ["query", "resource_format"],
    )
    assert_validation_error(
        http.post(f"{engine.url}/initialize_speaker", params={"speaker": "3", "skip_reinit": "perhaps"}, timeout=5),
        ["query", "skip_reinit"],
    )


def test_invalid_synthesis_bodies_are_422(engine: StandinEngine, http: requests.Session) -> None:
    url = f"{engine.url}/synthesis"
    assert_validation_error(http.post(url, params={"speaker": 3}, timeout=5), ["body"])
    broken = http.post(
        url, params={"speaker": 3}, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert assert_validation_error(broken, ["body", 1])[0]["type"] == "json_invalid"

    query = query_for(engine, http, "テスト")
    wrong = copy.deepcopy(query)
    wrong["speedScale"] = "fast"
    del wrong["accent_phrases"][0]["moras"][0]["vowel"]
    errors = assert_validation_error(http.post(url, params={"speaker": 3}, json=wrong, timeout=5))
    assert {tuple(e["loc"]) for e in errors} == {
        ("body", "accent_phrases", 0, "moras", 0, "vowel"),
        ("body", "speedScale"),
    }
    # Values that would crash a synthesis, or ask for an hour of audio, are refused the same way.
    hour = {**query, "accent_phrases": query["accent_phrases"] * 2000, "speedScale": 0.25}
    assert (
        "at most 600 s"
        in assert_validation_error(http.post(url, params={"speaker": 3}, json=hour, timeout=10), ["body"])[0]["msg"]
    )
    assert_validation_error(
        http.post(url, params={"speaker": 3}, json={**query, "speedScale": 0}, timeout=5), ["body", "speedScale"]
    )


def test_initialize_speaker_is_204_with_an_empty_body(engine: StandinEngine, http: requests.Session) -> None:
    assert http.get(f"{engine.url}/is_initialized_speaker", params={"speaker": 1}, timeout=5).json() is False
    response = http.post(f"{engine.url}/initialize_speaker", params={"speaker": "1", "skip_reinit": "true"}, timeout=5)
    assert response.status_code == 204
    assert response.content == b""
    assert http.get(f"{engine.url}/is_initialized_speaker", params={"speaker": 1}, timeout=5).json() is True


def test_unknown_path_and_wrong_method_use_fastapis_shapes(engine: StandinEngine, http: requests.Session) -> None:
    missing = http.get(f"{engine.url}/no_such_endpoint", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong = http.get(f"{engine.url}/synthesis", timeout=5)
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    assert wrong.headers["Allow"] == "POST"


def test_oversize_body_is_413_and_the_connection_stays_usable(engine: StandinEngine, http: requests.Session) -> None:
    response = http.post(f"{engine.url}/synthesis", params={"speaker": 3}, data=b"x" * (1024 * 1024 + 1), timeout=10)
    assert response.status_code == 413
    assert "1048576" in response.json()["detail"]
    assert http.get(f"{engine.url}/version", timeout=5).status_code == 200


def test_a_non_loopback_host_is_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match=r"refusing to listen on 0\.0\.0\.0.*--allow-remote"):
        start_standin("0.0.0.0")


# -- the command ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_command_serves_until_sigterm_and_logs_each_request(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicevox_standin", "--port", str(port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            deadline = time.monotonic() + 30
            version = None
            while version is None:
                try:
                    version = requests.get(f"http://127.0.0.1:{port}/version", timeout=2).json()
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, "the stand-in did not answer /version within 30 s"
                    # Waiting on the process doubles as the poll interval and notices an early exit.
                    with pytest.raises(subprocess.TimeoutExpired):
                        process.wait(timeout=0.1)
            assert "standin" in version
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    text = log.read_text(encoding="utf-8")
    assert f"listening on http://127.0.0.1:{port}" in text
    assert '"GET /version" 200' in text
    assert "stopped" in text


def test_command_refuses_a_remote_host_without_the_flag() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "voicevox_standin", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 2
    assert "--allow-remote" in completed.stderr


@pytest.mark.parametrize("speed", [1.0, 1.4])
def test_the_sound_is_where_the_query_times_it_as_the_engine_does(
    engine: StandinEngine, http: requests.Session, speed: float
) -> None:
    """What the cast's mouths rely on: the WAV lasts exactly the frames the engine's rules give the query (a
    question's rising mora included), its pauses are silent and its vowels are sound."""
    from job.voice.timing import phonemes

    query = {**query_for(engine, http, "今日は、晴れですか？"), "speedScale": speed}
    wav = synthesise(engine, http, query)
    rate = wav.getframerate()
    samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    timed = phonemes(query)
    assert len(samples) == round(timed[-1].end * rate)

    def level(start: float, end: float) -> float:
        return float(np.sqrt(np.mean(samples[round(start * rate) : round(end * rate)] ** 2)))

    assert [round(level(p.start, p.end)) for p in timed if p.phoneme in ("pau", "sil")] == [0, 0, 0]
    voiced = [level(p.start, p.end) for p in timed if p.phoneme in "aiueo"]
    assert min(voiced) > 100, voiced
