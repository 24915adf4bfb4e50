"""Broadcasts sharing GPUs through real Kueue (its manager and webhooks on this machine, tests/support/kueue.py):
runs wait Queued with Kueue's words, go one at a time within the quota, and a preempted run waits again and is
recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from api.result import RunResult
from tests.support.builders import a_broadcast
from tests.support.controller import Controller
from tests.support.kueue import Kueue, gpu_quota, priority_class, running_kueue
from tests.support.kwok import Cluster, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def kueue(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kueue]:
    with running_kueue(cluster, tmp_path_factory.mktemp("kueue")) as running:
        yield running


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.get("newsbroadcast", name, "-n", namespace).get("status") or {}
    return found


def _running(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """The namespace's run pods that hold their GPU now (Running, not being deleted)."""
    return [p for p in cluster.running_pods(namespace) if not p["metadata"].get("deletionTimestamp")]


def _broadcast_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"]["anchor.news/broadcast"])


def _finish(cluster: Cluster, namespace: str, pod: dict[str, Any]) -> None:
    name = _broadcast_of(pod)
    result = RunResult(status="Succeeded", broadcast=name, run_id=name, video=f"/{name}.mp4", stories=1)
    cluster.finish_pod(namespace, pod["metadata"]["name"], 0, result.compact_json())


def _events(cluster: Cluster, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name},reason={reason}"
    items: list[dict[str, Any]] = cluster.get("events", "-n", namespace, "--field-selector", selector)["items"]
    return items


