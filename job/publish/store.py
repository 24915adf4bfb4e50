"""Publish a finished run: its files and, always last, manifest.json, so a reader never sees half a run.

Locally a run is assembled in a hidden temporary directory beside its final place and renamed into it; in a
bucket the old run's manifest is removed first (unpublishing it), the objects are uploaded, and the new
manifest goes up last. Every file is hashed (sha256) in the same pass that copies or uploads it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, cast

from minio import Minio

from api.v1alpha1 import Output, S3Output
from job.model import Artifact, ConfigError, JobError, Publication, PublishedObject, TransientError
from job.shared import storage

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PROGRESS_STEP = "store"
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".srt": "application/x-subrip",
    ".vtt": "text/vtt; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
"""Content types by suffix, for an artifact that does not bring its own."""

_CHUNK = 1 << 20
# Writing failed for lack of room: a later run may find some. Any other OS error on the output is a setting.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})

Progress = Callable[[str, int, int], None]


def publish(
    artifacts: Sequence[Artifact],
    *,
    manifest: Mapping[str, object],
    output: Output,
    broadcast: str,
    run_id: str,
    env: Mapping[str, str] = os.environ,
    base_dir: Path | None = None,
    progress: Progress | None = None,
) -> Publication:
    """Publish the artifacts and then manifest.json (the given fields plus "objects") as run `run_id`.

    A run with the same id is replaced. `base_dir` is accepted for symmetry with the other stages and not used:
    spec.output.directory is relative to the working directory, as the spec documents.
    Raises ConfigError (bad output settings or credentials) or TransientError (storage unreachable, full).
    """
    del base_dir
    _check_artifacts(artifacts)
    for value, what in ((broadcast, "broadcast name"), (run_id, "run id")):
        if not value or value.startswith(".") or "/" in value or "\\" in value:
            raise ValueError(f"{what} {value!r} cannot name a directory or key segment")
    meter = _Meter(progress, sum(_size(a.path) for a in artifacts))
    if output.s3 is None:
        return _publish_local(artifacts, manifest, Path(output.directory), broadcast, run_id, meter)
    return _publish_s3(artifacts, manifest, output.s3, broadcast, run_id, env, meter)


def check_output(output: Output, broadcast: str, env: Mapping[str, str] = os.environ) -> None:
    """Fail fast, before any GPU time is spent, when the run could not be published: an unwritable directory,
    missing or rejected credentials, a missing bucket. Raises what publish() would raise."""
    if output.s3 is None:
        parent = Path(output.directory).absolute() / broadcast
        try:
            parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as exc:
            raise _local_failure(exc, Path(output.directory), "write into the output directory") from None
        return
    s3 = output.s3
    credentials = storage.credentials(env)
    client = storage.client(s3, credentials, env)
    with storage.errors(s3, credentials, "checked before the run; nothing was uploaded"):
        if not client.bucket_exists(s3.bucket):
            raise ConfigError(f"bucket {s3.bucket!r} does not exist on {s3.endpoint} (spec.output.s3.bucket)")


def content_type(artifact: Artifact) -> str:
    """The artifact's own content type, else the one its suffix implies."""
    if artifact.content_type:
        return artifact.content_type
    return CONTENT_TYPES.get(Path(artifact.name).suffix.lower(), "application/octet-stream")


def _check_artifacts(artifacts: Sequence[Artifact]) -> None:
    names = [a.name for a in artifacts]
    for name in names:
        if not name or name.startswith(".") or "/" in name or "\\" in name or name == MANIFEST:
            raise ValueError(f"artifact name {name!r} is not a plain file name (or is reserved)")
    if len(set(names)) != len(names):
        raise ValueError(f"artifact names repeat: {names}")
    if not any(content_type(a).startswith("video/") for a in artifacts):
        raise ValueError("no video among the artifacts")


def _video(artifacts: Sequence[Artifact]) -> Artifact:
    return next(a for a in artifacts if content_type(a).startswith("video/"))


