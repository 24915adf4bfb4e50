"""The LLM script writer against a local server speaking OpenAI's chat-completions protocol, with the answers and
error shapes real endpoints send (OpenAI's, vLLM's): every failure gives a reason and no texts, never an exception."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest

from api.v1alpha1 import Llm
from job.model import Story
from job.script.dialogue import Turn
from job.script.llm import MAX_ANSWER_BYTES, write_dialogue_with_llm, write_with_llm
from tests.support.http import Reply, ScriptedServer, scripted_server

STORIES = [
    Story(
        "港区で新しい橋が開通",
        "https://news.example/1",
        "NHK",
        "港区で新しい橋が開通しました。通勤時間が短くなります。",
    ),
    Story("大雪の予報", "https://news.example/2", "NHK", "明日は北日本で大雪の予報です。"),
]
KEY = "sk-test-0123456789abcdef"


def _completion(content: str | None, *, finish: str = "stop", refusal: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-123",
            "object": "chat.completion",
            "created": 1764489600,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
        },
        ensure_ascii=False,
    ).encode()


def _segments(*texts: tuple[int, str]) -> str:
    return json.dumps({"segments": [{"story": n, "text": t} for n, t in texts]}, ensure_ascii=False)


GOOD = _segments((1, "港区で新しい橋が開通し、通勤時間が短くなります。"), (2, "明日は北日本で大雪となる見込みです。"))


@pytest.fixture
def serve() -> Iterator[Callable[[Reply], ScriptedServer]]:
    servers = []

    def start(reply: Reply) -> ScriptedServer:
        context = scripted_server(lambda _m, _p, _b: reply)
        servers.append(context)
        return context.__enter__()

    yield start
    for context in servers:
        context.__exit__(None, None, None)


def _spec(server: ScriptedServer, timeout: int = 10) -> Llm:
    return Llm.model_validate({"endpoint": f"{server.url}/v1", "model": "gpt-4o-mini", "timeoutSeconds": timeout})


def _write(spec: Llm, key: str | None = KEY) -> object:
    return write_with_llm(STORIES, spec, language="ja", anchor_name="ずんだもん", api_key=key)


def test_the_models_words_come_back_per_story_and_the_request_is_the_protocols(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(Reply(200, _completion(GOOD)))
    outcome = write_with_llm(STORIES, _spec(server), language="ja", anchor_name="ずんだもん", api_key=KEY)
    assert outcome.problem is None and outcome.tokens == 200
    assert outcome.content == (
        "港区で新しい橋が開通し、通勤時間が短くなります。",
        "明日は北日本で大雪となる見込みです。",
    )
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    body = json.loads(request.body)
    assert body["model"] == "gpt-4o-mini" and body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert "Japanese" in system["content"] and "ずんだもん" in system["content"]
    assert [s["story"] for s in json.loads(user["content"])["stories"]] == [1, 2]


def test_json_in_a_markdown_fence_is_accepted(serve: Callable[..., ScriptedServer]) -> None:
    outcome = write_with_llm(
        STORIES, _spec(serve(Reply(200, _completion(f"```json\n{GOOD}\n```")))), language="ja", anchor_name="a",
        api_key=None,
    )  # fmt: skip
    assert outcome.content is not None and outcome.problem is None


@pytest.mark.parametrize(
    "content",
    [
        f"Here is the script you asked for: {GOOD} Let me know if you want changes.",
        f"以下が原稿です。\n\n{GOOD}\n\n以上です。",
        f"Sure! ```json\n{GOOD}\n``` Enjoy {{the broadcast}}.",  # braces that are not JSON are prose too
    ],
)
def test_one_json_object_wrapped_in_prose_is_taken(serve: Callable[..., ScriptedServer], content: str) -> None:
    outcome = _write(_spec(serve(Reply(200, _completion(content)))))
    assert outcome.problem is None, outcome.problem  # type: ignore[attr-defined]
    assert outcome.content == (
        "港区で新しい橋が開通し、通勤時間が短くなります。",
        "明日は北日本で大雪となる見込みです。",
    )  # type: ignore[attr-defined]


def test_the_models_words_lose_addresses_markup_emoji_and_control_characters(
    serve: Callable[..., ScriptedServer],
) -> None:
    dirty = _segments(
        (1, "<b>港区</b>で新しい橋が開通しました🌉。詳しくは https://news.example/bridge?id=1 をご覧ください。"),
        (2, "**明日は**北日本で[大雪](https://weather.example/snow)の予報です\u0007。\n- 交通に注意してください ❄️"),
    )
    outcome = _write(_spec(serve(Reply(200, _completion(dirty)))))
    assert outcome.content == (  # type: ignore[attr-defined]
        "港区で新しい橋が開通しました。詳しくはをご覧ください。",
        "明日は北日本で大雪の予報です。交通に注意してください",
    )


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply(401, json.dumps({"error": {"message": "Incorrect API key provided: sk-test-***cdef.",
                                          "type": "invalid_request_error", "param": None,
                                          "code": "invalid_api_key"}}).encode()),
         "HTTP 401: Incorrect API key provided"),
        (Reply(429, json.dumps({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests",
                                          "param": None, "code": "rate_limit_exceeded"}}).encode()),
         "HTTP 429: Rate limit reached"),
        (Reply(400, json.dumps({"object": "error", "message": "max_tokens is too large", "type": "BadRequestError",
                                "param": None, "code": 400}).encode()),
         "HTTP 400: max_tokens is too large"),  # vLLM's shape
        (Reply(502, b"<html>Bad Gateway</html>", "text/html"), "HTTP 502: <html>Bad Gateway</html>"),
        (Reply(307, b"", headers={"Location": "http://elsewhere.example/v1/chat/completions"}), "redirected"),
        (Reply(200, b"{not json"), "not JSON"),
        (Reply(200, _completion(None, refusal="I can't help with that.")), "the model refused: I can't help"),
        (Reply(200, _completion(GOOD[:40], finish="length")), "finish_reason: length"),
        (Reply(200, _completion("Here are the segments you asked for.")), "not the JSON asked for"),
        (Reply(200, _completion(f"Option A: {GOOD}\nOption B: {GOOD}")), "2 JSON objects side by side"),
        (Reply(200, _completion("{" * 5000)), "not the JSON asked for"),
        (Reply(200, _completion(_segments((1, "<p>🎉</p>"), (2, "二。")))), "story 1 is empty"),
        (Reply(200, _completion(_segments((1, "一つ目。")))), "left out stories 2"),
        (Reply(200, _completion(_segments((1, "一。"), (2, "二。"), (3, "架空。")))), "story 3, which it was not"),
        (Reply(200, _completion(_segments((1, "一。"), (1, "また一。")))), "story 1 twice"),
        (Reply(200, _completion(_segments((1, "長い。" * 200), (2, "二。")))), "budget 220"),
        (Reply(200, _completion(json.dumps({"segments": [{"story": "1", "text": "一。"}]}))), '{"story": <number>'),
        (Reply(200, b"x" * (MAX_ANSWER_BYTES + 10)), "larger than 1024 KiB"),
    ],
)  # fmt: skip
def test_every_bad_answer_is_a_reason_and_no_texts(
    serve: Callable[..., ScriptedServer], reply: Reply, words: str
) -> None:
    outcome = write_with_llm(STORIES, _spec(serve(reply)), language="ja", anchor_name="a", api_key=KEY)
    assert outcome.content is None
    assert outcome.problem is not None and words in outcome.problem, outcome.problem
    assert KEY not in outcome.problem


def test_an_endpoint_that_never_answers_costs_the_timeout_and_no_more() -> None:
    release = threading.Event()

    def stall(_method: str, _path: str, _body: bytes) -> Reply:
        release.wait(30)  # the server misbehaves on purpose; the client's deadline must end the wait
        return Reply(200, _completion(GOOD))

    with scripted_server(stall) as server:
        try:
            outcome = write_with_llm(STORIES, _spec(server, timeout=1), language="en", anchor_name="a", api_key=None)
        finally:
            release.set()
    assert outcome.content is None and outcome.problem == "the LLM endpoint did not answer within timeoutSeconds (1 s)"


def test_the_metadata_service_is_never_an_endpoint_and_is_not_contacted() -> None:
    spec = Llm.model_validate({"endpoint": "http://169.254.169.254/v1", "model": "m", "timeoutSeconds": 1})
    outcome = write_with_llm(STORIES, spec, language="en", anchor_name="a", api_key=KEY)
    assert outcome.content is None and outcome.problem is not None and "metadata" in outcome.problem


# -- a dialogue ----------------------------------------------------------------------------------------------

CAST = ("四国めたん", "ずんだもん")


def _turns(*turns: tuple[int, str, str]) -> str:
    return json.dumps({"turns": [{"story": n, "speaker": s, "text": t} for n, s, t in turns]}, ensure_ascii=False)


GOOD_DIALOGUE = _turns(
    (1, "四国めたん", "港区で新しい橋が開通しました。"),
    (1, "ずんだもん", "通勤が楽になるのだ。"),
    (2, "ずんだもん", "明日は北日本で大雪の予報なのだ。"),
    (2, "四国めたん", "<b>お気をつけて</b>ください🌨。"),
)


def _dialogue(server: ScriptedServer) -> object:
    return write_dialogue_with_llm(STORIES, _spec(server), language="ja", cast=CAST, api_key=KEY)


def test_the_model_writes_the_casts_turns_per_story_cleaned(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(Reply(200, _completion(f"Here you go: {GOOD_DIALOGUE}")))
    outcome = _dialogue(server)
    assert outcome.problem is None, outcome.problem  # type: ignore[attr-defined]
    assert outcome.content == (  # type: ignore[attr-defined]
        (Turn("四国めたん", "港区で新しい橋が開通しました。"), Turn("ずんだもん", "通勤が楽になるのだ。")),
        (Turn("ずんだもん", "明日は北日本で大雪の予報なのだ。"), Turn("四国めたん", "お気をつけてください。")),
    )
    system, user = json.loads(server.requests[0].body)["messages"]
    assert "四国めたん, ずんだもん" in system["content"] and '"turns"' in system["content"]
    asked = json.loads(user["content"])
    assert asked["presenters"] == list(CAST)
    assert [s["presenter"] for s in asked["stories"]] == ["四国めたん", "ずんだもん"]  # round the cast


@pytest.mark.parametrize(
    ("turns", "words"),
    [
        (_turns((1, "四国めたん", "一。"), (2, "ナレーター", "二。")), "'ナレーター', who is not in the cast"),
        (_turns((1, "四国めたん", "一。"), (1, "ずんだもん", "また一。")), "left out stories 2"),
        (_turns((1, "四国めたん", "一。"), (2, "ずんだもん", "二。"), (3, "四国めたん", "三。")), "story 3, which"),
        (_turns((1, "四国めたん", "長い。" * 150), (2, "ずんだもん", "二。")), "budget 286"),
        (_turns(*[(1, "四国めたん", "一。")] * 9, (2, "ずんだもん", "二。")), "more than 8 turns for story 1"),
        (json.dumps({"turns": [{"story": 1, "speaker": 2, "text": "x"}]}), '{"story": <number>, "speaker"'),
        (json.dumps({"segments": []}), 'no "turns" list'),
    ],
)  # fmt: skip
def test_a_dialogue_that_breaks_the_rules_is_a_reason_and_no_turns(
    serve: Callable[..., ScriptedServer], turns: str, words: str
) -> None:
    outcome = _dialogue(serve(Reply(200, _completion(turns))))
    assert outcome.content is None  # type: ignore[attr-defined]
    assert words in (outcome.problem or ""), outcome.problem  # type: ignore[attr-defined]
