"""`helm install` of the chart on the real API server: CRDs, RBAC, peering and the controller Deployment apply."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.kwok import Cluster, wait_for
from tests.support.tools import REPO, tool

pytestmark = pytest.mark.cluster


def test_helm_installs_the_chart_and_its_rbac_is_least_privilege(cluster: Cluster) -> None:
    helm = str(tool("helm"))
    cluster.kubectl("create", "namespace", "news-a")  # watched namespaces exist before the release names them
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.workdir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [helm, "install", "anchor", str(REPO / "charts" / "anchor"), "--namespace", "anchor-system",
         "--create-namespace", "--set", "controller.namespaces={news-a}", "--set", "crds.enabled=false"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "kubectl get newsbroadcasts" in done.stdout  # NOTES.txt tells the next command
    wait_for(lambda: cluster.get("deployment", "anchor", "-n", "anchor-system"), "the controller Deployment")
    account = "system:serviceaccount:anchor-system:anchor"

    def can(verb: str, resource: str, namespace: str) -> bool:
        answer = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", account, check=False)
        return answer.stdout.strip() == "yes"

    assert can("create", "cronjobs.batch", "news-a") and can("patch", "newsbroadcasts.anchor.news/status", "news-a")
    assert can("get", "secrets", "news-a") and not can("list", "secrets", "news-a")
    assert not can("create", "cronjobs.batch", "kube-system"), "namespaced mode grants nothing elsewhere"
    assert not can("delete", "jobs.batch", "news-a")
    uninstall = subprocess.run(
        [helm, "uninstall", "anchor", "--namespace", "anchor-system"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert uninstall.returncode == 0, uninstall.stderr
