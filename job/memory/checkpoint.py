"""One run's checkpoints in the broadcast's state (job/memory/state.py, runs/<run id>/): the stories it chose and the
script it wrote, saved as soon as they are made. A retried pod of the same run (same run id: the Job's name)
takes them back instead of reading the feeds and asking the LLM again, so it says what the first pod would have
said; with the audio cache it then speaks nothing anew, and a preemption costs only the render.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from job.memory.state import State, saved
from job.model import Script, Segment, Story

MAX_BYTES = 4 * 1024 * 1024


def _key(run_id: str, name: str) -> str:
    return f"runs/{run_id}/{name}"


def story_document(story: Story) -> dict[str, Any]:
    return {
        "title": story.title,
        "link": story.link,
        "source": story.source,
        "summary": story.summary,
        "published": story.published.isoformat() if story.published else None,
        "guid": story.guid,
        "image": story.image,
    }


def _story(document: dict[str, Any]) -> Story:
    published = document.get("published")
    return Story(
        title=str(document["title"]),
        link=str(document["link"]),
        source=str(document["source"]),
        summary=str(document["summary"]),
        published=datetime.fromisoformat(published) if published else None,
        guid=str(document.get("guid") or ""),
        image=str(document.get("image") or ""),  # checkpoints written before pictures have none
    )


def save_stories(state: State, run_id: str, stories: list[Story]) -> bool:
    data = json.dumps({"version": 1, "stories": [story_document(s) for s in stories]}, ensure_ascii=False)
    return saved(state, _key(run_id, "stories.json"), data.encode())


def load_stories(state: State, run_id: str) -> list[Story] | None:
    data = state.get(_key(run_id, "stories.json"), MAX_BYTES)
    try:
        stories = [_story(item) for item in json.loads(data)["stories"]] if data else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return stories or None


def script_document(script: Script) -> dict[str, Any]:
    """The script as JSON: what a checkpoint keeps, and what the published script.json holds besides its cues."""
    return {
        "language": script.language,
        "title": script.title,
        "anchor": script.anchor_name,
        "cast": list(script.presenters),
        "format": script.format,
        "airedAt": script.aired_at.isoformat(),
        "segments": [
            {
                "kind": segment.kind,
                "story": story_document(segment.story) if segment.story else None,
                "sentences": list(segment.sentences),
                "speakers": [script.speaker(number, i) for i in range(len(segment.sentences))],
            }
            for number, segment in enumerate(script.segments)
        ],
    }


def save_script(state: State, run_id: str, script: Script, writer: str) -> bool:
    document = {"version": 1, "writer": writer, **script_document(script)}
    return saved(state, _key(run_id, "script.json"), json.dumps(document, ensure_ascii=False).encode())


def load_script(state: State, run_id: str) -> tuple[Script, str] | None:
    """The run's script and who wrote it ("templates" or "llm"), or None when there is no usable checkpoint."""
    data = state.get(_key(run_id, "script.json"), MAX_BYTES)
    if not data:
        return None
    try:
        document = json.loads(data)
        segments = tuple(
            Segment(
                item["kind"],
                tuple(str(t) for t in item["sentences"]),
                _story(item["story"]) if item["story"] else None,
                tuple(str(name) for name in item.get("speakers") or ()),
            )
            for item in document["segments"]
        )
        script = Script(
            language=document["language"],
            title=str(document["title"]),
            anchor_name=str(document["anchor"]),
            aired_at=datetime.fromisoformat(document["airedAt"]),
            segments=segments,
            cast=tuple(str(name) for name in document.get("cast") or ()),
            format=document.get("format") or "monologue",
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if script.language not in ("ja", "en") or not segments or script.format not in ("monologue", "dialogue"):
        return None
    if any(s.speakers and len(s.speakers) != len(s.sentences) for s in segments):
        return None
    return script, str(document.get("writer") or "templates")


def forget(state: State, run_id: str, now: datetime, keep: timedelta = timedelta(days=7)) -> None:
    """Drop a published run's checkpoints, and those of runs that stopped more than `keep` ago and never
    finished (a run that failed for good): state stays small."""
    try:
        doomed = [
            e.key for e in state.entries("runs") if e.key.startswith(f"runs/{run_id}/") or now - e.modified > keep
        ]
        state.delete(doomed)
    except Exception:  # state is a saving; a leftover checkpoint costs a few KiB
        return
