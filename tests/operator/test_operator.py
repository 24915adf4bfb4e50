"""The controller against a real API server, scheduler and job controller (kwok plays the kubelet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from api.result import RunResult
from api.v1alpha1 import GROUP, VERSION
from controller import operator
from controller.status import Outcome
from tests.operator.runs import run_to_the_end
from tests.support.builders import BroadcastBuilder, a_broadcast
from tests.support.controller import running_controller
from tests.support.kwok import Cluster, wait_for

pytestmark = pytest.mark.cluster


def _apply(cluster: Cluster, namespace: str, builder: BroadcastBuilder) -> dict[str, Any]:
    document = builder.in_namespace(namespace).dict()
    cluster.apply(document)
    return document


def _condition(cluster: Cluster, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    status = cluster.get("newsbroadcast", name, "-n", namespace).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)


def _jobs(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get("jobs", "-n", namespace)["items"]
    return items


def test_a_broadcast_becomes_an_owned_cronjob_patched_in_place(cluster: Cluster, namespace: str) -> None:
    broadcast = a_broadcast("morning").set(schedule="0 7 * * *", timeZone="Asia/Tokyo")
    _apply(cluster, namespace, broadcast)
    cron = wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")[0]
    owner = cron["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("NewsBroadcast", "morning", True)
    # No finalizer: a broadcast can be deleted even while the controller is away (uninstalled, crashed).
    assert not cluster.get("newsbroadcast", "morning", "-n", namespace)["metadata"].get("finalizers")
    assert (cron["spec"]["schedule"], cron["spec"]["timeZone"]) == ("0 7 * * *", "Asia/Tokyo")
    ready = wait_for(lambda: _condition(cluster, namespace, "morning", "Ready"), "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1

    _apply(cluster, namespace, broadcast.set(schedule="30 6 * * *", suspend=True))

    def patched() -> dict[str, Any] | None:
        item = cluster.get("cronjob", "morning", "-n", namespace)
        return item if item["spec"]["schedule"] == "30 6 * * *" else None

    after = wait_for(patched, "the CronJob to be patched")
    assert after["metadata"]["uid"] == cron["metadata"]["uid"]
    assert after["spec"]["suspend"] is True
    assert len(cluster.get("cronjobs", "-n", namespace)["items"]) == 1


def test_run_now_makes_exactly_one_job_per_token_and_its_run_is_reported(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("evening").set(schedule="0 19 * * *", gpu={"count": 1}))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    for token in ("first", "first", "second"):
        cluster.kubectl(
            "annotate", "--overwrite", "-n", namespace, "newsbroadcast/evening", f"anchor.news/run-now={token}"
        )
        wait_for(
            lambda token=token: (
                (cluster.get("newsbroadcast", "evening", "-n", namespace).get("status") or {})
                .get("runNow", {})
                .get("token")
                == token
            ),
            f"run-now {token}",
        )
    jobs = wait_for(lambda: len(_jobs(cluster, namespace)) == 2 and _jobs(cluster, namespace), "two Jobs")
    tokens = sorted(j["metadata"]["annotations"]["anchor.news/run-now-token"] for j in jobs)
    assert tokens == ["first", "second"]
    # The pods pass restricted Pod Security in this namespace and land on the fake GPU node.
    pods = wait_for(
        lambda: cluster.running_pods(namespace),
        "running pods",
    )
    assert {p["spec"]["nodeName"] for p in pods} == {"gpu-node-1"}
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=evening")["items"]
    assert {"RunRequested"} <= {e["reason"] for e in events}


def _running_pod(cluster: Cluster, namespace: str) -> dict[str, Any]:
    pods = wait_for(
        lambda: cluster.running_pods(namespace),
        "a running pod",
    )
    return pods[0]


def _last_run(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    status = cluster.get("newsbroadcast", name, "-n", namespace).get("status") or {}
    last: dict[str, Any] | None = status.get("lastRun")
    return last


def test_a_successful_run_puts_its_result_on_the_status(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("noon").set(schedule="0 12 * * *"))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    cluster.kubectl("annotate", "-n", namespace, "newsbroadcast/noon", "anchor.news/run-now=go")
    pod = _running_pod(cluster, namespace)
    result = RunResult(
        status="Succeeded", broadcast="noon", run_id=pod["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        video="s3://news/noon/video.mp4", video_url="https://minio.test/video.mp4", duration_seconds=88.4,
        stories=3, credits=["VOICEVOX:ずんだもん"],
    )  # fmt: skip
    cluster.finish_pod(namespace, pod["metadata"]["name"], 0, result.compact_json())
    last = wait_for(lambda: _last_run(cluster, namespace, "noon"), "lastRun", timeout=60)
    assert (last["phase"], last["video"], last["stories"]) == ("Succeeded", "s3://news/noon/video.mp4", 3)
    assert last["credits"] == ["VOICEVOX:ずんだもん"]
    assert wait_for(lambda: _condition(cluster, namespace, "noon", "LastRunSucceeded"), "condition")["status"] == "True"
    wait_for(
        lambda: (
            {e["reason"] for e in cluster.get("events", "-n", namespace)["items"]} >= {"RunStarted", "RunSucceeded"}
        ),
        "RunStarted and RunSucceeded events",
    )


def _run_one_to_success(cluster: Cluster, namespace: str, name: str, schedule: str, stories: int) -> None:
    """A scheduled broadcast, one run-now, and its pod finishing with a successful result."""
    _apply(cluster, namespace, a_broadcast(name).set(schedule=schedule))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    result = RunResult(status="Succeeded", broadcast=name, run_id="r", video="/v.mp4", stories=stories)
    run_to_the_end(cluster, namespace, name, 0, result)


def test_the_sweep_reports_a_run_whose_report_failed(cluster: Cluster, namespace: str) -> None:
    """A report that hit an API error is marked for retry; the periodic sweep, not the Job's own events, retries."""
    _run_one_to_success(cluster, namespace, "swept", "0 16 * * *", stories=5)
    wait_for(lambda: _last_run(cluster, namespace, "swept"), "lastRun", timeout=60)
    # Undo the report as a failed status patch would have left it.
    (job,) = _jobs(cluster, namespace)
    cluster.kubectl(
        "patch", "-n", namespace, "newsbroadcast/swept", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"lastRun": None, "recentRuns": None}}),
    )  # fmt: skip
    assert _last_run(cluster, namespace, "swept") is None, cluster.get("newsbroadcast", "swept", "-n", namespace)
    cluster.kubectl(
        "annotate", "--overwrite", "-n", namespace, f"job/{job['metadata']['name']}", "anchor.news/reported=Retry"
    )
    last = wait_for(lambda: _last_run(cluster, namespace, "swept"), "the sweep to report the run again", timeout=60)
    assert (last["phase"], last["stories"]) == ("Succeeded", 5)
    job = cluster.get("job", job["metadata"]["name"], "-n", namespace)
    assert job["metadata"]["annotations"]["anchor.news/reported"] == "Finished"


