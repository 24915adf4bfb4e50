"""k8s/samples/ on a real API server: each file applies as written (the CRD's schema and CEL rules accept it and prune
nothing), what the server stores passes the job's own validation, and the controller makes of it what the sample
says: a CronJob on a GPU for the daily one, one Job on CPU for the one-off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api.load import load_broadcast, parse_broadcast
from tests.support.kwok import Cluster, wait_for

pytestmark = pytest.mark.cluster

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "k8s" / "samples").glob("*.yaml"))


def _ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    status = cluster.get("newsbroadcast", name, "-n", namespace).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_applies_as_written_and_the_server_keeps_every_field(
    cluster: Cluster, namespace: str, path: Path
) -> None:
    assert SAMPLES, "k8s/samples/ has no sample"
    dry = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert dry.returncode == 0, dry.stderr
    applied = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(path), check=False)
    assert applied.returncode == 0, applied.stderr
    written = load_broadcast(path)  # the job's own loader, on the file
    stored = cluster.get("newsbroadcast", written.name, "-n", namespace)
    assert stored["spec"] == yaml.safe_load(path.read_text(encoding="utf-8"))["spec"], "the server pruned a field"
    assert parse_broadcast(stored, "stored").spec == written.spec  # and on what the server stored
    ready = wait_for(lambda: _ready(cluster, namespace, written.name), f"{written.name}'s Ready condition")
    assert ready["status"] == "True", ready


def test_the_daily_sample_becomes_a_cronjob_on_one_gpu_with_the_secrets_keys(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(_sample("daily-ja-gpu-s3.yaml")))
    cron = wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")[0]
    assert cron["metadata"]["name"] == "daily-ja"
    assert (cron["spec"]["schedule"], cron["spec"]["timeZone"]) == ("0 7 * * *", "Asia/Tokyo")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (engine,) = pod["initContainers"]
    assert engine["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in pod["containers"][0]["env"]}
    assert env["ANCHOR_S3_ACCESS_KEY_ID"] == {"name": "anchor-s3", "key": "accessKeyId"}
    assert env["ANCHOR_S3_SECRET_ACCESS_KEY"] == {"name": "anchor-s3", "key": "secretAccessKey"}
    assert cluster.get("jobs", "-n", namespace)["items"] == []  # nothing runs before 07:00


def test_the_oneoff_sample_runs_once_on_cpu(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(_sample("oneoff-en-cpu.yaml")))
    jobs = wait_for(lambda: cluster.get("jobs", "-n", namespace)["items"], "the one-off Job")
    assert [j["metadata"]["name"] for j in jobs] == ["oneoff-en-once"]
    assert cluster.get("cronjobs", "-n", namespace)["items"] == []
    pod = jobs[0]["spec"]["template"]["spec"]
    (engine,) = pod["initContainers"]
    assert "nvidia.com/gpu" not in engine["resources"].get("limits", {})
    assert not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"voice": {"styleId": 2}}, "spec.voice and spec.cast both give the voice"),
        ({"script": {"anchorName": "めたん", "format": "dialogue"}}, "spec.script.anchorName and spec.cast both"),
        ({"cast": [{"name": "ずんだもん"}, {"name": "ずんだもん", "styleId": 1}]}, "names a member more than once"),
        ({"cast": [{"name": "ずんだもん"}]}, "dialogue, which needs at least two presenters"),
        ({"audio": {"music": {"file": "bed.mp3", "url": "https://music.example/bed.mp3"}}}, "exactly one of file"),
        ({"cast": [{"name": "a", "portrait": {}}, {"name": "b"}]}, "exactly one of file, url and object"),
        ({"audio": {"music": {"object": "bed.mp3"}}, "output": {"directory": "out"}}, "spec.output.s3 is not set"),
    ],
)
def test_the_api_server_refuses_a_cast_that_contradicts_itself(
    cluster: Cluster, namespace: str, change: dict[str, Any], words: str, tmp_path: Path
) -> None:
    document = yaml.safe_load(_sample("dialogue-ja-gpu.yaml").read_text(encoding="utf-8"))
    document["spec"].update(change)
    path = tmp_path / "broadcast.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    refused = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert refused.returncode != 0 and words in refused.stderr, refused.stderr


def _sample(name: str) -> Path:
    (path,) = [p for p in SAMPLES if p.name == name]
    return path
