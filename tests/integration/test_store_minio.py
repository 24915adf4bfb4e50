"""Publishing a run to a real MinIO server on 127.0.0.1: every object hashed and typed, the manifest last,
re-runs replace, and bad settings fail clearly without publishing anything or leaking the secret."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from minio import Minio

from api.v1alpha1 import Output
from job.model import Artifact, ConfigError, JobError, Publication, TransientError
from job.publish import store
from job.shared import storage
from tests.support.builders import a_broadcast
from tests.support.http import Reply, scripted_server
from tests.support.minio_server import MinioServer, running_minio, user_denied_puts
from tests.support.processes import free_port

pytestmark = pytest.mark.minio

EXPECTED_TYPES = {
    "video.mp4": "video/mp4",
    "thumbnail.jpg": "image/jpeg",
    "subtitles.srt": "application/x-subrip",
    "subtitles.vtt": "text/vtt; charset=utf-8",
    "script.json": "application/json",
    "credits.txt": "text/plain; charset=utf-8",
}
PREFIX = "news/morning/run-1/"
MANIFEST_KEY = PREFIX + "manifest.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with running_minio(tmp_path_factory.mktemp("minio-store")) as running:
        yield running


@pytest.fixture
def admin(server: MinioServer) -> Minio:
    return Minio(server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False)


@pytest.fixture
def bucket(admin: Minio) -> str:
    name = f"runs-{uuid.uuid4().hex[:10]}"
    admin.make_bucket(name)
    return name


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The writes the store makes, in order: the real client, subclassed only to keep a log."""
    log: list[tuple[str, str]] = []

    class RecordingMinio(Minio):
        def put_object(self, bucket_name: str, object_name: str, *args: Any, **kwargs: Any) -> Any:
            log.append(("put", object_name))
            return super().put_object(bucket_name, object_name, *args, **kwargs)

        def remove_object(self, bucket_name: str, object_name: str, *args: Any, **kwargs: Any) -> None:
            log.append(("remove", object_name))
            super().remove_object(bucket_name, object_name, *args, **kwargs)

    monkeypatch.setattr(storage, "Minio", RecordingMinio)
    return log


def _output(server_endpoint: str, bucket: str, prefix: str = "news") -> Output:
    return a_broadcast().s3(endpoint=server_endpoint, bucket=bucket, prefix=prefix, secure=False).model().spec.output


def _env(access_key: str, secret_key: str) -> dict[str, str]:
    return {"ANCHOR_S3_ACCESS_KEY_ID": access_key, "ANCHOR_S3_SECRET_ACCESS_KEY": secret_key}


def _artifacts(scratch: Path, tag: str = "first") -> list[Artifact]:
    scratch.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for name, kind in EXPECTED_TYPES.items():
        size = (6 << 20) if name == "video.mp4" else 200  # the video goes up in several parts
        (scratch / name).write_bytes(os.urandom(size) + tag.encode())
        # The VTT brings no type of its own: the store knows it from the suffix.
        artifacts.append(Artifact(name, scratch / name, "" if name.endswith(".vtt") else kind))
    return artifacts


def _publish(
    server: MinioServer, bucket: str, artifacts: list[Artifact], *, n: int = 1, secret: str | None = None
) -> Publication:
    return store.publish(
        artifacts,
        manifest={"broadcast": "morning", "runId": "run-1", "n": n, "title": "朝のニュース"},
        output=_output(server.endpoint, bucket),
        broadcast="morning",
        run_id="run-1",
        env=_env(server.access_key, secret or server.secret_key),
    )


def _keys(admin: Minio, bucket: str) -> set[str]:
    return {o.object_name for o in admin.list_objects(bucket, recursive=True)}


def _manifest(admin: Minio, bucket: str) -> dict[str, Any]:
    response = admin.get_object(bucket, MANIFEST_KEY)
    try:
        document: dict[str, Any] = json.loads(response.read().decode("utf-8"))
        return document
    finally:
        response.close()
        response.release_conn()


