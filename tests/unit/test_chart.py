"""The Helm chart: lints, renders valid objects for both watch modes, and its schema refuses bad values."""

from __future__ import annotations

import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.tools import REPO, tool

CHART = REPO / "charts" / "anchor"


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, timeout=120)


def _render(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "news", str(CHART), "--namespace", "anchor-system", "--include-crds"]
    for value in sets:
        args += ["--set", value]
    done = _helm(*args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_chart_lints() -> None:
    done = _helm("lint", str(CHART), "--strict")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("sets", [(), ("controller.namespaces={news,sports}", "controller.replicas=2")])
def test_rendered_objects_are_valid_kubernetes_objects(sets: tuple[str, ...]) -> None:
    objects = _render(*sets)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("kopf.dev/"):
            continue  # kopf's own peering kinds: no official schema
        kubernetes_validate.validate(obj, "1.36", strict=True)


def test_the_chart_ships_the_generated_crd_unchanged() -> None:
    crds = [o for o in _render() if o["kind"] == "CustomResourceDefinition"]
    generated = yaml.safe_load((REPO / "k8s" / "crd.yaml").read_text(encoding="utf-8"))
    assert generated in crds


def test_controller_pod_is_restricted_and_least_privileged() -> None:
    objects = _render()
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert not env["ANCHOR_ENGINE_GPU_IMAGE"].endswith(":latest")
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    verbs = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert verbs[(("",), ("secrets",))] == {"get"}
    deleting = {pair for pair, allowed in verbs.items() if "delete" in allowed}
    assert deleting == {(("batch",), ("cronjobs",))}, "delete only retires a CronJob whose schedule was removed"
    assert ("*",) not in {r for pair in verbs for r in pair}


def test_without_webhooks_the_controller_reads_no_secret() -> None:
    for kind in ("ClusterRole", "Role"):
        sets = ("webhook.readSecrets=false",) + (("controller.namespaces={news}",) if kind == "Role" else ())
        (role,) = [o for o in _render(*sets) if o["kind"] == kind]
        assert "secrets" not in {r for rule in role["rules"] for r in rule["resources"]}


def test_namespaced_mode_uses_roles_only() -> None:
    kinds = [o["kind"] for o in _render("controller.namespaces={news}")]
    assert "Role" in kinds and "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("controler.replicas=2", "additional properties 'controler' not allowed"),
        ("controller.replicas=many", "want integer"),
        ("engine.gpuImage=voicevox/voicevox_engine:latest", "gpuImage"),
        ("job.image.tag=latest", "tag"),
        ("webhook.allowedNetworks={intranet}", "allowedNetworks"),
    ],
)
def test_values_schema_refuses_typos_and_latest(value: str, words: str) -> None:
    done = _helm("template", "news", str(CHART), "--set", value)
    assert done.returncode != 0 and words in done.stderr


def test_metrics_are_served_and_scrapable_and_webhook_networks_reach_the_controller() -> None:
    objects = _render("webhook.allowedNetworks={10.96.0.0/12,192.168.5.0/24}")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--metrics=0.0.0.0:9090" in container["args"]
    assert {"name": "metrics", "containerPort": 9090} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ANCHOR_WEBHOOK_ALLOWED_NETWORKS"] == "10.96.0.0/12,192.168.5.0/24"
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    off = _render("metrics.enabled=false")
    assert not [o for o in off if o["kind"] == "Service"]
    (container,) = next(o for o in off if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--metrics=" in container["args"]


def test_notes_tell_the_next_command() -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    assert "kubectl apply" in notes and "kubectl get newsbroadcasts" in notes
