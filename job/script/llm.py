"""The anchor's words for each story from an OpenAI-compatible chat-completions endpoint (`spec.script.llm`).

One request: the stories in (numbered, title and summary, each bounded), one segment per story out, as JSON
(`{"segments": [{"story": 1, "text": "..."}, ...]}`), in the broadcast's language and within a length budget per
story. The answer comes from outside and is checked like any input: size (1 MiB), time (the spec's timeoutSeconds
for the whole exchange), one JSON object (alone, fenced, or wrapped in prose as many models write it; two or none
are refused), its shape, exactly one segment per story given (none invented, none missing), each within
its budget. The words are outside input: cleaned as feed text is (job/shared/text.py: markup, Markdown, web
addresses, emoji, control characters) before anything speaks or shows them. On any failure — refused address,
timeout, HTTP error, a refusal, a truncated, malformed or oversized answer — `write_with_llm` says why and the
caller keeps the built-in templates; it never raises for the answer.

The intro and the sign-off stay the templates' (the date and time are not the model's to get wrong). The endpoint
is the user's own, so a private address (an in-cluster vLLM) is allowed; the cloud metadata service never is, and
redirects are not followed (the API key would go along).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import requests

from api.netguard import AddressPolicy, Deadline, GuardError, PinnedAdapter, is_metadata, resolve
from api.v1alpha1 import Llm
from job.model import Story
from job.script.dialogue import Turn
from job.shared.text import model_words

T = TypeVar("T")

MAX_ANSWER_BYTES = 1024 * 1024
_STORY_CHARS = 1200  # of each story's summary sent to the model
_BUDGET = {"ja": 220, "en": 480}  # characters per story's segment the model is asked for
_SLACK = 1.5  # an answer longer than this many budgets is refused, not cut
_DIALOGUE_SHARE = 1.3  # a dialogue's story has room for the bridge besides the facts
_MAX_TURNS = 8  # per story: a presenter, a bridge, and a few exchanges
_LANGUAGES = {"ja": "Japanese", "en": "English"}
_OPENINGS_TRIED = 200  # "{" in an answer tried as the start of its JSON object; more is not an answer, it is noise


@dataclass(frozen=True)
class LlmAnswer(Generic[T]):
    """What the model wrote, checked and cleaned (in the stories' order), or why there is nothing."""

    content: T | None
    model: str
    problem: str | None = None
    tokens: int | None = None
    """Total tokens the endpoint reported using, when it did."""


class _Refused(Exception):
    """The exchange or the answer is unusable; the message says why, for the result and the manifest."""


def write_with_llm(
    stories: Sequence[Story],
    spec: Llm,
    *,
    language: str,
    anchor_name: str,
    api_key: str | None,
) -> LlmAnswer[tuple[str, ...]]:
    """The anchor's words for each story: one JSON list of `{story, text}`."""
    budget = _BUDGET[language]
    rules = (
        f"You are {anchor_name}, a TV news anchor. Write what you say about each story below, in "
        f"{_LANGUAGES[language]}, as spoken words for a text-to-speech voice: plain sentences, no lists, no markdown, "
        f"no URLs, no emoji. Use only facts from that story's title and summary; add nothing else. At most {budget} "
        "characters per story. Do not greet or sign off. Answer with JSON only, exactly: "
        '{"segments": [{"story": <number>, "text": "<what you say>"}]}, one segment for each story number given.'
    )
    body = _chat_body(spec, rules, {"stories": _listing(stories)}, len(stories) * budget)
    return _answered(spec, api_key, body, lambda answer: _segments(answer, len(stories), budget))


def write_dialogue_with_llm(
    stories: Sequence[Story],
    spec: Llm,
    *,
    language: str,
    cast: Sequence[str],
    api_key: str | None,
) -> LlmAnswer[tuple[tuple[Turn, ...], ...]]:
    """The cast's turns about each story, written by the model: one JSON list of `{story, speaker, text}`, checked
    like the monologue's segments (only the cast's names, every story covered, none invented, a length budget per
    story) and cleaned as feed text is."""
    budget = round(_BUDGET[language] * _DIALOGUE_SHARE)
    rules = (
        f"You write a TV news dialogue between the presenters {', '.join(cast)}, in {_LANGUAGES[language]}, as "
        "spoken words for text-to-speech voices: plain sentences, no lists, no markdown, no URLs, no emoji. The "
        "presenters take turns story by story: story 1 is presented by the first presenter, story 2 by the next, "
        "and so on round the list. The presenter reads the story's facts; another presenter adds a short bridge and "
        "may hand over to the next presenter by name. Use only facts from each story's title and summary; add "
        f"nothing else. At most {budget} characters per story, all turns together. Do not greet or sign off. Answer "
        'with JSON only, exactly: {"turns": [{"story": <number>, "speaker": "<presenter name>", "text": "<what '
        'they say>"}]}, in the order spoken, with turns for every story number given and only the presenter names '
        "given."
    )
    listing = [{**entry, "presenter": cast[n % len(cast)]} for n, entry in enumerate(_listing(stories))]
    body = _chat_body(spec, rules, {"presenters": list(cast), "stories": listing}, len(stories) * budget)
    return _answered(spec, api_key, body, lambda answer: _turns(answer, len(stories), cast, budget))


def _listing(stories: Sequence[Story]) -> list[dict[str, Any]]:
    """The stories as the model is given them: numbered, each summary bounded."""
    return [
        {"story": n, "title": story.title, "source": story.source, "summary": story.summary[:_STORY_CHARS]}
        for n, story in enumerate(stories, start=1)
    ]


def _chat_body(spec: Llm, rules: str, document: dict[str, Any], characters: int) -> dict[str, Any]:
    """A chat completion request: the rules as the system message, the stories as JSON, room for `characters`."""
    return {
        "model": spec.model,
        "messages": [
            {"role": "system", "content": rules},
            {"role": "user", "content": json.dumps(document, ensure_ascii=False)},
        ],
        "temperature": 0.3,
        "max_tokens": 400 + characters * 2,  # room for the budget in tokens of any script
        "response_format": {"type": "json_object"},
    }


def _answered(
    spec: Llm, api_key: str | None, body: dict[str, Any], read: Callable[[dict[str, Any]], T]
) -> LlmAnswer[T]:
    """The exchange, and what `read` takes from the answer; any failure is the reason, never an exception."""
    try:
        answer = _exchange(body, spec, api_key)
        content = read(answer)
    except _Refused as exc:
        return LlmAnswer(None, spec.model, str(exc))
    usage = answer.get("usage")
    tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
    return LlmAnswer(content, spec.model, None, tokens if isinstance(tokens, int) else None)


def _exchange(body: dict[str, Any], spec: Llm, api_key: str | None) -> dict[str, Any]:
    url = spec.endpoint.rstrip("/") + "/chat/completions"
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port, AddressPolicy.of(True, ()))
    except GuardError as exc:
        raise _Refused(f"the LLM endpoint cannot be reached: {exc}") from None
    if any(is_metadata(address) for address in addresses):
        raise _Refused(f"refused: {host} is the cloud metadata service address, not an LLM endpoint")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = requests.Request("POST", url, data=json.dumps(body, ensure_ascii=False).encode(), headers=headers)
    prepared = request.prepare()
    prepared.headers["Host"] = parts.netloc.rpartition("@")[2]
    seconds = float(spec.timeout_seconds)
    with Deadline(seconds) as deadline:
        adapter = PinnedAdapter(addresses[0], deadline)
        try:
            reply = adapter.send(prepared, stream=True, timeout=(min(seconds, 10.0), seconds))
            try:
                raw = reply.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
            finally:
                reply.close()
        except Exception as exc:  # requests' errors, and urllib3's own, which requests does not wrap on a raw read
            if deadline.expired:
                raise _Refused(
                    f"the LLM endpoint did not answer within timeoutSeconds ({spec.timeout_seconds} s)"
                ) from None
            raise _Refused(f"the LLM endpoint could not be reached or broke off: {exc.__class__.__name__}") from None
        finally:
            adapter.close()
    if len(raw) > MAX_ANSWER_BYTES:
        raise _Refused(f"the LLM's answer is larger than {MAX_ANSWER_BYTES // 1024} KiB")
    if reply.is_redirect:
        raise _Refused(f"the LLM endpoint redirected (HTTP {reply.status_code}); redirects are not followed")
    if reply.status_code != 200:
        raise _Refused(f"the LLM endpoint answered HTTP {reply.status_code}: {_error_message(raw)}")
    try:
        answer = json.loads(raw)
    except ValueError:
        raise _Refused("the LLM endpoint's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise _Refused("the LLM endpoint's answer is not a chat completion")
    return answer


def _error_message(raw: bytes) -> str:
    """The `error.message` of an OpenAI-style error body, shortened; never the request (it carries no secret, but
    the answer is the outside's words)."""
    try:
        body = json.loads(raw)
        error = body.get("error")  # OpenAI: {"error": {"message", "type", "code"}}; vLLM: {"message", "type", ...}
        message = error.get("message") if isinstance(error, dict) else error or body.get("message")
    except (ValueError, AttributeError):
        message = None
    text = " ".join(str(message or raw[:200].decode("utf-8", "replace")).split())
    return text[:300] or "no message"


def _content(answer: dict[str, Any]) -> str:
    """The text of the answer's first choice, unless the model refused, was cut off or filtered."""
    try:
        (choice, *_) = answer["choices"]
        message = choice["message"]
    except (KeyError, TypeError, ValueError):
        raise _Refused("the LLM's answer has no choices[0].message") from None
    if isinstance(message, dict) and message.get("refusal"):
        raise _Refused(f"the model refused: {' '.join(str(message['refusal']).split())[:200]}")
    reason = choice.get("finish_reason")
    if reason == "length":
        raise _Refused("the LLM's answer was cut off at max_tokens (finish_reason: length)")
    if reason == "content_filter":
        raise _Refused("the LLM's answer was withheld by its content filter")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise _Refused("the LLM's answer has no content")
    return content


def one_json_object(content: str) -> dict[str, Any]:
    """The one JSON object in a model's answer: the whole answer, or wrapped in prose or a code fence ("Here is the
    script: {...}"), as many models write it. None, or two side by side, is refused: which one was meant?"""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position, tried = content.find("{"), 0
    while position >= 0 and tried < _OPENINGS_TRIED:
        tried += 1
        try:
            value, end = decoder.raw_decode(content, position)
        except (ValueError, RecursionError):
            position = content.find("{", position + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        position = content.find("{", end)
    if len(found) > 1:
        raise _Refused(f"the LLM's answer holds {len(found)} JSON objects side by side; one was asked for")
    if not found:
        raise _Refused("the LLM's answer is not the JSON asked for")
    return found[0]


def _segments(answer: dict[str, Any], count: int, budget: int) -> tuple[str, ...]:
    document = one_json_object(_content(answer))
    segments = document.get("segments")
    if not isinstance(segments, list):
        raise _Refused('the LLM\'s answer has no "segments" list')
    texts: dict[int, str] = {}
    for segment in segments:
        number = segment.get("story") if isinstance(segment, dict) else None
        text = segment.get("text") if isinstance(segment, dict) else None
        if not isinstance(number, int) or isinstance(number, bool) or not isinstance(text, str):
            raise _Refused('each segment must be {"story": <number>, "text": "<words>"}')
        if not 1 <= number <= count:
            raise _Refused(f"the LLM wrote about story {number}, which it was not given (stories 1-{count})")
        if number in texts:
            raise _Refused(f"the LLM wrote story {number} twice")
        words = model_words(text, limit=budget * 2)
        if not words:
            raise _Refused(f"the LLM's text for story {number} is empty (or only markup, addresses and emoji)")
        if len(words) > budget * _SLACK:
            raise _Refused(f"the LLM's text for story {number} has {len(words)} characters (budget {budget})")
        texts[number] = words
    missing = [n for n in range(1, count + 1) if n not in texts]
    if missing:
        raise _Refused(f"the LLM left out stories {', '.join(map(str, missing))}")
    return tuple(texts[n] for n in range(1, count + 1))


def _turns(answer: dict[str, Any], count: int, cast: Sequence[str], budget: int) -> tuple[tuple[Turn, ...], ...]:
    document = one_json_object(_content(answer))
    turns = document.get("turns")
    if not isinstance(turns, list):
        raise _Refused('the LLM\'s answer has no "turns" list')
    by_story: dict[int, list[Turn]] = {}
    for turn in turns:
        number, speaker, text = (turn.get(k) if isinstance(turn, dict) else None for k in ("story", "speaker", "text"))
        if isinstance(number, bool) or not (
            isinstance(number, int) and isinstance(speaker, str) and isinstance(text, str)
        ):
            raise _Refused('each turn must be {"story": <number>, "speaker": "<name>", "text": "<words>"}')
        if not 1 <= number <= count:
            raise _Refused(f"the LLM wrote about story {number}, which it was not given (stories 1-{count})")
        name = " ".join(speaker.split())
        if name not in cast:
            raise _Refused(f"the LLM gave a turn to {name[:40]!r}, who is not in the cast ({', '.join(cast)})")
        words = model_words(text, limit=budget * 2)
        if not words:
            raise _Refused(f"a turn of story {number} is empty (or only markup, addresses and emoji)")
        by_story.setdefault(number, []).append(Turn(name, words))
        if len(by_story[number]) > _MAX_TURNS:
            raise _Refused(f"the LLM wrote more than {_MAX_TURNS} turns for story {number}")
    missing = [n for n in range(1, count + 1) if n not in by_story]
    if missing:
        raise _Refused(f"the LLM left out stories {', '.join(map(str, missing))}")
    for number, story_turns in by_story.items():
        length = sum(len(t.text) for t in story_turns)
        if length > budget * _SLACK:
            raise _Refused(f"the LLM's turns for story {number} have {length} characters (budget {budget})")
    return tuple(tuple(by_story[n]) for n in range(1, count + 1))