def _download(admin: Minio, bucket: str, key: str) -> bytes:
    response = admin.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_every_object_is_published_hashed_and_typed_and_the_manifest_last(
    server: MinioServer, admin: Minio, bucket: str, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    artifacts = _artifacts(tmp_path)
    publication = _publish(server, bucket, artifacts)

    manifest = _manifest(admin, bucket)
    assert manifest["title"] == "朝のニュース" and manifest["n"] == 1
    entries = manifest["objects"]
    assert _keys(admin, bucket) == {e["key"] for e in entries} | {MANIFEST_KEY}
    assert {e["name"]: e["contentType"] for e in entries} == EXPECTED_TYPES
    for entry in entries:
        assert entry["key"] == PREFIX + entry["name"]
        data = _download(admin, bucket, entry["key"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["key"]
        assert entry["size"] == len(data)
        assert data == (tmp_path / entry["name"]).read_bytes()
        assert admin.stat_object(bucket, entry["key"]).content_type == EXPECTED_TYPES[entry["name"]]
    assert admin.stat_object(bucket, MANIFEST_KEY).content_type == "application/json"

    # Order: the old manifest is removed first, every object goes up, the manifest goes up last.
    assert calls[0] == ("remove", MANIFEST_KEY)
    assert calls[-1] == ("put", MANIFEST_KEY)
    assert [key for verb, key in calls if verb == "put"][:-1] == [PREFIX + a.name for a in artifacts]
    stats = {key: admin.stat_object(bucket, key).last_modified for key in _keys(admin, bucket)}
    assert stats[MANIFEST_KEY] == max(t for t in stats.values() if t is not None)

    assert publication.location == f"s3://{bucket}/{PREFIX}"
    assert publication.video == f"s3://{bucket}/{PREFIX}video.mp4"
    assert publication.manifest == f"s3://{bucket}/{MANIFEST_KEY}"
    assert [o.location for o in publication.objects] == [e["key"] for e in entries]

    with requests.Session() as session:
        session.trust_env = False
        served = session.get(publication.video_url, timeout=30)
    assert served.status_code == 200
    video_sha = next(e["sha256"] for e in entries if e["name"] == "video.mp4")
    assert hashlib.sha256(served.content).hexdigest() == video_sha


def test_a_rerun_unpublishes_then_replaces_the_run(
    server: MinioServer, admin: Minio, bucket: str, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    first = _artifacts(tmp_path / "one")
    first.append(Artifact("extra.txt", tmp_path / "one" / "credits.txt", "text/plain; charset=utf-8"))
    _publish(server, bucket, first, n=1)
    calls.clear()

    second = _artifacts(tmp_path / "two", tag="second")
    _publish(server, bucket, second, n=2)

    assert calls[0] == ("remove", MANIFEST_KEY), "the old run is unpublished before anything is overwritten"
    assert calls[-1] == ("put", MANIFEST_KEY)
    manifest = _manifest(admin, bucket)
    assert manifest["n"] == 2
    assert _keys(admin, bucket) == {PREFIX + a.name for a in second} | {MANIFEST_KEY}, "extra.txt is gone"
    video = next(e for e in manifest["objects"] if e["name"] == "video.mp4")
    assert hashlib.sha256(_download(admin, bucket, video["key"])).hexdigest() == video["sha256"]
    assert video["sha256"] == hashlib.sha256((tmp_path / "two" / "video.mp4").read_bytes()).hexdigest()


def test_an_empty_prefix_gives_keys_without_a_leading_slash(
    server: MinioServer, admin: Minio, bucket: str, tmp_path: Path
) -> None:
    store.publish(
        _artifacts(tmp_path),
        manifest={},
        output=_output(server.endpoint, bucket, prefix=""),
        broadcast="morning",
        run_id="run-1",
        env=_env(server.access_key, server.secret_key),
    )
    assert _keys(admin, bucket) == {f"morning/run-1/{name}" for name in [*EXPECTED_TYPES, "manifest.json"]}


def test_a_wrong_secret_is_a_config_error_about_credentials_and_uploads_nothing(
    server: MinioServer, admin: Minio, bucket: str, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(16)
    with pytest.raises(ConfigError) as failure:
        _publish(server, bucket, _artifacts(tmp_path), secret=wrong)
    message = str(failure.value)
    assert "credentials" in message and "spec.output.s3.credentials" in message
    assert wrong not in message and server.secret_key not in message
    assert calls == []
    assert _keys(admin, bucket) == set()


def test_a_missing_bucket_is_a_config_error_naming_it_and_creates_nothing(
    server: MinioServer, admin: Minio, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigError) as failure:
        _publish(server, missing, _artifacts(tmp_path))
    assert f"bucket {missing!r} does not exist on {server.endpoint}" in str(failure.value)
    assert "spec.output.s3.bucket" in str(failure.value)
    assert calls == []
    assert not admin.bucket_exists(missing)


def test_a_server_that_is_down_is_a_transient_error(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(TransientError) as failure:
        store.publish(
            _artifacts(tmp_path),
            manifest={},
            output=_output(endpoint, "runs"),
            broadcast="morning",
            run_id="run-1",
            env=_env("anchor-test", "not-used-" + secrets.token_hex(8)),
        )
    assert endpoint in str(failure.value)
    assert time.monotonic() - started < 20, "the client's retries are bounded"


def test_missing_credentials_name_the_variables(server: MinioServer, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as failure:
        store.publish(
            _artifacts(tmp_path),
            manifest={},
            output=_output(server.endpoint, bucket),
            broadcast="morning",
            run_id="run-1",
            env={},
        )
    assert "ANCHOR_S3_ACCESS_KEY_ID" in str(failure.value) and "ANCHOR_S3_SECRET_ACCESS_KEY" in str(failure.value)


def test_a_denied_upload_midway_leaves_the_run_unpublished(
    server: MinioServer, admin: Minio, bucket: str, calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    """A user that may do everything in the bucket but write subtitles: a real refusal in the middle."""
    _publish(server, bucket, _artifacts(tmp_path / "one"), n=1)
    user, password = user_denied_puts(server, bucket, "*/subtitles.srt")
    calls.clear()

    with pytest.raises(ConfigError) as failure:
        store.publish(
            _artifacts(tmp_path / "two", tag="second"),
            manifest={"n": 2},
            output=_output(server.endpoint, bucket),
            broadcast="morning",
            run_id="run-1",
            env=_env(user, password),
        )
    message = str(failure.value)
    assert "AccessDenied" in message and "subtitles.srt" in message
    assert "no manifest.json was written" in message and "not published" in message
    assert password not in message
    assert ("put", PREFIX + "subtitles.srt") in calls
    assert ("put", MANIFEST_KEY) not in calls
    keys = _keys(admin, bucket)
    assert MANIFEST_KEY not in keys, "the old run was unpublished and the new one never published"
    assert PREFIX + "video.mp4" in keys


def test_no_secret_reaches_an_exception_or_a_log_record(
    server: MinioServer, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + secrets.token_urlsafe(16)
    texts: list[str] = []
    _publish(server, bucket, _artifacts(tmp_path / "ok"))
    for secret, target in ((wrong, bucket), (server.secret_key, "missing-bucket"), (wrong, "missing-bucket")):
        with pytest.raises(JobError) as failure:
            _publish(server, target, _artifacts(tmp_path / "bad"), secret=secret)
        texts += [str(failure.value), repr(failure.value), str(failure.value.__cause__ or "")]
    texts += [record.getMessage() for record in caplog.records]
    assert len(caplog.records) > 0, "the client's requests are logged at debug level"
    for text in texts:
        assert server.secret_key not in text and wrong not in text


# -- endpoints that are not a healthy S3 API (a scripted peer on 127.0.0.1) -------------------------------------

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (Reply(503, SLOW_DOWN, "application/xml"), TransientError, "SlowDown"),
        (Reply(502, b"<html>bad gateway</html>", "text/html"), TransientError, "server error page"),
        (Reply(404, b"<html>no such page</html>", "text/html"), ConfigError, "did not answer as an S3 API"),
        (
            Reply(200, b"<!doctype html><html><body>a web site<br></body></html>", "text/html"),
            ConfigError,
            "did not answer as an S3 API",
        ),
    ],
)
def test_an_unhealthy_or_wrong_endpoint_is_classified(
    reply: Reply, error: type[JobError], words: str, tmp_path: Path
) -> None:
    with scripted_server(lambda method, path, body: reply) as peer:
        endpoint = peer.url.removeprefix("http://")
        with pytest.raises(error) as failure:
            store.publish(
                _artifacts(tmp_path),
                manifest={},
                output=_output(endpoint, "runs"),
                broadcast="morning",
                run_id="run-1",
                env=_env("anchor-test", "secret-" + secrets.token_hex(8)),
            )
    assert words in str(failure.value) and endpoint in str(failure.value)
    assert "nothing was uploaded" in str(failure.value)
    assert all(r.method == "GET" for r in peer.requests), "no upload was attempted"


def test_a_portrait_or_music_object_is_read_from_the_bucket_bounded(
    server: MinioServer, admin: Minio, bucket: str, tmp_path: Path
) -> None:
    """spec.cast[].portrait.object and spec.audio.music.object: read with the run's credentials, no larger than the
    asset's limit, and a missing one named with its field."""
    import io

    from api.v1alpha1 import MediaSource
    from job.assets import AssetLimits, AssetUnavailable, local_file

    admin.put_object(bucket, "assets/bed.flac", io.BytesIO(b"fLaC" + b"\0" * 100), 104)
    spec = a_broadcast().s3(endpoint=server.endpoint, bucket=bucket, secure=False).model().spec
    env = _env(server.access_key, server.secret_key)
    limits = AssetLimits(1000, "a music bed")
    got = local_file(
        MediaSource(object="assets/bed.flac"), "spec.audio.music", tmp_path, spec, env, base_dir=None, limits=limits
    )
    assert (got.name, got.read_bytes()[:4]) == ("music.flac", b"fLaC")
    with pytest.raises(AssetUnavailable, match=r"spec\.audio\.music\.object assets/bed\.flac is 104 bytes; at most 50"):
        local_file(MediaSource(object="assets/bed.flac"), "spec.audio.music", tmp_path, spec, env, base_dir=None,
                   limits=AssetLimits(50, "a music bed"))  # fmt: skip
    with pytest.raises(AssetUnavailable, match=r"spec\.audio\.music\.object") as missing:
        local_file(
            MediaSource(object="assets/none.mp3"), "spec.audio.music", tmp_path, spec, env, base_dir=None, limits=limits
        )
    assert server.secret_key not in str(missing.value)