def _events(cluster: Cluster, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    items = cluster.get("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e for e in items if e["reason"] == reason]


def test_a_run_recorded_before_the_job_was_marked_is_not_reported_twice(cluster: Cluster, namespace: str) -> None:
    """The controller died after writing the status and before annotating the Job: the Job, seen again, is
    marked, and neither the status nor the Events get the run a second time."""
    _run_one_to_success(cluster, namespace, "once", "0 18 * * *", stories=2)
    wait_for(lambda: _events(cluster, namespace, "once", "RunSucceeded"), "the RunSucceeded Event", timeout=60)
    (job,) = _jobs(cluster, namespace)
    name = job["metadata"]["name"]
    assert job["metadata"]["annotations"]["anchor.news/reported"] == "Finished"

    cluster.kubectl("annotate", "-n", namespace, f"job/{name}", "anchor.news/reported-")
    wait_for(
        lambda: (
            (cluster.get("job", name, "-n", namespace)["metadata"].get("annotations") or {}).get("anchor.news/reported")
            == "Finished"
        ),
        "the Job to be marked again",
    )
    status = cluster.get("newsbroadcast", "once", "-n", namespace)["status"]
    assert [r["job"] for r in status["recentRuns"]] == [name]
    assert len(_events(cluster, namespace, "once", "RunSucceeded")) == 1, _events(
        cluster, namespace, "once", "RunSucceeded"
    )


def test_a_run_is_recorded_once_when_two_reporters_race(cluster: Cluster, namespace: str) -> None:
    """The status write is conditional on the broadcast's resourceVersion (checked here on the real API server):
    a reporter holding a stale copy gets a conflict, reads again, and writes only what is not there yet."""
    _apply(cluster, namespace, a_broadcast("raced").set(schedule="0 20 * * *"))
    wait_for(lambda: _condition(cluster, namespace, "raced", "Ready"), "Ready")
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))
    job = {"metadata": {"name": "raced-1", "namespace": namespace, "annotations": {}}}

    def run(name: str) -> Outcome:
        return Outcome(name, "Succeeded", "Completed", "ok", "2026-11-25T01:00:00Z", "2026-11-25T01:02:00Z", None)

    stale = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "newsbroadcasts", "raced")
    fresh = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "newsbroadcasts", "raced")
    assert operator._record(api, fresh, job, run("raced-1"), None) is True  # the first reporter writes
    assert operator._record(api, stale, job, run("raced-1"), None) is False  # the second: conflict, re-read, nothing
    assert operator._record(api, stale, job, run("raced-2"), None) is True  # a new run: conflict, re-read, written
    status = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "newsbroadcasts", "raced")["status"]
    assert [r["job"] for r in status["recentRuns"]] == ["raced-2", "raced-1"]


