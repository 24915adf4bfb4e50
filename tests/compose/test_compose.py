"""README's "One GPU PC, no Kubernetes" routine, run as written: compose.yaml is valid in each variant, and
`docker compose run --rm job` (the systemd unit's ExecStart, the crontab line with its lock, the `s3` profile with a
real SeaweedFS) renders the compose sample broadcast against the CPU mock engine, after which `docker compose down`
leaves no container, network or volume of the project behind."""

from __future__ import annotations

import configparser
import fcntl
import json
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from minio.error import S3Error

from api.load import load_broadcast
from tests.compose.conftest import (
    USER_IDS,
    Project,
    feed_on_network,
    last_json_line,
    last_result,
    readme_crontab,
    stack_settings,
)
from tests.support.docker import Images
from tests.support.media import probe
from tests.support.processes import free_port
from tests.support.published import check_published
from tests.support.seaweedfs import seaweedfs_image
from tests.support.tools import REPO

pytestmark = pytest.mark.compose
SYSTEMD = REPO / "compose" / "systemd"


def _config(project: Project, *args: str) -> dict[str, Any]:
    done = project.compose(*args, "config", "--format", "json", timeout=60)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def test_compose_config_is_valid_for_the_gpu_and_cpu_variants_and_the_s3_profile(project: Project) -> None:
    """`docker compose config` of the files as shipped, with no .env: the defaults are the pinned official images."""
    gpu = _config(project)
    engine, job = gpu["services"]["voicevox"], gpu["services"]["job"]
    assert set(gpu["services"]) == {"voicevox", "job"}, "seaweedfs runs only with --profile s3"
    assert engine["image"] == "voicevox/voicevox_engine:nvidia-0.25.2"
    devices = engine["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"capabilities": ["gpu"], "driver": "nvidia", "count": -1}]  # count: all
    assert "--use_gpu" in engine["command"] and engine["command"][:2] == ["--host", "127.0.0.1"]
    assert job["image"] == "ghcr.io/anchor-news/anchor-job:0.1.0"
    assert job["network_mode"] == "service:voicevox"
    assert job["depends_on"]["voicevox"]["condition"] == "service_healthy"
    assert engine["healthcheck"]["test"][:3] == ["CMD", "bash", "-c"]

    cpu = _config(project, "-f", "compose.yaml", "-f", "compose.cpu.yaml")
    engine = cpu["services"]["voicevox"]
    assert engine["image"] == "voicevox/voicevox_engine:cpu-0.25.2"
    assert not engine.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert "--use_gpu" not in engine["command"]
    assert cpu["services"]["job"]["environment"]["ANCHOR_ENGINE_USE_GPU"] == "false"

    s3 = _config(project, "--profile", "s3")
    seaweedfs = s3["services"]["seaweedfs"]
    assert re.fullmatch(r"chrislusf/seaweedfs:\d+\.\d+", seaweedfs["image"]), seaweedfs["image"]
    assert seaweedfs["ports"][0]["host_ip"] == "127.0.0.1"
    assert "seaweedfs" in s3["volumes"]


def test_the_compose_broadcasts_are_valid_as_shipped() -> None:
    """The sample broadcasts validate as written (the runs below only swap their feed for the test's)."""
    local = load_broadcast(REPO / "compose" / "broadcast.yaml")
    assert local.spec.output.directory == "/out" and local.spec.output.s3 is None
    assert [f.url for f in local.spec.sources.feeds] == ["https://www.nhk.or.jp/rss/news/cat0.xml"]
    s3 = load_broadcast(REPO / "compose" / "broadcast-s3.yaml").spec.output.s3
    assert s3 is not None and (s3.endpoint, s3.bucket, s3.secure) == ("seaweedfs:8333", "anchor", False)


def test_the_systemd_units_are_valid_and_run_the_routine() -> None:
    service = configparser.ConfigParser(interpolation=None)
    service.read(SYSTEMD / "anchor-news.service")
    assert service["Service"]["ExecStart"] == "/usr/bin/docker compose run --rm job"
    assert service["Service"]["Type"] == "oneshot"
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(SYSTEMD / "anchor-news.timer")
    assert timer["Timer"]["Persistent"] == "true"
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units' syntax is not verified here")
    done = subprocess.run(["systemd-analyze", "verify", *(str(p) for p in sorted(SYSTEMD.iterdir()))],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _video(project: Project, run_id: str) -> Path:
    run = project.directory / "out" / "news-ja" / run_id
    manifest = json.loads((run / "manifest.json").read_text())
    assert {o["name"] for o in manifest["objects"]} >= {"video.mp4", "thumbnail.jpg", "subtitles.srt"}
    return run / "video.mp4"


def test_docker_compose_run_renders_the_sample_broadcast_and_down_leaves_nothing(
    project: Project, built: Images
) -> None:
    """The systemd unit's ExecStart in the project's directory (its WorkingDirectory): the engine is created, started
    and waited for by compose, the job renders compose/broadcast.yaml (its feed served here) into ./out as the
    user of ANCHOR_USER, and `down` removes the engine and the network."""
    project.write_env(**stack_settings(built))
    service = configparser.ConfigParser(interpolation=None)
    service.read(SYSTEMD / "anchor-news.service")
    command = shlex.split(service["Service"]["ExecStart"])
    with feed_on_network(project) as feed:
        # The routine as shipped; three stories at 10 fps are enough to see it work (the size is the sample's).
        project.broadcast("broadcast.yaml", f"{feed.url}/feed.xml", script={"stories": 3}, video={"fps": 10})
        done = subprocess.run(command, cwd=project.directory, env=project.env, capture_output=True, text=True,
                              timeout=280, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = last_json_line(done.stdout)
    assert result["status"] == "Succeeded" and result["stories"] == 3, result
    assert result["engine"]["version"].endswith("anchor-standin") and result["engine"]["device"] == "cpu"
    assert [r.path for r in feed.requests] == ["/feed.xml"]
    video = _video(project, result["runId"])
    assert video.stat().st_uid == USER_IDS[0], "the job writes ./out as ANCHOR_USER"
    streams = probe(video)
    assert [s.codec for s in streams.of("video")] == ["h264"]
    assert (streams.of("video")[0].width, streams.of("video")[0].height) == (1920, 1080)
    assert [s.codec for s in streams.of("audio")] == ["aac"]
    assert streams.duration > 30
    assert project.leftovers().keys() == {"containers", "networks"}, "the engine stays up between runs"

    down = project.compose("down")
    assert down.returncode == 0, down.stderr
    assert project.leftovers() == {}


def _crontab() -> tuple[str, str]:
    """The README's crontab: the name its variable line sets and the command of its schedule line."""
    lines = readme_crontab().strip().splitlines()
    variable = next(line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z_]+=", line))
    schedule = next(line for line in lines if re.match(r"^[\d*]", line))
    return variable, schedule.split(None, 5)[5]


def test_the_crontab_line_runs_the_job_once_at_a_time(project: Project, built: Images) -> None:
    """The crontab line's command, run as cron runs it (/bin/sh from /, cron's PATH, the crontab's variable, stdin
    closed; DOCKER_CONFIG stands for the user's ~/.docker with the Compose plugin): it renders and logs the run;
    while its lock is held (a run still going), it skips without starting another."""
    project.write_env(**stack_settings(built))
    variable, command = _crontab()
    env = {"HOME": str(project.directory.parent), "LOGNAME": "root", "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin",
           "DOCKER_CONFIG": project.env["DOCKER_CONFIG"], variable: str(project.directory)}  # fmt: skip

    def cron() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", command], cwd="/", env=env, capture_output=True, text=True,
                              timeout=280, stdin=subprocess.DEVNULL)  # fmt: skip

    with feed_on_network(project) as feed:
        project.broadcast("broadcast.yaml", f"{feed.url}/feed.xml", script={"stories": 2},
                          video={"resolution": "1280x720", "fps": 10})  # fmt: skip
        done = cron()
        assert done.returncode == 0, done.stdout + done.stderr
        log = project.directory / "out" / "anchor.log"
        result = last_result(log.read_text())
        assert result["status"] == "Succeeded", result
        assert probe(_video(project, result["runId"])).of("video")[0].height == 720

        logged = log.read_text()
        with (project.directory / "out" / ".run.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress holds it
            skipped = cron()
        assert skipped.returncode == 1, skipped.stdout + skipped.stderr
        assert log.read_text() == logged, "a second run started while the first held the lock"
        assert len(feed.requests) == 1


def test_the_s3_profile_serves_a_bucket_the_job_publishes_into(project: Project, built: Images) -> None:
    """`--profile s3`: SeaweedFS (a stand-in image with the pinned weed, see seaweedfs.Dockerfile) refuses to start
    without keys, comes up with its bucket and the keys from .env, the job publishes compose/broadcast-s3.yaml into
    it over the project's network, the run is whole in the bucket seen through the port on 127.0.0.1 (and closed to
    anonymous callers), and `down --volumes` leaves nothing."""
    keys = {"ANCHOR_S3_ACCESS_KEY_ID": "anchor-test", "ANCHOR_S3_SECRET_ACCESS_KEY": uuid.uuid4().hex}
    port = free_port()
    settings = stack_settings(built, ANCHOR_BROADCAST="./compose/broadcast-s3.yaml",
                              SEAWEEDFS_IMAGE=seaweedfs_image(built.base), SEAWEEDFS_PORT=str(port))  # fmt: skip
    project.write_env(**settings)
    refused = project.compose("--profile", "s3", "up", "--detach", "--wait", "seaweedfs")
    assert refused.returncode != 0, refused.stdout + refused.stderr
    logs = project.compose("--profile", "s3", "logs", "seaweedfs").stdout
    assert "set ANCHOR_S3_ACCESS_KEY_ID and ANCHOR_S3_SECRET_ACCESS_KEY" in logs, logs

    project.write_env(**settings, **keys)
    up = project.compose("--profile", "s3", "up", "--detach", "--wait", "seaweedfs")
    assert up.returncode == 0, up.stdout + up.stderr
    with feed_on_network(project) as feed:
        project.broadcast("broadcast-s3.yaml", f"{feed.url}/feed.xml", script={"stories": 2},
                          video={"resolution": "1280x720", "fps": 10})  # fmt: skip
        done = project.compose("run", "--rm", "job")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert keys["ANCHOR_S3_SECRET_ACCESS_KEY"] not in done.stdout + done.stderr
    result = last_json_line(done.stdout)
    assert result["status"] == "Succeeded", result
    assert not (project.directory / "out" / "news-ja").exists(), "published to the bucket, not to ./out"

    client = Minio(f"127.0.0.1:{port}", access_key=keys["ANCHOR_S3_ACCESS_KEY_ID"],
                   secret_key=keys["ANCHOR_S3_SECRET_ACCESS_KEY"], secure=False)  # fmt: skip
    run_prefix = f"broadcasts/news-ja/{result['runId']}/"
    check_published(client, "anchor", run_prefix)
    anonymous = Minio(f"127.0.0.1:{port}", secure=False)
    with pytest.raises(S3Error, match="AccessDenied"):
        anonymous.stat_object("anchor", f"{run_prefix}manifest.json")
    video = project.directory / "video.mp4"
    video.write_bytes(client.get_object("anchor", f"{run_prefix}video.mp4").read())
    assert probe(video).of("video")[0].height == 720

    down = project.compose("--profile", "s3", "down", "--volumes")
    assert down.returncode == 0, down.stderr
    assert project.leftovers() == {}
