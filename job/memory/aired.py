"""Only new stories: what earlier runs of a broadcast aired, remembered in its state (job/memory/state.py,
`aired.json`) for spec.sources.rememberAiredHours, so the next run skips them. Written after a run is published;
a run that cannot save it still publishes (the next run may then repeat a story, never lose one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from job.memory.state import State, saved
from job.model import Story

KEY = "aired.json"
MAX_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 20000


@dataclass(frozen=True)
class Aired:
    at: datetime
    run: str
    """The run that aired it: a re-run of that same run may air it again."""


def identity(story: Story) -> str:
    """One story, whichever feed or run brings it: its guid, else its link without fragment, else its title."""
    if story.guid:
        basis = f"guid:{story.guid}"
    elif story.link:
        parts = urlsplit(story.link.strip())
        basis = "link:" + urlunsplit(
            (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
        )
    else:
        basis = f"title:{' '.join(story.title.split()).casefold()}"
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def load(state: State, now: datetime, window: timedelta) -> dict[str, Aired]:
    """identity → when and by which run it aired, for the stories aired within `window` before `now` (empty when
    nothing is remembered or the memory cannot be read)."""
    data = state.get(KEY, MAX_BYTES)
    if not data:
        return {}
    try:
        raw = json.loads(data)
        aired = {
            str(k): Aired(datetime.fromisoformat(str(v["at"])), str(v.get("run") or ""))
            for k, v in raw.get("aired", {}).items()
        }
    except (ValueError, TypeError, AttributeError, KeyError):
        return {}
    return {k: a for k, a in aired.items() if a.at.tzinfo is not None and now - a.at <= window}


def unaired(stories: Sequence[Story], aired: dict[str, Aired], run_id: str) -> list[Story]:
    """The stories no other run aired (a re-run of `run_id` may air its own stories again)."""
    return [story for story in stories if (a := aired.get(identity(story))) is None or a.run == run_id]


def remember(state: State, aired: dict[str, Aired], stories: Iterable[Story], at: datetime, run_id: str) -> bool:
    """Add these stories, aired `at` by `run_id`, to what is remembered (the newest MAX_ENTRIES), and save."""
    merged = dict(aired)
    for story in stories:
        merged[identity(story)] = Aired(at, run_id)
    newest = sorted(merged.items(), key=lambda item: item[1].at, reverse=True)[:MAX_ENTRIES]
    document = {"version": 1, "aired": {k: {"at": a.at.isoformat(), "run": a.run} for k, a in newest}}
    return saved(state, KEY, json.dumps(document, separators=(",", ":")).encode())