def test_a_job_that_only_wears_our_labels_is_not_reported(cluster: Cluster, namespace: str) -> None:
    """Someone who may create Jobs copies our labels: the controller reports only runs the broadcast controls."""
    _apply(cluster, namespace, a_broadcast("guarded").set(schedule="0 21 * * *"))
    cron = wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")[0]
    template = cron["spec"]["jobTemplate"]
    impostor = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "impostor", "namespace": namespace, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    cluster.apply(impostor)
    pod = _running_pod(cluster, namespace)
    fake = RunResult(status="Succeeded", broadcast="guarded", run_id="x", video="s3://evil/v.mp4", stories=1)
    cluster.finish_pod(namespace, pod["metadata"]["name"], 0, fake.compact_json())
    wait_for(
        lambda: (
            (cluster.get("job", "impostor", "-n", namespace)["metadata"].get("annotations") or {}).get(
                "anchor.news/reported"
            )
            == "Foreign"
        ),
        "the impostor Job to be set aside",
    )
    cluster.kubectl("annotate", "-n", namespace, "newsbroadcast/guarded", "anchor.news/run-now=real")
    real = wait_for(
        lambda: cluster.running_pods(namespace),
        "the real run's pod",
    )[0]
    genuine = RunResult(status="Succeeded", broadcast="guarded", run_id="r", video="s3://news/v.mp4", stories=3)
    cluster.finish_pod(namespace, real["metadata"]["name"], 0, genuine.compact_json())
    wait_for(lambda: _last_run(cluster, namespace, "guarded"), "the real run reported", timeout=60)
    status = _status(cluster, namespace, "guarded")
    assert [r["video"] for r in status["recentRuns"]] == ["s3://news/v.mp4"]


def test_bad_configuration_fails_the_job_at_once_with_a_warning(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("broken").set(schedule="0 13 * * *", run={"backoffLimit": 3}))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    cluster.kubectl("annotate", "-n", namespace, "newsbroadcast/broken", "anchor.news/run-now=go")
    pod = _running_pod(cluster, namespace)
    failed = RunResult(
        status="Failed", broadcast="broken", run_id="r", exit_code=2, reason="ConfigError",
        message="spec.voice.styleId 4242 is not a talk style of this VOICEVOX engine",
    )  # fmt: skip
    cluster.finish_pod(namespace, pod["metadata"]["name"], 2, failed.compact_json())
    last = wait_for(lambda: _last_run(cluster, namespace, "broken"), "lastRun", timeout=60)
    assert (last["phase"], last["reason"]) == ("Failed", "InvalidConfiguration")
    assert "styleId 4242" in last["message"]
    (job,) = _jobs(cluster, namespace)
    assert job["status"].get("failed") == 1, "no retry: the podFailurePolicy failed the Job at once"
    assert any(c["type"] == "Failed" and c["reason"] == "PodFailurePolicy" for c in job["status"]["conditions"])
    condition = _condition(cluster, namespace, "broken", "LastRunSucceeded")
    assert condition is not None and condition["status"] == "False"
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=broken")["items"]
    assert any(e["type"] == "Warning" and e["reason"] == "InvalidConfiguration" for e in events)


