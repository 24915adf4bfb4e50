"""A real node (kubelet and containerd on this machine, tests/support/node.py) joined to a kwok control plane beside
one of kwok's fake GPU nodes: one cluster and one node per session, a restricted namespace per test. Every test here
skips, with the reason printed, where the machine cannot host the node."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.kwok import Cluster, running_cluster
from tests.support.node import NodeUnavailable, RealNode, prerequisites, running_node

FAKE_GPU_NODE = "gpu-node-1"
SUMMARIES: list[str] = []  # timing lines, printed at the end of the session


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        prerequisites()  # before the cluster: a machine that cannot host the node skips at once
    except NodeUnavailable as exc:
        pytest.skip(f"no real node on this machine: {exc}")
    with running_cluster(tmp_path_factory.mktemp("kwok"), name=f"anchor-{uuid.uuid4().hex[:6]}") as running:
        running.add_gpu_node(FAKE_GPU_NODE, gpus=2)
        yield running


@pytest.fixture(scope="session")
def real_node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    try:
        with running_node(cluster, tmp_path_factory.mktemp("node")) as node:
            SUMMARIES.append(node.summary())
            yield node
            stopping = time.monotonic()
    except NodeUnavailable as exc:
        pytest.skip(f"no real node on this machine: {exc}")
    SUMMARIES.append(f"real node {node.name} taken down in {time.monotonic() - stopping:.1f} s")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    with cluster.restricted_namespace("node") as name:
        yield name


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARIES:
        terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "node: runs pods on a real kubelet node joined to the kwok control plane")
