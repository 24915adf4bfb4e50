"""Only new stories: what earlier runs of a broadcast aired, remembered in its state (job/state.py,
`aired.json`) for spec.sources.rememberAiredHours, so the next run skips them. Written after a run is published;
a run that cannot save it still publishes (the next run may then repeat a story, never lose one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from job.model import Story
from job.state import State, saved

KEY = "aired.json"
MAX_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 20000


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


def load(state: State, now: datetime, window: timedelta) -> dict[str, datetime]:
    """identity → when it aired, for the stories aired within `window` before `now` (empty when none or unreadable)."""
    data = state.get(KEY, MAX_BYTES)
    if not data:
        return {}
    try:
        raw = json.loads(data)
        aired = {str(k): datetime.fromisoformat(str(v)) for k, v in raw.get("aired", {}).items()}
    except (ValueError, TypeError, AttributeError):
        return {}
    return {k: at for k, at in aired.items() if at.tzinfo is not None and now - at <= window}


def unaired(stories: Sequence[Story], aired: dict[str, datetime]) -> list[Story]:
    return [story for story in stories if identity(story) not in aired]


def remember(state: State, aired: dict[str, datetime], stories: Iterable[Story], at: datetime) -> bool:
    """Add these stories, aired `at`, to what is remembered (the newest MAX_ENTRIES), and save."""
    merged = dict(aired)
    for story in stories:
        merged[identity(story)] = at
    newest = sorted(merged.items(), key=lambda item: item[1], reverse=True)[:MAX_ENTRIES]
    document = {"version": 1, "aired": {k: v.isoformat() for k, v in newest}}
    return saved(state, KEY, json.dumps(document, separators=(",", ":")).encode())