def test_a_run_killed_without_a_result_is_reported_with_the_kubernetes_reason(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("hungry").set(schedule="0 17 * * *", run={"backoffLimit": 0}))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    cluster.kubectl("annotate", "-n", namespace, "newsbroadcast/hungry", "anchor.news/run-now=go")
    pod = _running_pod(cluster, namespace)
    cluster.finish_pod(namespace, pod["metadata"]["name"], 137, reason="OOMKilled")
    last = wait_for(lambda: _last_run(cluster, namespace, "hungry"), "lastRun", timeout=60)
    assert (last["phase"], last["reason"]) == ("Failed", "OOMKilled")
    assert "BackoffLimitExceeded" in last["message"]
    # The Event is posted after the status is written (kopf posts events on its own): wait for it, not a moment.
    (event, *_) = wait_for(lambda: _events(cluster, namespace, "hungry", "OOMKilled"), "the OOMKilled Event")
    assert event["type"] == "Warning"


def test_a_disrupted_pod_is_replaced_without_using_up_retries(cluster: Cluster, namespace: str) -> None:
    """Spot preemption or a node drain evicts the pod: the Job's podFailurePolicy ignores the DisruptionTarget
    failure, so even with backoffLimit 0 a new pod runs and the Job's failure count stays 0."""
    _apply(cluster, namespace, a_broadcast("preempted").set(schedule="0 14 * * *", run={"backoffLimit": 0}))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    cluster.kubectl("annotate", "-n", namespace, "newsbroadcast/preempted", "anchor.news/run-now=go")
    first = _running_pod(cluster, namespace)["metadata"]["name"]
    cluster.evict(namespace, first)

    def replacement() -> dict[str, Any] | None:
        pods = cluster.get("pods", "-n", namespace)["items"]
        return next((p for p in pods if p["metadata"]["name"] != first and p["status"].get("phase") == "Running"), None)

    second = wait_for(replacement, "a replacement pod", timeout=60)
    (job,) = _jobs(cluster, namespace)
    assert not job["status"].get("failed"), "the disruption was not counted against backoffLimit 0"
    assert not any(c["type"] == "Failed" for c in job["status"].get("conditions") or [])
    result = RunResult(status="Succeeded", broadcast="preempted", run_id="r", video="/out/v.mp4", stories=2)
    cluster.finish_pod(namespace, second["metadata"]["name"], 0, result.compact_json())
    last = wait_for(lambda: _last_run(cluster, namespace, "preempted"), "lastRun", timeout=60)
    assert last["phase"] == "Succeeded"