def _size(path: Path) -> int:
    return path.stat().st_size


def _manifest_bytes(fields: Mapping[str, object], objects: Sequence[dict[str, object]]) -> bytes:
    document = {**fields, "objects": list(objects)}
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _entry(published: PublishedObject, where: str) -> dict[str, object]:
    return {
        "name": published.name,
        where: published.location,
        "sha256": published.sha256,
        "size": published.size,
        "contentType": published.content_type,
    }


class _Meter:
    """Bytes stored so far across all artifacts, reported as one progress step."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def add(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(PROGRESS_STEP, self.done, self.total)


class _HashingReader:
    """A file read once: each chunk is hashed and metered on its way to the writer or the uploader."""

    def __init__(self, file: BinaryIO, meter: _Meter) -> None:
        self.file = file
        self.meter = meter
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.sha256.update(data)
        self.size += len(data)
        self.meter.add(len(data))
        return data


# -- local directory -----------------------------------------------------------------------------------------


def _publish_local(
    artifacts: Sequence[Artifact],
    fields: Mapping[str, object],
    directory: Path,
    broadcast: str,
    run_id: str,
    meter: _Meter,
) -> Publication:
    parent = directory.absolute() / broadcast
    final = parent / run_id
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.tmp-", dir=parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the published run from a web server serving the directory
    except OSError as exc:
        raise _local_failure(exc, directory, "create the run's directory") from None
    try:
        published = tuple(_copy(a, staging, final, meter) for a in artifacts)
        _write_durably(staging / MANIFEST, _manifest_bytes(fields, [_entry(p, "path") for p in published]))
        storage.fsync_directory(staging)
        _swap_into_place(staging, final)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        # An error naming an artifact is about scratch space (a bug upstream); any other is about the output.
        if isinstance(exc, OSError) and str(exc.filename) not in {str(a.path) for a in artifacts}:
            raise _local_failure(exc, directory, "write the run") from None
        raise
    _remove_leftovers(parent, run_id)
    video = final / _video(artifacts).name
    log.info("published run %s to %s", run_id, final)
    return Publication(
        location=str(final),
        video=str(video),
        video_url=video.as_uri(),
        manifest=str(final / MANIFEST),
        objects=published,
    )


def _copy(artifact: Artifact, staging: Path, final: Path, meter: _Meter) -> PublishedObject:
    with artifact.path.open("rb") as source, (staging / artifact.name).open("xb") as target:
        reader = _HashingReader(source, meter)
        while chunk := reader.read(_CHUNK):
            target.write(chunk)
        target.flush()
        os.fsync(target.fileno())
    return PublishedObject(
        name=artifact.name,
        location=str(final / artifact.name),
        sha256=reader.sha256.hexdigest(),
        size=reader.size,
        content_type=content_type(artifact),
    )


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("xb") as target:
        target.write(data)
        target.flush()
        os.fsync(target.fileno())


def _swap_into_place(staging: Path, final: Path) -> None:
    """Rename the staged run to its final name; an older run of that id is moved aside first, then deleted.

    Between the two renames the run is briefly absent, never half-written. If the second rename fails the old
    run is put back.
    """
    aside: Path | None = None
    if final.exists() or final.is_symlink():
        aside = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
        final.rename(aside)
    try:
        staging.rename(final)
    except BaseException:
        if aside is not None:
            aside.rename(final)
        raise
    storage.fsync_directory(final.parent)
    if aside is not None:
        _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_leftovers(parent: Path, run_id: str) -> None:
    """Staging and moved-aside copies of this run left by a crashed earlier attempt: garbage once it is in place."""
    # Exactly 8 characters of random suffix (mkdtemp's and token_hex(4)'s), so run "a" never sweeps run "a.tmp-b".
    for pattern in (f".{run_id}.tmp-????????", f".{run_id}.old-????????"):
        for leftover in parent.glob(pattern):
            _remove(leftover)


def _local_failure(exc: OSError, directory: Path, doing: str) -> JobError:
    reason = exc.strerror or str(exc)
    where = f"{exc.filename}" if exc.filename else str(directory)
    if exc.errno in _NO_ROOM:
        return TransientError(f"cannot {doing} in spec.output.directory {str(directory)!r}: {reason} ({where})")
    return ConfigError(
        f"cannot {doing} in spec.output.directory {str(directory)!r}: {reason} ({where}); "
        "it must be a writable directory"
    )


def _run_prefix(s3: S3Output, broadcast: str, run_id: str) -> str:
    parts = [p for p in s3.prefix.split("/") if p] + [broadcast, run_id]
    return "/".join(parts) + "/"


def _publish_s3(
    artifacts: Sequence[Artifact],
    fields: Mapping[str, object],
    s3: S3Output,
    broadcast: str,
    run_id: str,
    env: Mapping[str, str],
    meter: _Meter,
) -> Publication:
    credentials = storage.credentials(env)
    client = storage.client(s3, credentials, env)
    prefix = _run_prefix(s3, broadcast, run_id)
    manifest_key = prefix + MANIFEST
    with storage.errors(s3, credentials, "nothing was uploaded"):
        if not client.bucket_exists(s3.bucket):
            raise ConfigError(f"bucket {s3.bucket!r} does not exist on {s3.endpoint} (spec.output.s3.bucket)")
        # Unpublish the run this id had before, so nobody reads its manifest against half-replaced objects.
        client.remove_object(s3.bucket, manifest_key)
    unpublished = f"no {MANIFEST} was written, so run {run_id} is not published"
    published: list[PublishedObject] = []
    for artifact in artifacts:
        context = f"uploading {artifact.name} failed after {len(published)} of {len(artifacts)} objects; {unpublished}"
        with storage.errors(s3, credentials, context):
            published.append(_upload(client, s3.bucket, prefix, artifact, meter))
    with storage.errors(s3, credentials, f"removing the previous run's leftover objects failed; {unpublished}"):
        _remove_stale(client, s3.bucket, prefix, {p.location for p in published})
    with storage.errors(s3, credentials, f"writing {MANIFEST} failed, so run {run_id} is not published"):
        data = _manifest_bytes(fields, [_entry(p, "key") for p in published])
        client.put_object(s3.bucket, manifest_key, io.BytesIO(data), len(data), content_type="application/json")
    video_key = prefix + _video(artifacts).name
    with storage.errors(s3, credentials, f"run {run_id} is published, but presigning the video's URL failed"):
        url = client.presigned_get_object(s3.bucket, video_key, expires=timedelta(seconds=s3.presign_expiry_seconds))
    log.info("published run %s to s3://%s/%s", run_id, s3.bucket, prefix)
    return Publication(
        location=f"s3://{s3.bucket}/{prefix}",
        video=f"s3://{s3.bucket}/{video_key}",
        video_url=url,
        manifest=f"s3://{s3.bucket}/{manifest_key}",
        objects=tuple(published),
    )


def _upload(client: Minio, bucket: str, prefix: str, artifact: Artifact, meter: _Meter) -> PublishedObject:
    key = prefix + artifact.name
    kind = content_type(artifact)
    size = _size(artifact.path)
    log.debug("uploading %s (%d bytes, %s)", key, size, kind)
    with artifact.path.open("rb") as source:
        # put_object rather than fput_object: the upload reads through the hasher, so the file is read once.
        reader = _HashingReader(source, meter)
        client.put_object(bucket, key, cast(BinaryIO, reader), size, content_type=kind)  # it only calls read()
    return PublishedObject(artifact.name, key, reader.sha256.hexdigest(), reader.size, kind)


def _remove_stale(client: Minio, bucket: str, prefix: str, keep: set[str]) -> None:
    """Objects an earlier run of this id published that this run does not: they would outlive its manifest."""
    for stale in client.list_objects(bucket, prefix=prefix, recursive=True):
        if stale.object_name not in keep and stale.object_name != prefix + MANIFEST:
            client.remove_object(bucket, stale.object_name)
