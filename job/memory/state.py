"""What a broadcast remembers between pods and days, kept where its runs are published (the output directory or
the bucket), so a new pod on another node finds it:

    <output>/.anchor/audio/<sha256>.wav               the audio cache, shared by the broadcasts of one output
    <output>/<broadcast>/.anchor/aired.json           the stories earlier runs aired, for "only new stories"
    <output>/<broadcast>/.anchor/runs/<run id>/...    one run's checkpoints (its stories and script), for a retry

(`<output>` is spec.output.directory, or the bucket and spec.output.s3.prefix.) Names that start with "." are never
a broadcast's or a run's, so none of this is mistaken for a published run. Every read is bounded in size; state that
is missing, unreadable or too large is treated as absent: it only ever saves work, never decides a run's outcome.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from minio import Minio

from api.v1alpha1 import Output
from job.shared.storage import replace_file, s3_client

log = logging.getLogger(__name__)

STATE = ".anchor"


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    modified: datetime


class State(Protocol):
    """Small objects by key ("audio/ab12.wav"), under one root."""

    def get(self, key: str, limit: int) -> bytes | None:
        """The object, or None when it is missing or larger than `limit` bytes."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def entries(self, prefix: str) -> list[Entry]: ...

    def delete(self, keys: Sequence[str]) -> None: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"{key!r} is not a state key")
    return key


class LocalState:
    """State in a directory; writes are atomic (a temporary file renamed into place)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str, limit: int) -> bytes | None:
        path = self.root / _check_key(key)
        try:
            with path.open("rb") as file:
                data = file.read(limit + 1)
        except OSError:
            return None
        return data if len(data) <= limit else None

    def put(self, key: str, data: bytes) -> None:
        replace_file(self.root / _check_key(key), data, temporary_prefix=".partial-", mode=0o600)

    def entries(self, prefix: str) -> list[Entry]:
        base = self.root / _check_key(prefix)
        found = []
        for path in base.rglob("*") if base.is_dir() else ():
            if path.is_file() and not path.name.startswith(".partial-"):
                stat = path.stat()
                key = path.relative_to(self.root).as_posix()
                found.append(Entry(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
        return found

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = self.root / _check_key(key)
            path.unlink(missing_ok=True)
            for folder in path.parents:  # folders left empty go too, up to the root
                if folder == self.root or not folder.is_relative_to(self.root):
                    break
                try:
                    folder.rmdir()
                except OSError:
                    break


class BucketState:
    """State in a bucket, under a key prefix."""

    def __init__(self, client: Minio, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def get(self, key: str, limit: int) -> bytes | None:
        name = self.prefix + _check_key(key)
        try:
            reply = self.client.get_object(self.bucket, name)
        except Exception:  # missing (NoSuchKey) or unreadable: state is only ever a saving
            return None
        try:
            data: bytes = reply.read(limit + 1)
        except Exception:
            return None
        finally:
            reply.close()
            reply.release_conn()
        return data if len(data) <= limit else None

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(self.bucket, self.prefix + _check_key(key), io.BytesIO(data), len(data))

    def entries(self, prefix: str) -> list[Entry]:
        found = []
        for item in self.client.list_objects(
            self.bucket, prefix=self.prefix + _check_key(prefix) + "/", recursive=True
        ):
            name = str(item.object_name)
            modified = item.last_modified or datetime.now(UTC)
            found.append(Entry(name.removeprefix(self.prefix), int(item.size or 0), modified))
        return found

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.client.remove_object(self.bucket, self.prefix + _check_key(key))


def opened(output: Output, broadcast: str, env: Mapping[str, str] = os.environ) -> tuple[State, State]:
    """(the output's shared state, the broadcast's own state)."""
    if output.s3 is None:
        root = Path(output.directory).absolute()
        return LocalState(root / STATE), LocalState(root / broadcast / STATE)
    s3 = output.s3
    client = s3_client(s3, env)
    base = "".join(f"{part}/" for part in s3.prefix.split("/") if part)
    return BucketState(client, s3.bucket, f"{base}{STATE}/"), BucketState(
        client, s3.bucket, f"{base}{broadcast}/{STATE}/"
    )


def saved(state: State, key: str, data: bytes) -> bool:
    """Save, logging instead of failing the run when the storage refuses: a cache or checkpoint not written costs a
    later run some work, never this run its video."""
    try:
        state.put(key, data)
    except Exception as exc:  # any storage failure (OSError, minio's, urllib3's) is a lost saving, no more
        log.warning("could not save %s: %s", key, exc)
        return False
    return True