def test_a_run_with_no_free_gpu_stays_pending_and_says_why(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("greedy").set(schedule="0 15 * * *", gpu={"count": 3}))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    cluster.kubectl("annotate", "-n", namespace, "newsbroadcast/greedy", "anchor.news/run-now=go")

    def pending() -> dict[str, Any] | None:
        status = cluster.get("newsbroadcast", "greedy", "-n", namespace).get("status") or {}
        active: dict[str, Any] | None = status.get("activeRun")
        return active if active and active.get("reason") else None

    active = wait_for(pending, "activeRun with the scheduler's reason", timeout=60)
    assert (active["phase"], active["reason"]) == ("Pending", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in active["message"]
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=greedy")["items"]
    assert any(
        e["type"] == "Warning" and e["reason"] == "Unschedulable" and "nvidia.com/gpu" in e["message"] for e in events
    )
    (pod,) = cluster.get("pods", "-n", namespace)["items"]
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")


def test_invalid_spec_the_crd_lets_through_is_reported_and_the_cronjob_left_alone(
    cluster: Cluster, namespace: str
) -> None:
    broadcast = a_broadcast("zoned").set(schedule="0 7 * * *", timeZone="Asia/Tokyo")
    _apply(cluster, namespace, broadcast)
    cron = wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")[0]
    _apply(cluster, namespace, broadcast.set(timeZone="Mars/Olympus_Mons"))
    ready = wait_for(
        lambda: (c := _condition(cluster, namespace, "zoned", "Ready")) and c["status"] == "False" and c,
        "Ready=False",
    )
    assert ready["reason"] == "InvalidSpec" and "spec.timeZone" in ready["message"]
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=zoned")["items"]
    assert any(e["type"] == "Warning" and e["reason"] == "InvalidSpec" for e in events)
    unchanged = cluster.get("cronjob", "zoned", "-n", namespace)
    assert unchanged["spec"]["timeZone"] == "Asia/Tokyo"
    assert unchanged["metadata"]["uid"] == cron["metadata"]["uid"]


def test_a_broadcast_without_schedule_runs_once(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("breaking"))
    jobs = wait_for(lambda: _jobs(cluster, namespace), "the one-off Job")
    assert [j["metadata"]["name"] for j in jobs] == ["breaking-once"]
    assert cluster.get("cronjobs", "-n", namespace)["items"] == []
    wait_for(lambda: (_status(cluster, namespace, "breaking").get("oneOff") or {}).get("job"), "status.oneOff")
    # The Job's TTL removes it; a later reconcile (a label change here; a restart alike) must not run it again.
    cluster.kubectl("delete", "job", "breaking-once", "-n", namespace)
    cluster.kubectl("label", "-n", namespace, "newsbroadcast/breaking", "team=night")
    wait_for(
        lambda: "ran already" in ((_condition(cluster, namespace, "breaking", "Ready") or {}).get("message") or ""),
        "a reconcile after the label change",
    )
    assert _jobs(cluster, namespace) == []


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get("newsbroadcast", name, "-n", namespace).get("status") or {}
    return status


def test_removing_the_schedule_retires_the_cronjob_and_keeps_its_running_job(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("weekly").set(schedule="0 9 * * 1"))
    cron = wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")[0]
    cluster.kubectl("create", "job", "weekly-manual", "--from=cronjob/weekly", "-n", namespace)
    _apply(cluster, namespace, a_broadcast("weekly"))  # the schedule removed
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"] == [], "the CronJob to be deleted")
    jobs = wait_for(lambda: len(_jobs(cluster, namespace)) == 2 and _jobs(cluster, namespace), "two Jobs")
    broadcast_uid = cluster.get("newsbroadcast", "weekly", "-n", namespace)["metadata"]["uid"]
    for job in jobs:  # the running one was handed to the broadcast, and the one-off run was created
        (owner,) = job["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("NewsBroadcast", broadcast_uid), job["metadata"]["name"]
    assert sorted(j["metadata"]["name"] for j in jobs) == ["weekly-manual", "weekly-once"]
    assert cron["metadata"]["uid"] not in json.dumps(jobs)
    assert _events(cluster, namespace, "weekly", "ScheduleRemoved")


def test_an_object_the_api_server_refuses_is_reported_not_hidden(cluster: Cluster, namespace: str) -> None:
    """Minute 61 passes the spec's shape check; the API server's cron parser refuses the CronJob."""
    _apply(cluster, namespace, a_broadcast("late").set(schedule="61 * * * *"))
    ready = wait_for(
        lambda: (c := _condition(cluster, namespace, "late", "Ready")) and c["status"] == "False" and c,
        "Ready=False",
    )
    assert ready["reason"] == "ApplyFailed" and "schedule" in ready["message"], ready
    assert _events(cluster, namespace, "late", "ApplyFailed")
    assert cluster.get("cronjobs", "-n", namespace)["items"] == []


def test_the_crd_refuses_bad_objects_and_explains_fields(cluster: Cluster, namespace: str) -> None:
    bad = a_broadcast("bad").voice(speedScale=9).in_namespace(namespace).dict()
    done = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert done.returncode != 0 and "spec.voice.speedScale" in done.stderr
    explained = cluster.kubectl("explain", "nb.spec.voice").stdout
    assert "VOICEVOX style id" in explained


def test_a_restarted_or_second_controller_creates_no_duplicates(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """A controller killed mid-way and started again (here: a second one started beside the first) converges."""
    _apply(cluster, namespace, a_broadcast("twice").set(schedule="0 8 * * *"))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    with running_controller(["--standalone"], cluster.env, tmp_path / "second.log") as second:
        cluster.kubectl("annotate", "-n", namespace, "newsbroadcast/twice", "anchor.news/run-now=once")
        wait_for(lambda: _jobs(cluster, namespace), "the run-now Job")
        # Both controllers have seen the annotation by the time the status records it.
        wait_for(
            lambda: (cluster.get("newsbroadcast", "twice", "-n", namespace).get("status") or {}).get("runNow"),
            "runNow on the status",
        )
        second.kill()  # at an arbitrary point
        cluster.kubectl("annotate", "--overwrite", "-n", namespace, "newsbroadcast/twice", "anchor.news/touch=1")
        assert len(cluster.get("cronjobs", "-n", namespace)["items"]) == 1
        assert len(_jobs(cluster, namespace)) == 1


def test_deleting_the_broadcast_lets_the_garbage_collector_take_its_objects(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, a_broadcast("gone").set(schedule="0 9 * * *"))
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    cluster.kubectl("delete", "-n", namespace, "newsbroadcast/gone")
    # The garbage collector discovers a new CRD's resources on a resync: allow it its time.
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"] == [], "the CronJob to be collected", timeout=90)