def _one_at_a_time(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The one run pod holding the quota's GPU; fails if Kueue ever let two run at once."""

    def one() -> dict[str, Any] | None:
        running = _running(cluster, namespace)
        assert len(running) <= 1, f"two runs at once on a quota of one GPU: {[p['metadata']['name'] for p in running]}"
        return running[0] if running else None

    return wait_for(one, "the next admitted run's pod", timeout=60)


def test_three_broadcasts_on_one_gpu_queue_and_run_one_at_a_time(
    cluster: Cluster, namespace: str, controller: Controller, kueue: Kueue
) -> None:
    gpu_quota(cluster, namespace, namespace, gpus=1)
    names = ("morning", "noon", "evening")
    for name in names:  # no schedule: each makes its one-off Job at once, all three at the same moment
        broadcast = a_broadcast(name).set(scheduling={"queueName": namespace}).in_namespace(namespace)
        cluster.apply(broadcast.dict())

    first = _one_at_a_time(cluster, namespace)
    waiting = [n for n in names if n != _broadcast_of(first)]

    def queued() -> list[dict[str, Any]] | None:  # Queued at once, then with Kueue's words once it has tried them
        runs = [_status(cluster, namespace, n).get("activeRun") or {} for n in waiting]
        return runs if all("insufficient unused quota" in r.get("message", "") for r in runs) else None

    for run in wait_for(queued, "the two waiting broadcasts to show Queued with Kueue's words", timeout=60):
        assert (run["reason"], run["queue"], run["clusterQueue"]) == ("Queued", namespace, namespace)
        assert "insufficient unused quota for nvidia.com/gpu" in run["message"], run
        assert "pod" not in run  # no pod yet: Kueue holds the Job suspended

    def places() -> dict[str, int] | None:
        runs = {n: _status(cluster, namespace, n).get("activeRun") or {} for n in waiting}
        found = {n: r.get("ahead") for n, r in runs.items() if r.get("phase") == "Queued"}
        return found if sorted(v for v in found.values() if v is not None) == [0, 1] else None

    ahead = wait_for(places, "the waiting runs' places in the queue: 0 and 1 ahead", timeout=30)
    table = cluster.kubectl("get", "nb", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert table[0].split()[:7] == ["NAME", "READY", "SCHEDULE", "SUSPENDED", "LAST", "RUN", "RESULT"]
    assert "AHEAD" in table[0].split()
    assert sorted(line.split()[0] for line in table if " Queued " in f"{line} ") == sorted(waiting)
    for name in waiting:
        (event,) = _events(cluster, namespace, name, "Queued")  # once, though Kueue's words changed meanwhile
        assert event["type"] == "Normal" and f"ClusterQueue {namespace}" in event["message"]
        assert not _events(cluster, namespace, name, "RunStarted")  # it has not started: it waits
    ran = [_broadcast_of(first)]
    _finish(cluster, namespace, first)
    for _ in waiting:
        pod = wait_for(
            lambda: next((p for p in _running(cluster, namespace) if _broadcast_of(p) not in ran), None),
            "Kueue to admit the next run",
            timeout=60,
        )
        assert len(_running(cluster, namespace)) == 1
        name = _broadcast_of(pod)
        (admitted,) = wait_for(lambda: _events(cluster, namespace, name, "Admitted"), f"{name}'s Admitted event")  # noqa: B023
        assert f"admitted by Kueue (ClusterQueue {namespace}) after waiting" in admitted["message"]
        assert "ahead" not in (_status(cluster, namespace, name).get("activeRun") or {}), "admitted: no place"
        ran.append(name)
        left = [n for n in waiting if n not in ran]
        if left:  # the last one waiting moves to the head of the queue
            wait_for(lambda: (_status(cluster, namespace, left[0]).get("activeRun") or {}).get("ahead") == 0,  # noqa: B023
                     f"{left[0]} to be next in the queue (it was {ahead[left[0]]} ahead)", timeout=30)  # fmt: skip
        _finish(cluster, namespace, pod)

    def recorded() -> bool:
        return all((_status(cluster, namespace, n).get("lastRun") or {}).get("phase") == "Succeeded" for n in names)

    wait_for(recorded, "all three runs recorded", timeout=60)
    for name in names:
        status = _status(cluster, namespace, name)
        assert len(status["recentRuns"]) == 1, status["recentRuns"]  # each ran once
        assert "activeRun" not in status
        assert len(_events(cluster, namespace, name, "RunSucceeded")) == 1
    text = requests.get(str(controller.metrics_url), timeout=5).text
    assert 'anchor_run_queued_since_timestamp_seconds{broadcast="noon"' not in text  # nothing waits any more
    waits = next(line for line in text.splitlines() if line.startswith("anchor_run_queue_wait_seconds_count"))
    assert float(waits.split()[1]) >= 2


def test_a_higher_priority_broadcast_preempts_a_running_one_which_waits_again_and_runs_once(
    cluster: Cluster, namespace: str, controller: Controller, kueue: Kueue
) -> None:
    gpu_quota(cluster, namespace, namespace, gpus=1, preemption=True)
    priority_class(cluster, f"{namespace}-low", 10)
    priority_class(cluster, f"{namespace}-high", 1000)

    def broadcast(name: str, priority: str) -> dict[str, Any]:
        scheduling = {"queueName": namespace, "workloadPriorityClassName": f"{namespace}-{priority}"}
        return a_broadcast(name).set(scheduling=scheduling).in_namespace(namespace).dict()

    cluster.apply(broadcast("digest", "low"))
    low = _one_at_a_time(cluster, namespace)
    assert _broadcast_of(low) == "digest"
    cluster.apply(broadcast("breaking", "high"))

    def preempted() -> dict[str, Any] | None:
        run = _status(cluster, namespace, "digest").get("activeRun") or {}
        return run if run.get("phase") == "Queued" and run.get("reason") == "Preempted" else None

    run = wait_for(preempted, "the low-priority run to show Queued/Preempted", timeout=60)
    assert run["queue"] == namespace and "pod" not in run
    high = _one_at_a_time(cluster, namespace)
    assert _broadcast_of(high) == "breaking"
    _finish(cluster, namespace, high)
    again = wait_for(
        lambda: next((p for p in _running(cluster, namespace) if _broadcast_of(p) == "digest"), None),
        "the preempted run to be admitted again",
        timeout=60,
    )
    assert again["metadata"]["name"] != low["metadata"]["name"]  # a new pod of the same Job
    assert (
        again["metadata"]["labels"]["batch.kubernetes.io/job-name"]
        == low["metadata"]["labels"]["batch.kubernetes.io/job-name"]
    )
    _finish(cluster, namespace, again)
    wait_for(
        lambda: (_status(cluster, namespace, "digest").get("lastRun") or {}).get("phase") == "Succeeded",
        "the preempted run recorded",
        timeout=60,
    )
    status = _status(cluster, namespace, "digest")
    assert len(status["recentRuns"]) == 1  # recorded once, not once per pod
    assert len(_events(cluster, namespace, "digest", "Preempted")) == 1
    assert len(_events(cluster, namespace, "digest", "RunSucceeded")) == 1


def test_the_quota_sample_is_what_real_kueue_accepts(cluster: Cluster, namespace: str, kueue: Kueue) -> None:
    """k8s/kueue/gpu-quota.yaml, as README tells an admin to apply it, passes Kueue's own webhooks (server dry run)."""
    sample = Path(__file__).resolve().parents[2] / "k8s" / "kueue" / "gpu-quota.yaml"
    done = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(sample))
    kinds = sorted(line.split("/")[0] for line in done.stdout.splitlines())
    assert kinds == [
        "clusterqueue.kueue.x-k8s.io",
        "localqueue.kueue.x-k8s.io",
        "resourceflavor.kueue.x-k8s.io",
        "workloadpriorityclass.kueue.x-k8s.io",
        "workloadpriorityclass.kueue.x-k8s.io",
    ]
    bad = sample.read_text().replace('nominalQuota: "4"', "nominalQuota: four")
    refused = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=bad, check=False)
    assert refused.returncode != 0 and 'admission webhook "mclusterqueue.kb.io" denied' in refused.stderr  # Kueue's own
