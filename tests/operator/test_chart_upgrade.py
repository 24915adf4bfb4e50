"""The chart's upgrade path on a real API server: from the previous release (0.1.0, whose CRD lived in crds/, which
Helm never upgrades) to this one (the CRD a template), with a changed CRD and a broadcast that must survive; then
uninstall, which keeps the CRD and the broadcasts. Also `anchor selftest` (what `helm test` runs) against the
chart's RBAC, as the controller's ServiceAccount."""

from __future__ import annotations

import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from controller import selftest
from tests.support.builders import a_broadcast
from tests.support.kwok import Cluster, running_cluster, wait_for
from tests.support.tools import REPO, tool

pytestmark = pytest.mark.cluster

PREVIOUS = REPO / "tests" / "fixtures" / "charts" / "anchor-0.1.0.tgz"  # `helm package` of the chart at 7b573de
CHART = REPO / "charts" / "anchor"
RELEASE, NAMESPACE = "anchor", "anchor-system"
CRD = "crd/newsbroadcasts.anchor.news"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of its own: this test installs and removes CRDs, which the session's cluster shares."""
    with running_cluster(tmp_path / "kwok", name=f"anchor-upgrade-{uuid.uuid4().hex[:6]}") as cluster:
        yield cluster


def _helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.workdir), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(tool("helm")), *args], env=env, capture_output=True, text=True, timeout=180)


def _columns(cluster: Cluster) -> list[str]:
    return [c["name"] for c in cluster.get(CRD)["spec"]["versions"][0]["additionalPrinterColumns"]]


def test_upgrade_from_the_previous_chart_takes_over_the_changed_crd_and_uninstall_keeps_it(fresh: Cluster) -> None:
    with tarfile.open(PREVIOUS) as previous:
        assert yaml.safe_load(previous.extractfile("anchor/Chart.yaml").read())["version"] == "0.1.0"  # type: ignore[union-attr]
    done = _helm(fresh, "install", RELEASE, str(PREVIOUS), "-n", NAMESPACE, "--create-namespace")
    assert done.returncode == 0, done.stderr
    assert "Ready" not in _columns(fresh)
    fresh.kubectl("create", "namespace", "news")
    daily = a_broadcast("daily").set(schedule="0 7 * * *").dict()
    del daily["spec"]["video"]  # fields 0.1.0's CRD does not know (video.storyImages) are refused by its schema
    fresh.apply({**daily, "metadata": {"name": "daily", "namespace": "news"}})

    # What a user meets first: the CRD exists, but no release owns it.
    refused = _helm(fresh, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE)
    assert refused.returncode != 0
    assert "newsbroadcasts.anchor.news" in refused.stderr and "ownership" in refused.stderr, refused.stderr
    # The documented way across (README, "Upgrading from 0.1"): once, --take-ownership.
    done = _helm(fresh, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--take-ownership")
    assert done.returncode == 0, done.stderr
    crd = fresh.get(CRD)
    assert _columns(fresh)[0] == "Ready", "the CRD was upgraded"
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    assert crd["metadata"]["labels"]["helm.sh/chart"] == "anchor-0.2.0"
    assert fresh.get("nb", "daily", "-n", "news")["spec"]["schedule"] == "0 7 * * *", "the broadcast survived"

    # Later upgrades need nothing special; the changed CRD is applied again each time.
    done = _helm(fresh, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "webhook.readSecrets=false")
    assert done.returncode == 0, done.stderr
    _selftest_reports_rbac(fresh)

    done = _helm(fresh, "uninstall", RELEASE, "-n", NAMESPACE)
    assert done.returncode == 0, done.stderr
    assert fresh.get(CRD)["metadata"]["name"] == "newsbroadcasts.anchor.news", "crds.keep kept the CRD"
    assert fresh.get("nb", "daily", "-n", "news")["metadata"]["name"] == "daily", "and the broadcasts"
    assert fresh.kubectl("get", "deployment", "anchor", "-n", NAMESPACE, check=False).returncode != 0

    # A reinstall adopts the kept CRD without --take-ownership: it still carries this release's name.
    done = _helm(fresh, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--set", "crds.keep=false")
    assert done.returncode == 0, done.stderr
    done = _helm(fresh, "uninstall", RELEASE, "-n", NAMESPACE)
    assert done.returncode == 0, done.stderr
    # The API server removes a CRD once its objects are gone (the customresourcecleanup finalizer): poll.
    wait_for(lambda: fresh.kubectl("get", CRD, check=False).returncode != 0, "crds.keep=false to remove the CRD", 60)


def _selftest_reports_rbac(cluster: Cluster) -> None:
    """`anchor selftest` as the controller's ServiceAccount: the CRD check passes, RBAC passes for what the chart
    grants, and a Secret read the release no longer allows (webhook.readSecrets=false) is named. The health check
    is refused: outside `helm test` the ServiceAccount may not use the service proxy (and kwok runs no controller)."""
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    client.set_default_header("Impersonate-User", f"system:serviceaccount:{NAMESPACE}:anchor")
    lines: list[str] = []
    code = selftest.run(NAMESPACE, "anchor", [], secrets=True, client=client, out=lines.append)
    assert code == 1
    assert lines[0].startswith("FAILED  the controller answers (service anchor-system/anchor, /healthz): HTTP 403")
    assert lines[1] == "ok      the anchor.news/v1alpha1 NewsBroadcast CRD is served"
    assert lines[2] == "FAILED  RBAC lets the controller act in all namespaces: denied: get secrets"
    assert lines[-1] == "1 of 3 checks passed"
    lines.clear()
    assert selftest.run(NAMESPACE, "anchor", [], secrets=False, client=client, out=lines.append) == 1
    assert lines[2] == "ok      RBAC lets the controller act in all namespaces"
