"""The audio cache: each sentence's WAV, content-addressed by what decides its sound (the engine's version, the
style, the voice's scales and the text: the voice stage's `cache_key`), kept in the output's state
(job/memory/state.py). A retried pod, or tomorrow's run, speaks an unchanged sentence without asking the engine; a
sentence is saved as soon as it is spoken, so a pod preempted mid-run loses none it made. Bounded: entries older
than the expiry go first, then the oldest until the total fits the size cap (`prune`, once per run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from job.memory.state import State, saved

PREFIX = "audio"
MAX_ENTRY_BYTES = 16 * 1024 * 1024  # a sentence's WAV is ~0.1-1 MB; anything larger is not ours


@dataclass
class AudioCache:
    """The broadcast's spoken sentences by key: what the voice stage takes as its `SentenceCache`."""

    state: State
    hits: int = 0
    misses: int = 0
    saved: int = 0

    def get(self, key: str, usable: Callable[[bytes], bool] | None = None) -> bytes | None:
        """The kept WAV, or None (a miss) when there is none, it is not a WAV, or `usable` refuses it (a WAV kept by
        an older version, without what the voice stage now keeps in it)."""
        data = self.state.get(f"{PREFIX}/{key}.wav", MAX_ENTRY_BYTES)
        if data is None or not data.startswith(b"RIFF") or (usable is not None and not usable(data)):
            self.misses += 1
            return None
        self.hits += 1
        return data

    def put(self, key: str, wav: bytes) -> None:
        if len(wav) <= MAX_ENTRY_BYTES and saved(self.state, f"{PREFIX}/{key}.wav", wav):
            self.saved += 1

    def prune(self, max_bytes: int, max_age: timedelta, now: datetime | None = None) -> int:
        """Remove expired entries, then the oldest until the rest fit `max_bytes`; returns how many went."""
        entries = sorted(self.state.entries(PREFIX), key=lambda e: e.modified, reverse=True)  # newest first
        cutoff = (now or datetime.now(UTC)) - max_age
        keep_bytes, doomed = 0, []
        for entry in entries:
            if entry.modified < cutoff or keep_bytes + entry.size > max_bytes:
                doomed.append(entry.key)
            else:
                keep_bytes += entry.size
        self.state.delete(doomed)
        return len(doomed)

    def summary(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "saved": self.saved}
