"""The operator on a real control plane: one cluster per session, the controller as a subprocess, a namespace
per test (labelled for the restricted Pod Security Standard)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import kueue
from tests.support.controller import Controller, running_controller
from tests.support.kwok import Cluster, running_cluster, wait_for
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[2]
PEERING = "anchor-test"
SESSION_PRIORITY = 100


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("kwok"), name=f"anchor-{uuid.uuid4().hex[:6]}") as running:
        running.kubectl("apply", "--server-side", "-f", str(REPO / "k8s" / "crds.yaml"))  # ours and kopf's
        kueue.install_crds(running)  # served before the controller starts: it watches Kueue's Workloads
        running.apply({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}})
        wait_for(lambda: running.kubectl("get", "newsbroadcasts", check=False).returncode == 0, "the CRD to serve")
        running.add_gpu_node("gpu-node-1", gpus=2)
        yield running


@pytest.fixture(scope="session")
def controller(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    env = {
        **cluster.env,
        "ANCHOR_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",  # the tests' webhook receiver
        "ANCHOR_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "ANCHOR_SWEEP_SECONDS": "1",
        "ANCHOR_QUEUE_POSITION_SECONDS": "1",
        "ANCHOR_KUEUE": "true",  # Kueue itself runs only for test_queueing.py; without it nothing may change
    }
    health, metrics = f"http://127.0.0.1:{free_port()}/healthz", f"127.0.0.1:{free_port()}"
    args = [f"--peering={PEERING}", f"--priority={SESSION_PRIORITY}", f"--liveness={health}", f"--metrics={metrics}"]
    log = tmp_path_factory.mktemp("controller") / "controller.log"
    with running_controller(args, env, log) as running:
        running.health_url, running.metrics_url = health, f"http://{metrics}/metrics"
        yield running


@pytest.fixture
def namespace(cluster: Cluster, controller: Controller) -> Iterator[str]:
    exited = controller.exited()
    if exited:
        raise RuntimeError(exited)
    with cluster.restricted_namespace("news") as name:
        yield name


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: runs against the kwok control plane")
