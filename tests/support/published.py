"""What a published run must look like in the bucket: every manifest entry there with its hash, the manifest
written last, nothing else under the run's prefix."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from minio import Minio

from api.v1alpha1 import Output
from job.model import Artifact
from job.publish import store


def check_published(client: Minio, bucket: str, run_prefix: str) -> dict[str, Any]:
    """Assert the run under `run_prefix` (ending in '/') was published whole; return its manifest."""
    objects = {o.object_name: o for o in client.list_objects(bucket, prefix=run_prefix, recursive=True)}
    manifest_key = f"{run_prefix}manifest.json"
    assert manifest_key in objects, f"no manifest under s3://{bucket}/{run_prefix}: {sorted(objects)}"
    manifest: dict[str, Any] = json.loads(client.get_object(bucket, manifest_key).read())
    assert set(objects) == {o["key"] for o in manifest["objects"]} | {manifest_key}
    for entry in manifest["objects"]:
        data = client.get_object(bucket, entry["key"]).read()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["key"]
        assert client.stat_object(bucket, entry["key"]).content_type == entry["contentType"], entry["key"]
    others = [o.last_modified for key, o in objects.items() if key != manifest_key]
    assert objects[manifest_key].last_modified >= max(others), "the manifest is written last"
    return manifest


def object_sha256(manifest: dict[str, Any], name: str) -> str:
    sha: str = next(o["sha256"] for o in manifest["objects"] if o["name"] == name)
    return sha


def publish_run(
    output: Output,
    run_id: str,
    hour: int,
    files: Mapping[str, bytes],
    scratch: Path,
    *,
    stories: list[dict[str, str]],
    duration: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> None:
    """Publish `files` (stand-ins for a run's media) as run `run_id` of broadcast "morning", aired at `hour`:00
    Tokyo time, with the manifest fields the page and feeds read, as the pipeline would."""
    scratch.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for name, data in files.items():
        (scratch / name).write_bytes(data)
        artifacts.append(Artifact(name, scratch / name, ""))  # the store types them by suffix, .m4a included
    manifest = {
        "runId": run_id,
        "airedAt": f"2026-11-30T{hour:02d}:00:00+09:00",
        "title": "Morning",
        "language": "en",
        "durationSeconds": duration,
        "stories": stories,
        "credits": ["VOICEVOX:ずんだもん"],
    }
    store.publish(
        artifacts, manifest=manifest, output=output, broadcast="morning", run_id=run_id, env=env or os.environ
    )
