"""Two controllers on one peering: only the one with the highest priority acts; when it stops, the other resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import PEERING, SESSION_PRIORITY
from tests.support.builders import a_broadcast
from tests.support.controller import Controller, running_controller
from tests.support.kwok import Cluster, wait_for

pytestmark = pytest.mark.cluster


def _peers(cluster: Cluster) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get("clusterkopfpeering", PEERING).get("status") or {}
    return status


def _image(cluster: Cluster, namespace: str, name: str) -> str | None:
    items = [c for c in cluster.get("cronjobs", "-n", namespace)["items"] if c["metadata"]["name"] == name]
    if not items:
        return None
    containers = items[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    image: str = next(c["image"] for c in containers if c["name"] == "job")
    return image


def _handled(log: str, namespace: str, name: str) -> bool:
    """Whether the controller's JSON log has a line about this object."""
    for line in log.splitlines():
        try:
            ref = json.loads(line).get("object") or {}
        except (ValueError, AttributeError):
            continue
        if (ref.get("namespace"), ref.get("name")) == (namespace, name):
            return True
    return False


def test_only_the_highest_priority_replica_acts_and_the_other_takes_over(
    cluster: Cluster, namespace: str, controller: Controller, tmp_path: Path
) -> None:
    wait_for(lambda: any(p.get("priority") == SESSION_PRIORITY for p in _peers(cluster).values()), "the first peer")
    paused_before = controller.text().count("Pausing operations in favour of")
    args = [f"--peering={PEERING}", f"--priority={SESSION_PRIORITY + 1}"]
    env = {**cluster.env, "ANCHOR_JOB_IMAGE": "registry.test/anchor-job:0.2.0"}
    with running_controller(args, env, tmp_path / "second.log") as second:
        wait_for(
            lambda: controller.text().count("Pausing operations in favour of") > paused_before,
            "the session controller to pause for the higher-priority peer",
        )
        _apply(cluster, namespace, "paired")
        assert wait_for(lambda: _image(cluster, namespace, "paired"), "the CronJob") == "registry.test/anchor-job:0.2.0"
        wait_for(lambda: _handled(second.text(), namespace, "paired"), "the second's log")
        assert not _handled(controller.text(), namespace, "paired"), "the paused replica handled the broadcast too"
    # Stopped gracefully, the second removed its peering entry: the first resumes at once.
    wait_for(
        lambda: "Resuming operations after the pause" in controller.text().split("Pausing operations in favour of")[-1],
        "the session controller to resume",
        timeout=60,
    )
    _apply(cluster, namespace, "alone")
    assert wait_for(lambda: _image(cluster, namespace, "alone"), "the CronJob") == "registry.test/anchor-job:0.1.0"
    # Resumed, it converges what was made meanwhile to its own settings (patched in place, not recreated).
    wait_for(lambda: _image(cluster, namespace, "paired") == "registry.test/anchor-job:0.1.0", "paired converged")


def _apply(cluster: Cluster, namespace: str, name: str) -> None:
    document = a_broadcast(name).set(schedule="0 5 * * *").in_namespace(namespace).dict()
    cluster.apply(document)
