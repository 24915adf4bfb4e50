"""`anchor controller` with a peering that is not there exits with 2 and says what is missing and how to fix it,
instead of running paused for good (what kopf 1.45.2 does); --standalone skips the check; the fix it prints works.

The session cluster has the peering CRDs, so a missing object is tried there; a missing CRD needs a cluster of its own.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from api.result import ExitCode
from tests.operator.conftest import PEERING
from tests.support.controller import Controller, running_controller
from tests.support.kwok import Cluster, running_cluster, wait_for
from tests.support.processes import free_port
from tests.support.tools import REPO

pytestmark = pytest.mark.cluster

PEERING_CRDS = REPO / "charts" / "anchor" / "crds" / "kopf-peerings.yaml"


@pytest.fixture
def bare_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A control plane with anchor's CRD but without kopf's peering CRDs: a controller run outside the chart."""
    with running_cluster(tmp_path / "kwok", name=f"anchor-bare-{uuid.uuid4().hex[:6]}") as cluster:
        cluster.kubectl(
            "apply", "-f", str(REPO / "charts" / "anchor" / "files" / "crds" / "newsbroadcasts.anchor.news.yaml")
        )
        yield cluster


def _exit(controller: Controller) -> tuple[int, str]:
    """Wait for the process itself to end (it must, on its own), then its code and output."""
    code = controller.process.wait(timeout=60)
    return code, controller.text()


def _fixes(output: str) -> list[dict[str, Any]]:
    return [json.loads(m) for m in re.findall(r"echo '(.+)' \| kubectl apply -f -", output)]


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def test_a_missing_clusterkopfpeering_stops_the_controller_with_2_naming_it(cluster: Cluster, tmp_path: Path) -> None:
    name = f"absent-{uuid.uuid4().hex[:6]}"
    with running_controller([f"--peering={name}"], cluster.env, tmp_path / "controller.log") as controller:
        code, output = _exit(controller)
    assert code == ExitCode.CONFIG_ERROR, output
    assert f"anchor controller: peering {name!r} is required (--peering), but ClusterKopfPeering {name!r} does not" in (
        output
    )
    assert _fixes(output) == [{"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}]
    assert "anchor controller --standalone" in output
    assert "kopf-peerings.yaml" not in output  # the CRDs are installed on this cluster


def test_a_namespaced_controller_needs_a_kopfpeering_in_its_namespace(cluster: Cluster, tmp_path: Path) -> None:
    namespace = f"lonely-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        # The session's ClusterKopfPeering of this name exists; a namespaced controller does not use it.
        args = [f"--namespace={namespace}", f"--peering={PEERING}"]
        with running_controller(args, cluster.env, tmp_path / "controller.log") as controller:
            code, output = _exit(controller)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    assert code == ExitCode.CONFIG_ERROR, output
    assert f"KopfPeering {PEERING!r} in namespace {namespace!r} does not exist" in output
    assert _fixes(output) == [
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING, "namespace": namespace}}
    ]


def test_without_the_peering_crd_the_controller_says_how_to_install_it_and_the_fix_works(
    bare_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = bare_cluster
    with running_controller(["--peering=anchor"], cluster.env, tmp_path / "first.log") as controller:
        code, output = _exit(controller)
    assert code == ExitCode.CONFIG_ERROR, output
    assert "ClusterKopfPeering 'anchor' cannot exist: its CRD clusterkopfpeerings.kopf.dev is not installed" in output
    assert "kubectl apply -f charts/anchor/crds/kopf-peerings.yaml" in output
    assert "anchor controller --standalone" in output

    # --standalone: no peering, no check; the controller starts and serves its liveness probe.
    health = f"http://127.0.0.1:{free_port()}/healthz"
    args = ["--standalone", f"--liveness={health}"]
    with running_controller(args, cluster.env, tmp_path / "standalone.log") as standalone:
        wait_for(lambda: _healthy(health) or standalone.exited(), "the standalone controller's liveness", timeout=60)
        assert standalone.exited() is None, standalone.exited()

    # The fix the message gave: install the CRDs, create the object; then the controller starts.
    cluster.kubectl("apply", "-f", str(PEERING_CRDS))
    wait_for(lambda: cluster.kubectl("get", "clusterkopfpeerings", check=False).returncode == 0, "the peering CRD")
    for fix in _fixes(output):
        cluster.apply(fix)
    health = f"http://127.0.0.1:{free_port()}/healthz"
    args = ["--peering=anchor", "--priority=7", f"--liveness={health}"]
    with running_controller(args, cluster.env, tmp_path / "fixed.log") as fixed:
        wait_for(lambda: _healthy(health) or fixed.exited(), "the fixed controller's liveness", timeout=60)
        assert fixed.exited() is None, fixed.exited()
        peers = wait_for(
            lambda: cluster.get("clusterkopfpeering", "anchor").get("status"), "the controller in the peering"
        )
        assert [p["priority"] for p in peers.values()] == [7]
