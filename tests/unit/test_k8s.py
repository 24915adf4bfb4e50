"""k8s/: the plain manifests are the chart's default installation, rendered by `make manifests` and in sync."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from scripts import manifests
from tests.support.tools import REPO, tool


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return manifests.render(str(tool("helm")))


def _objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("name", ["crds.yaml", "anchor.yaml"])
def test_committed_manifests_equal_the_rendered_chart(rendered: dict[str, str], name: str) -> None:
    committed = (REPO / "k8s" / name).read_text(encoding="utf-8")
    assert committed == rendered[name], f"k8s/{name} is stale: run `make manifests` and commit the result"


def test_plain_manifests_hold_the_whole_installation_as_valid_objects(rendered: dict[str, str]) -> None:
    crds = _objects(rendered["crds.yaml"])
    assert {c["metadata"]["name"] for c in crds} == {
        "newsbroadcasts.anchor.news",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    objects = _objects(rendered["anchor.yaml"])
    kinds = [o["kind"] for o in objects]
    assert (
        kinds[0] == "Namespace"
        and objects[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    )
    assert {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ClusterKopfPeering",
    } <= set(kinds)
    assert "Pod" not in kinds, "helm test's pod is not part of an installation"
    for obj in crds + objects:
        if not obj["apiVersion"].startswith("kopf.dev/"):
            kubernetes_validate.validate(obj, "1.36", strict=True)
    namespaced = [o for o in objects if o["kind"] in ("ServiceAccount", "Deployment", "Service")]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"anchor-system"}
