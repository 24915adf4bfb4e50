"""A cache of the stand-in's speech on disk, for machines that run the same sentences again and again (a test suite,
`anchor demo`): the answers to /audio_query and /synthesis are a pure function of the request, so a request seen
before is answered with the bytes it got then, without OpenJTalk. Off unless a directory is given
(ANCHOR_STANDIN_CACHE_DIR for `anchor demo` and `anchor standin-engine`).

Entries are named by the SHA-256 of the stand-in's code and the request (path, query, body), written to a
temporary file and renamed, so another process reading the directory never sees half an entry. Each hit renews an
entry's time; entries unused for `max_age_days` are removed when a cache is opened, so sentences that name a date
do not pile up."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import time
from collections.abc import Mapping
from contextlib import suppress
from importlib import metadata
from pathlib import Path

VARIABLE = "ANCHOR_STANDIN_CACHE_DIR"
MAX_AGE_DAYS = 14.0


@functools.cache
def code_version() -> str:
    """Part of every key: the stand-in's own code and the OpenJTalk it speaks with. Any change to either makes new
    keys, so an answer spoken by older code is never read again (and ages out)."""
    digest = hashlib.sha256()
    for module in ("speech.py", "server.py"):
        digest.update((Path(__file__).parent / module).read_bytes())
    for distribution in ("pyopenjtalk-plus", "pyopenjtalk"):
        with suppress(metadata.PackageNotFoundError):
            digest.update(f"{distribution}=={metadata.version(distribution)}".encode())
    return digest.hexdigest()[:16]


class SpeechCache:
    def __init__(self, directory: Path, max_age_days: float = MAX_AGE_DAYS) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - max_age_days * 86400
        for entry in directory.iterdir():
            with suppress(OSError):  # another process may remove or renew it meanwhile
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()

    @staticmethod
    def key(path: str, query: Mapping[str, str], body: bytes) -> str:
        digest = hashlib.sha256(f"{code_version()}\n{path}\n".encode())
        for name in sorted(query):
            digest.update(f"{name}={query[name]}\n".encode())
        digest.update(body)
        return digest.hexdigest()

    def get(self, key: str) -> bytes | None:
        entry = self.directory / key
        try:
            data = entry.read_bytes()
            os.utime(entry)
        except OSError:
            return None
        return data

    def put(self, key: str, data: bytes) -> None:
        """Best effort: a full disk or a read-only directory leaves the entry out, and the stand-in answers anyway."""
        with suppress(OSError):
            handle, name = tempfile.mkstemp(dir=self.directory, prefix=".partial-")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                Path(name).replace(self.directory / key)
            except OSError:
                with suppress(OSError):
                    Path(name).unlink()


def from_env(environ: Mapping[str, str] = os.environ) -> SpeechCache | None:
    """The cache ANCHOR_STANDIN_CACHE_DIR names, or None when it names none."""
    directory = environ.get(VARIABLE, "").strip()
    return SpeechCache(Path(directory)) if directory else None
