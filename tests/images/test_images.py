"""The three images run as a user's cluster runs them (non-root, read-only root, no capabilities), hold only what
they run, stay within their size budgets, and together publish a broadcast to a real MinIO."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from minio import Minio

from controller.manifests import pod_spec
from controller.settings import Settings
from tests.support.builders import a_broadcast
from tests.support.docker import Images, budgets, docker, run, running, size_bytes
from tests.support.http import Reply, ScriptedServer, scripted_server
from tests.support.kwok import wait_for
from tests.support.media import probe
from tests.support.minio_server import MinioServer
from tests.support.processes import free_port
from tests.support.published import check_published

pytestmark = pytest.mark.images
REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("anchor", "api", "job", "controller", "voicevox_standin", "kopf", "kubernetes", "numpy", "PIL",
            "moviepy", "minio", "pyopenjtalk", "pip", "setuptools")  # fmt: skip


def _importable(image: str, python: str) -> set[str]:
    code = f"import importlib.util as u; print(' '.join(m for m in {PACKAGES!r} if u.find_spec(m)))"
    done = run(image, "-c", code, options=["--entrypoint", python])
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_each_image_runs_as_its_numeric_non_root_user(built: Images) -> None:
    users = {
        image: docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.strip()
        for image in (built.job, built.controller, built.engine_mock)
    }
    assert users == {built.job: "10001:10001", built.controller: "10001:10001", built.engine_mock: "1000:1000"}


def test_each_images_user_has_a_name(built: Images) -> None:
    """kopf (and getpass) ask for the user's name; a uid without an /etc/passwd entry crashes them."""
    code = "import getpass; print(getpass.getuser())"
    names = {
        image: run(image, "-c", code, options=["--entrypoint", python]).stdout.strip()
        for image, python in ((built.job, "/opt/anchor/bin/python"), (built.controller, "/opt/anchor/bin/python"),
                              (built.engine_mock, "/opt/voicevox_engine/venv/bin/python"))
    }  # fmt: skip
    assert names == {built.job: "anchor", built.controller: "anchor", built.engine_mock: "user"}


def test_each_image_holds_only_what_it_runs_and_no_pip(built: Images) -> None:
    assert _importable(built.controller, "/opt/anchor/bin/python") == {"anchor", "api", "controller", "kopf",
                                                                      "kubernetes"}  # fmt: skip
    assert _importable(built.job, "/opt/anchor/bin/python") == {"anchor", "api", "job", "numpy", "PIL", "moviepy",
                                                               "minio"}  # fmt: skip
    assert _importable(built.engine_mock, "/opt/voicevox_engine/venv/bin/python") == {"voicevox_standin", "numpy",
                                                                                     "pyopenjtalk"}  # fmt: skip


def test_each_image_is_within_its_size_budget_above_the_base(built: Images) -> None:
    base = size_bytes(built.base)
    above = {
        name: (size_bytes(image) - base) // 1_000_000
        for name, image in (("job", built.job), ("controller", built.controller), ("engine-mock", built.engine_mock))
    }
    over = {name: f"{mb} MB > {budgets()[name]} MB" for name, mb in above.items() if mb > budgets()[name]}
    assert not over, f"over budget: {over} (all: {above})"


def test_the_controller_image_answers_help_under_restrictions(built: Images) -> None:
    done = run(built.controller, "--help", options=["--user", "10001:10001"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: anchor controller")


def test_a_command_missing_from_an_image_names_the_image_that_has_it(built: Images) -> None:
    done = run(built.job, "controller", "--help")
    assert done.returncode == 2
    assert "'controller' is not part of this installation; it comes with the anchor-controller image" in done.stderr
    listing = run(built.job, "--help")
    assert "controller      run the Kubernetes operator" in listing.stdout
    assert "(not in this installation)" in listing.stdout


@pytest.fixture
def engine_port(built: Images) -> Iterator[int]:
    """The mock engine started as the controller's pod spec starts the sidecar: same command, args and user."""
    port = free_port()
    settings = Settings(engine_port=port)
    sidecar = pod_spec(a_broadcast("mock").feed("https://news.example/feed.xml").model(), settings)
    engine = sidecar["initContainers"][0]
    options = ["--network", "host", "--user", str(engine["securityContext"]["runAsUser"]),
               "--tmpfs", "/tmp:size=256m", "--entrypoint", engine["command"][0]]  # fmt: skip
    with running(built.engine_mock, *engine["args"], options=options) as container:
        probe_command = engine["startupProbe"]["exec"]["command"]

        def ready() -> bool:
            return container.exec(*probe_command).returncode == 0

        wait_for(ready, f"the pod's startup probe to pass on the mock engine; logs:\n{container.logs()}", timeout=60)
        assert "--use_gpu" not in engine["args"] or "speaking on the CPU" in container.logs()
        yield port


def test_the_mock_engine_speaks_the_engine_api_on_the_sidecar_command_line(engine_port: int) -> None:
    base = f"http://127.0.0.1:{engine_port}"
    assert requests.get(f"{base}/version", timeout=10).json().endswith("anchor-standin")
    query = requests.post(f"{base}/audio_query", params={"text": "こんにちは", "speaker": 3}, timeout=30)
    assert query.status_code == 200, query.text
    wav = requests.post(f"{base}/synthesis", params={"speaker": 3}, json=query.json(), timeout=60)
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"


@pytest.fixture
def sample_feed() -> Iterator[ScriptedServer]:
    feed = (REPO / "job" / "sample" / "feed-ja.xml").read_bytes()
    with scripted_server(lambda _m, _p, _b: Reply(200, feed, "application/rss+xml; charset=utf-8")) as server:
        yield server


def test_the_job_image_publishes_the_sample_to_minio_against_the_mock_engine(
    engine_port: int, sample_feed: ScriptedServer, minio: MinioServer, built: Images, tmp_path: Path
) -> None:
    client = Minio(minio.endpoint, access_key=minio.access_key, secret_key=minio.secret_key, secure=False)
    bucket = f"news-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    broadcast = (
        a_broadcast("image-news")
        .feed(f"{sample_feed.url}/feed.xml")
        .sources(maxAgeHours=0, allowedAddresses=["127.0.0.1/32"])
        .script(language="ja", stories=2)
        .voice(engineUrl=f"http://127.0.0.1:{engine_port}")
        .video(resolution="1280x720", fps=10)
        .s3(endpoint=minio.endpoint, bucket=bucket, prefix="news", secure=False)
    )
    path = broadcast.write(tmp_path / "broadcast.yaml")
    path.chmod(0o644)
    options = ["--network", "host", "--tmpfs", "/tmp:size=1g", "-v", f"{path}:/etc/anchor/broadcast.yaml:ro",
               "-e", f"ANCHOR_S3_ACCESS_KEY_ID={minio.access_key}",
               "-e", f"ANCHOR_S3_SECRET_ACCESS_KEY={minio.secret_key}", "-e", "ANCHOR_RUN_ID=image-run"]  # fmt: skip
    done = run(built.job, options=options, timeout=600)  # the image's own CMD: render /etc/anchor/broadcast.yaml
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert minio.secret_key not in done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "Succeeded"
    check_published(client, bucket, "news/image-news/image-run/")
    video = tmp_path / "video.mp4"
    video.write_bytes(client.get_object(bucket, "news/image-news/image-run/video.mp4").read())
    streams = probe(video)
    assert [s.codec for s in streams.of("video")] == ["h264"] and streams.of("video")[0].height == 720
    assert streams.duration > 5
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert events, "off a terminal the job logs JSON lines"
