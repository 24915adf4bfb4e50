"""The controller running as the chart's ServiceAccount with the chart's RBAC, never an admin: scoped to one
namespace (Roles) it serves that namespace end to end and leaves every other alone; watching all (a ClusterRole)
it serves every namespace. Either way no request is refused.

This test brings up a cluster of its own: the session's controller watches every namespace."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.result import RunResult
from tests.operator.runs import run_to_the_end
from tests.support.builders import a_broadcast
from tests.support.controller import running_controller
from tests.support.kwok import Cluster, running_cluster, wait_for
from tests.support.tools import REPO, tool

pytestmark = pytest.mark.cluster


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path / "kwok", name=f"anchor-scope-{uuid.uuid4().hex[:6]}") as cluster:
        cluster.add_gpu_node("gpu-node-1", gpus=2)
        for namespace in ("news-a", "news-b"):
            cluster.kubectl("create", "namespace", namespace)
            cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
        yield cluster


def _service_account_kubeconfig(cluster: Cluster, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a token from the TokenRequest API."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _apply(cluster: Cluster, namespace: str, name: str) -> None:
    document = a_broadcast(name).set(schedule="0 7 * * *").in_namespace(namespace).dict()
    cluster.apply(document)


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get("newsbroadcast", name, "-n", namespace).get("status") or {}
    return status


@pytest.mark.parametrize("scoped", [True, False], ids=["one-namespace", "all-namespaces"])
def test_the_controller_with_the_charts_rbac_serves_what_it_watches_and_nothing_else(
    own_cluster: Cluster, tmp_path: Path, scoped: bool
) -> None:
    cluster = own_cluster
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    values = ["--set", "controller.namespaces={news-a}"] if scoped else []
    done = subprocess.run(
        [str(tool("helm")), "install", "anchor", str(REPO / "charts" / "anchor"), "--namespace", "anchor-system",
         "--create-namespace", *values],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    kubeconfig = _service_account_kubeconfig(cluster, "anchor", "anchor-system", tmp_path / "sa.kubeconfig")
    _apply(cluster, "news-b", "outside")  # first, so a controller watching everything would meet it first
    args = [*(["--namespace=news-a"] if scoped else []), "--peering=anchor"]
    with running_controller(args, {"KUBECONFIG": str(kubeconfig)}, tmp_path / "controller.log") as controller:
        _apply(cluster, "news-a", "inside")
        wait_for(lambda: cluster.get("cronjobs", "-n", "news-a")["items"], "the CronJob in news-a", timeout=60)
        result = RunResult(status="Succeeded", broadcast="inside", run_id="r", video="/v.mp4", stories=2)
        run_to_the_end(cluster, "news-a", "inside", 0, result)
        last = wait_for(lambda: _status(cluster, "news-a", "inside").get("lastRun"), "the run reported", timeout=60)
        assert last["phase"] == "Succeeded"
        wait_for(
            lambda: any(e["reason"] == "RunSucceeded" for e in cluster.get("events", "-n", "news-a")["items"]),
            "the RunSucceeded Event (posted with the chart's RBAC)",
        )
        assert controller.exited() is None, controller.exited()
    if scoped:
        assert cluster.get("cronjobs", "-n", "news-b")["items"] == []
        assert _status(cluster, "news-b", "outside") == {}
    else:
        assert [c["metadata"]["name"] for c in cluster.get("cronjobs", "-n", "news-b")["items"]] == ["outside"]
    lines = [json.loads(line) for line in controller.text().splitlines() if line.startswith("{")]
    refused = [entry["message"] for entry in lines if "403" in entry["message"] or "Forbidden" in entry["message"]]
    assert refused == [], "the chart's Role lacks a permission the controller uses"
