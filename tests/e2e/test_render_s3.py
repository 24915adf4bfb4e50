"""The same run published to a real MinIO server on 127.0.0.1: manifest last, hashes right, presigned URL works."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
import requests
from minio import Minio

from api.result import ExitCode
from tests.e2e.conftest import AnchorRun, run_anchor
from tests.support.builders import BroadcastBuilder, a_broadcast
from tests.support.http import ScriptedServer
from tests.support.minio_server import MinioServer
from tests.support.published import check_published, object_sha256
from voicevox_standin.server import StandinEngine

pytestmark = [pytest.mark.e2e, pytest.mark.minio]


def _client(minio: MinioServer) -> Minio:
    return Minio(minio.endpoint, access_key=minio.access_key, secret_key=minio.secret_key, secure=False)


def _bucket(minio: MinioServer) -> str:
    name = f"news-{uuid.uuid4().hex[:8]}"
    _client(minio).make_bucket(name)
    return name


def _broadcast(feeds: ScriptedServer, engine: StandinEngine, minio: MinioServer, bucket: str) -> BroadcastBuilder:
    return (
        a_broadcast("e2e-s3")
        .feed(f"{feeds.url}/en.atom")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="en", stories=1)  # what is checked is the store, not the broadcast
        .voice(engineUrl=engine.url)
        .video(resolution="1280x720", fps=10)
        .s3(endpoint=minio.endpoint, bucket=bucket, prefix="news", secure=False)
    )


def _render(builder: BroadcastBuilder, tmp_path: Path, access: str, secret: str) -> AnchorRun:
    path = builder.write(tmp_path / "broadcast.yaml")
    env = {"ANCHOR_S3_ACCESS_KEY_ID": access, "ANCHOR_S3_SECRET_ACCESS_KEY": secret}
    return run_anchor("render", str(path), "--run-id", "run-1", env=env, cwd=tmp_path)


def test_publishes_every_object_then_the_manifest_and_a_working_presigned_url(
    feed_server: ScriptedServer, engine: StandinEngine, minio: MinioServer, tmp_path: Path
) -> None:
    bucket = _bucket(minio)
    run = _render(_broadcast(feed_server, engine, minio, bucket), tmp_path, minio.access_key, minio.secret_key)
    assert run.code == 0, run.stderr
    assert minio.secret_key not in run.stdout + run.stderr
    result = run.result
    assert result["video"] == f"s3://{bucket}/news/e2e-s3/run-1/video.mp4"

    manifest = check_published(_client(minio), bucket, "news/e2e-s3/run-1/")
    served = requests.get(result["videoUrl"], timeout=30)
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == object_sha256(manifest, "video.mp4")
    assert not list(tmp_path.glob("out/**/*.mp4")), "nothing is left in the local directory"


def test_wrong_credentials_are_a_config_error_and_upload_nothing(
    feed_server: ScriptedServer, engine: StandinEngine, minio: MinioServer, tmp_path: Path
) -> None:
    bucket = _bucket(minio)
    wrong = "not-the-secret-" + uuid.uuid4().hex
    run = _render(_broadcast(feed_server, engine, minio, bucket), tmp_path, minio.access_key, wrong)
    assert run.code == int(ExitCode.CONFIG_ERROR), run.stderr
    assert "credentials" in run.result["message"]
    assert wrong not in run.stdout + run.stderr
    assert list(_client(minio).list_objects(bucket, recursive=True)) == []


def test_missing_bucket_is_a_config_error_naming_it(
    feed_server: ScriptedServer, engine: StandinEngine, minio: MinioServer, tmp_path: Path
) -> None:
    run = _render(
        _broadcast(feed_server, engine, minio, "no-such-bucket"), tmp_path, minio.access_key, minio.secret_key
    )
    assert run.code == int(ExitCode.CONFIG_ERROR), run.stderr
    assert "no-such-bucket" in run.result["message"]
    assert not _client(minio).bucket_exists("no-such-bucket")
