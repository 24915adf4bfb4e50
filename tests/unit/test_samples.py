"""k8s/samples/: NewsBroadcasts a user applies to a cluster as written. Each must pass the job's own validation, keep
to what a cluster allows (http(s) feeds) and be what its file name promises; tests/operator/test_samples.py applies
them to a real API server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.load import load_broadcast
from api.v1alpha1 import KIND, NewsBroadcast
from controller import manifests
from controller.settings import Settings

SAMPLES = Path(__file__).resolve().parents[2] / "k8s" / "samples"
FILES = sorted(SAMPLES.glob("*.yaml"))


def _sample(name: str) -> NewsBroadcast:
    return load_broadcast(SAMPLES / name)


def test_the_samples_are_there() -> None:
    assert [f.name for f in FILES] == ["daily-ja-gpu-s3.yaml", "dialogue-ja-gpu.yaml", "oneoff-en-cpu.yaml"]


def test_the_dialogue_sample_is_two_presenters_taking_turns_in_their_own_voices() -> None:
    spec = _sample("dialogue-ja-gpu.yaml").spec
    assert spec.script.format == "dialogue"
    assert [(m.name, m.style_id) for m in spec.members] == [("四国めたん", 2), ("ずんだもん", 3)]
    assert spec.voice.model_fields_set == set()  # the cast's voices, not spec.voice's


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_sample_is_one_valid_broadcast_a_cluster_accepts(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert [d.get("kind") for d in documents] == [KIND], "one NewsBroadcast and nothing else (no Secret values)"
    broadcast = load_broadcast(path)
    assert broadcast.metadata.namespace is None, "the namespace is the user's choice (kubectl apply -n)"
    for feed in broadcast.spec.sources.feeds:
        # The CRD's rule: a pod has no local feed files.
        assert feed.url.startswith("https://"), feed.url
        assert "example." not in feed.url, "a real feed, so that the sample runs as written"


def test_the_daily_sample_runs_every_day_on_one_gpu_and_publishes_to_s3_with_a_secret_by_reference() -> None:
    broadcast = _sample("daily-ja-gpu-s3.yaml")
    spec = broadcast.spec
    assert (spec.schedule, spec.time_zone, spec.script.language) == ("0 7 * * *", "Asia/Tokyo", "ja")
    assert (spec.gpu.count, spec.gpu.resource_name) == (1, "nvidia.com/gpu")
    assert spec.output.s3 is not None and spec.output.s3.credentials is not None
    credentials = spec.output.s3.credentials
    text = (SAMPLES / "daily-ja-gpu-s3.yaml").read_text(encoding="utf-8")
    # The Secret's expected shape is documented beside the reference, with placeholders only.
    for key in (credentials.access_key_id_key, credentials.secret_access_key_key):
        assert f"#     {key}: REPLACE-WITH-YOUR-" in text
    assert f"name: {credentials.secret_name}" in text
    assert f"generic {credentials.secret_name} " in text
    # What the controller makes of it: the engine on the GPU image with the GPU, credentials from the Secret.
    settings = Settings()
    pod = manifests.cronjob(broadcast, settings)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (engine,) = pod["initContainers"]
    assert engine["image"] == settings.engine_gpu_image
    assert engine["resources"]["limits"]["nvidia.com/gpu"] == "1"
    (job,) = pod["containers"]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in job["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert secrets["ANCHOR_S3_SECRET_ACCESS_KEY"] == {"name": "anchor-s3", "key": "secretAccessKey"}


def test_the_oneoff_sample_runs_once_on_cpu_without_a_bucket() -> None:
    broadcast = _sample("oneoff-en-cpu.yaml")
    spec = broadcast.spec
    assert spec.schedule is None
    assert spec.gpu.count == 0
    assert spec.script.language == "en"
    assert spec.output.s3 is None
    # A relative directory lands in the job image's working directory, /tmp: the pod's writable scratch volume.
    assert not spec.output.directory.startswith("/")
    pod = manifests.one_off_job(broadcast, Settings())["spec"]["template"]["spec"]
    (engine,) = pod["initContainers"]
    assert engine["image"] == Settings().engine_cpu_image
    assert "nvidia.com/gpu" not in engine["resources"]["limits"]
    assert {"name": "scratch", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    assert "\nWORKDIR /tmp\n" in (SAMPLES.parents[1] / "Dockerfile.job").read_text()
