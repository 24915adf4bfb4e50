"""Every manifest the controller builds, created on the real API server (server-side dry run, in a namespace that
enforces the restricted Pod Security Standard): nothing refused, nothing silently dropped, no admission warning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import manifests
from controller.settings import Settings
from tests.support.builders import BroadcastBuilder, a_broadcast
from tests.support.kwok import Cluster
from tests.support.tools import REPO

pytestmark = pytest.mark.cluster

SETTINGS = Settings(job_image="registry.test/anchor-job:0.1.0")


def _everything() -> BroadcastBuilder:
    return (
        a_broadcast("full")
        .set(
            schedule="30 6 * * 1-5",
            timeZone="Asia/Tokyo",
            suspend=True,
            gpu={"count": 2, "resourceName": "nvidia.com/mig-1g.10gb"},
            run={"concurrencyPolicy": "Replace", "backoffLimit": 4, "activeDeadlineSeconds": 1800},
            scheduling={
                "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
                            ]
                        }
                    }
                },
                "runtimeClassName": "nvidia",
                "priorityClassName": "news-high",
            },
        )
        .script(llm={"endpoint": "https://llm.example/v1", "model": "m", "apiKeySecret": {"name": "llm", "key": "k"}})
        .s3(endpoint="minio.storage:9000", bucket="news", secure=False, credentials={"secretName": "minio"})
    )


VARIANTS = {
    "defaults": a_broadcast("plain").set(schedule="0 7 * * *"),
    "cpu-engine": a_broadcast("cpu").set(schedule="0 7 * * *", gpu={"count": 0}),
    "everything": _everything(),
}


def _dropped(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of what we sent that the server did not keep as sent (it may add defaults, never drop or change)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path or "/"]
        return [p for key, value in sent.items() for p in _dropped(value, stored.get(key), f"{path}.{key}")]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [p for n, value in enumerate(sent) for p in _dropped(value, stored[n], f"{path}[{n}]")]
    return [] if sent == stored else [f"{path}: sent {sent!r}, stored {stored!r}"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_server_keeps_every_field_of_every_manifest(cluster: Cluster, namespace: str, variant: str) -> None:
    broadcast = VARIANTS[variant].model()
    cronjob = manifests.cronjob(broadcast, SETTINGS)
    documents = [
        cronjob,
        manifests.one_off_job(broadcast, SETTINGS),
        manifests.job_from_cronjob(cronjob, "token-1"),
    ]
    for document in documents:
        document = json.loads(json.dumps(document))
        document["metadata"]["namespace"] = namespace
        done = cluster.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(document), check=False
        )
        kind = document["kind"]
        assert done.returncode == 0, f"{kind} refused: {done.stderr}"
        assert "Warning" not in done.stderr, f"{kind}: {done.stderr}"
        assert _dropped(document, json.loads(done.stdout)) == [], kind


def test_the_plain_manifests_in_k8s_apply_without_refusal_or_warning(cluster: Cluster) -> None:
    """k8s/crds.yaml and k8s/anchor.yaml, as a user without Helm applies them (server-side dry run: the session's
    CRDs and the chart test's release stay as they are)."""
    crds = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", str(REPO / "k8s" / "crds.yaml"))
    assert "Warning" not in crds.stderr, crds.stderr
    if cluster.kubectl("get", "namespace", "anchor-system", check=False).returncode != 0:
        cluster.kubectl("create", "namespace", "anchor-system")  # a dry run creates nothing to put the rest in
    done = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", str(REPO / "k8s" / "anchor.yaml"))
    assert "Warning" not in done.stderr, done.stderr
    applied = done.stdout.splitlines()
    assert any(line.startswith("deployment.apps/anchor ") for line in applied), applied
    assert any(line.startswith("clusterkopfpeering.kopf.dev/anchor ") for line in applied), applied
