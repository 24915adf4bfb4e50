"""The NewsBroadcast status computed from Jobs and pods: results, Kubernetes reasons, conditions, recent runs."""

from __future__ import annotations

from typing import Any

import pytest

from api.result import RunResult
from controller.status import RECENT_RUNS, active_run, condition, outcome, run_status

SUCCESS = RunResult(
    status="Succeeded",
    broadcast="morning",
    run_id="morning-29412345",
    video="s3://news/b/morning/run/video.mp4",
    video_url="https://minio.example/video.mp4?X-Amz-Signature=abc",
    page_url="https://news.example/morning/index.html",
    duration_seconds=95.5,
    stories=4,
    credits=["VOICEVOX:ずんだもん"],
).to_json()


def _job(state: str | None, reason: str = "", message: str = "") -> dict[str, Any]:
    conditions = []
    if state:
        conditions.append(
            {
                "type": state,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2026-11-24T07:03:00Z",
            }
        )
    return {
        "metadata": {"name": "morning-29412345"},
        "status": {
            "startTime": "2026-11-24T07:00:00Z",
            "completionTime": "2026-11-24T07:03:00Z" if state == "Complete" else None,
            "conditions": conditions,
        },
    }


def _pod(
    terminated: dict[str, Any] | None = None, waiting: str | None = None, unscheduled: bool = False
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = {"finishedAt": "2026-11-24T07:03:00Z", **terminated}
    if waiting:
        state["waiting"] = {"reason": waiting}
    status: dict[str, Any] = {"containerStatuses": [{"name": "job", "state": state}, {"name": "voicevox", "state": {}}]}
    if unscheduled:
        status = {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }
            ]
        }
    return {"status": status}


def test_running_job_has_no_outcome() -> None:
    assert outcome(_job(None), [_pod()]) is None


def test_success_reads_the_result_from_the_termination_message() -> None:
    result = outcome(_job("Complete"), [_pod({"exitCode": 0, "message": SUCCESS})])
    assert result is not None and result.phase == "Succeeded" and result.reason == "RunSucceeded"
    record = result.record()
    assert record["video"] == "s3://news/b/morning/run/video.mp4"
    assert record["stories"] == 4 and record["durationSeconds"] == 95.5
    assert record["credits"] == ["VOICEVOX:ずんだもん"]
    assert record["startedAt"] == "2026-11-24T07:00:00Z" and record["finishedAt"] == "2026-11-24T07:03:00Z"


def test_result_is_found_at_the_end_of_a_log_tail_too() -> None:
    tail = '{"level": "info", "event": "x"}\n' + SUCCESS
    result = outcome(_job("Complete"), [_pod({"exitCode": 0, "message": tail})])
    assert result is not None and result.result is not None and result.result.stories == 4


def test_bad_configuration_is_reported_with_the_jobs_own_message() -> None:
    failed = RunResult(
        status="Failed",
        broadcast="m",
        run_id="r",
        exit_code=2,
        reason="ConfigError",
        message="spec.voice.styleId 99 is not a talk style",
    ).to_json()
    result = outcome(
        _job("Failed", "PodFailurePolicy", "Container job exited with 2"), [_pod({"exitCode": 2, "message": failed})]
    )
    assert result is not None
    assert (result.phase, result.reason) == ("Failed", "InvalidConfiguration")
    assert "styleId 99" in result.message


def test_a_pod_that_died_without_a_result_is_reported_with_its_kubernetes_reason() -> None:
    oom = outcome(
        _job("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        [_pod({"exitCode": 137, "reason": "OOMKilled"})],
    )
    assert oom is not None and oom.reason == "OOMKilled" and "BackoffLimitExceeded" in oom.message
    pull = outcome(
        _job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
        [_pod(waiting="ImagePullBackOff")],
    )
    assert pull is not None and pull.reason == "ImagePullBackOff"
    pending = outcome(
        _job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"), [_pod(unscheduled=True)]
    )
    assert pending is not None and pending.reason == "Unschedulable"
    bare = outcome(_job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"), [])
    assert bare is not None and bare.reason == "DeadlineExceeded"


def test_conditions_move_their_transition_time_only_when_status_flips() -> None:
    first = condition("Ready", True, "Reconciled", "ok", generation=1, at="2026-11-24T07:00:00Z")
    same = condition("Ready", True, "Reconciled", "still ok", generation=2, previous=[first], at="2026-11-24T08:00:00Z")
    flipped = condition("Ready", False, "InvalidSpec", "bad", generation=3, previous=[same], at="2026-11-24T09:00:00Z")
    assert same["lastTransitionTime"] == "2026-11-24T07:00:00Z" and same["observedGeneration"] == 2
    assert flipped["lastTransitionTime"] == "2026-11-24T09:00:00Z" and flipped["status"] == "False"


def test_run_status_keeps_a_bounded_newest_first_history() -> None:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]}
    for n in range(RECENT_RUNS + 3):
        job = _job("Complete")
        job["metadata"]["name"] = f"morning-{n}"
        status.update(run_status(status, outcome(job, [_pod({"exitCode": 0, "message": SUCCESS})]), 4))  # type: ignore[arg-type]
    assert len(status["recentRuns"]) == RECENT_RUNS
    assert status["recentRuns"][0]["job"] == f"morning-{RECENT_RUNS + 2}" == status["lastRun"]["job"]
    assert status["lastSuccessfulTime"] == "2026-11-24T07:03:00Z"
    kinds = {c["type"]: c for c in status["conditions"]}
    assert kinds["Ready"]["status"] == "True"
    assert kinds["LastRunSucceeded"]["status"] == "True" and kinds["LastRunSucceeded"]["observedGeneration"] == 4


def _pending_pod(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "morning-go-x1", "labels": {"batch.kubernetes.io/job-name": "morning-go"}},
        "status": {"phase": phase, **status},
    }


def test_an_unschedulable_pod_is_the_active_run_with_the_schedulers_words() -> None:
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
        "lastTransitionTime": "2026-11-24T07:00:01Z",
    }
    entry = active_run(_pending_pod("Pending", conditions=[unschedulable]))
    assert entry == {
        "job": "morning-go",
        "pod": "morning-go-x1",
        "phase": "Pending",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
        "since": "2026-11-24T07:00:01Z",
    }
    assert active_run(_pending_pod("Running")) == {"job": "morning-go", "pod": "morning-go-x1", "phase": "Running"}
    assert active_run(_pending_pod("Succeeded")) is None
    deleted = _pending_pod("Running")
    deleted["metadata"]["deletionTimestamp"] = "2026-11-24T07:01:00Z"
    assert active_run(deleted) is None


def test_a_finished_run_is_no_longer_the_active_one() -> None:
    status = {"activeRun": {"job": "morning-29412345", "phase": "Running"}}
    patch = run_status(status, outcome(_job("Complete"), [_pod({"exitCode": 0, "message": SUCCESS})]), 1)  # type: ignore[arg-type]
    assert "activeRun" in patch and patch["activeRun"] is None
    other = {"activeRun": {"job": "morning-later", "phase": "Running"}}
    assert "activeRun" not in run_status(other, outcome(_job("Complete"), []), 1)  # type: ignore[arg-type]


def test_every_status_the_builders_write_is_the_typed_status_and_survives_the_crds_schema() -> None:
    """api/status.py is the one model: what controller/status.py builds validates against it (extra fields are
    refused, so a new field must be declared there, and so in the CRD, or the API server would prune it)."""
    from jsonschema import Draft202012Validator

    from api.crd import crd
    from api.status import BroadcastStatus

    ready = condition("Ready", True, "Reconciled", "the CronJob matches the spec", generation=1)
    status: dict[str, Any] = {"conditions": [ready], "observedGeneration": 1}
    status["activeRun"] = active_run(_pending_pod("Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available",
         "lastTransitionTime": "2026-11-24T07:00:01Z"}]))  # fmt: skip
    job = _job("Complete")
    status.update(run_status(status, outcome(job, [_pod({"exitCode": 0, "message": SUCCESS})]), 1))  # type: ignore[arg-type]
    failed = _job("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    failed["metadata"]["name"] = "morning-2"
    status.update(run_status(status, outcome(failed, []), 1))  # type: ignore[arg-type]
    status["controller"] = {"lastHandledSpec": "{}", "progress": {"reconcile": {"retries": 0}}}
    status = {k: v for k, v in status.items() if v is not None}
    typed = BroadcastStatus.model_validate(status)
    assert typed.last_run is not None and typed.last_run.phase == "Failed" and len(typed.recent_runs or []) == 2
    assert typed.recent_runs and typed.recent_runs[1].video_url == "https://minio.example/video.mp4?X-Amz-Signature=abc"
    assert typed.recent_runs[1].page_url == "https://news.example/morning/index.html"
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    Draft202012Validator(schema).validate(status)
    assert schema["properties"]["controller"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "x-kubernetes-preserve-unknown-fields" not in schema, "the rest of the status is declared, not opaque"
    assert schema["properties"]["lastRun"]["properties"]["videoUrl"]["description"].startswith("A URL")


def test_gpu_seconds_are_the_gpus_the_pod_held_times_the_runs_time() -> None:
    from controller import manifests
    from controller.settings import Settings
    from controller.status import gpus_held
    from tests.support.builders import a_broadcast

    def job_for(gpu: dict[str, Any]) -> dict[str, Any]:
        template = manifests.job_template(a_broadcast("m").set(gpu=gpu).model(), Settings())
        return {**_job("Complete"), "spec": template["spec"]}  # 07:00:00 to 07:03:00

    two = job_for({"count": 2})
    assert gpus_held(two) == 2
    record = outcome(two, [_pod({"exitCode": 0, "message": SUCCESS})]).record()  # type: ignore[union-attr]
    assert record["gpuSeconds"] == 360.0
    mig = job_for({"count": 1, "resourceName": "nvidia.com/mig-1g.10gb"})
    assert outcome(mig, []).record()["gpuSeconds"] == 180.0  # type: ignore[union-attr]
    cpu = job_for({"count": 0})
    assert gpus_held(cpu) == 0 and outcome(cpu, []).record()["gpuSeconds"] == 0.0  # type: ignore[union-attr]
    running_too_long = _job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
    assert outcome(running_too_long, []).record()["gpuSeconds"] == 0.0  # type: ignore[union-attr]  # no template: none held


def test_a_run_with_nothing_new_succeeds_as_such_without_a_video() -> None:
    nothing = RunResult(
        status="Succeeded",
        broadcast="morning",
        run_id="morning-29412345",
        reason="NothingNew",
        message="no new stories: all 5 stories from 1 feed were aired within the last 168 h",
    ).to_json()
    result = outcome(_job("Complete"), [_pod({"exitCode": 0, "message": nothing})])
    assert result is not None and (result.phase, result.reason) == ("Succeeded", "NothingNew")
    assert result.message.startswith("no new stories: all 5 stories")
    record = result.record()
    assert "video" not in record and record["reason"] == "NothingNew"
    status = run_status({}, result, 1)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"LastRunSucceeded": "True"}


def test_a_runs_cost_is_its_gpu_time_at_the_price_of_its_gpu_resource() -> None:
    from controller import manifests
    from controller.settings import Settings, SettingsError
    from tests.support.builders import a_broadcast

    settings = Settings.from_env(
        {"ANCHOR_GPU_PRICES": '{"nvidia.com/gpu": {"onDemand": 3.6, "spot": 1.2}, "nvidia.com/mig-1g.10gb": '
                              '{"onDemand": 0.5}}', "ANCHOR_COST_CURRENCY": "EUR"}
    )  # fmt: skip

    def run(gpu: dict[str, Any]) -> Any:
        template = manifests.job_template(a_broadcast("m").set(gpu=gpu).model(), Settings())
        return outcome({**_job("Complete"), "spec": template["spec"]}, [])  # 180 s

    two = run({"count": 2})
    cost = two.cost(settings.gpu_prices, settings.cost_currency)
    assert cost is not None and (cost.currency, cost.on_demand, cost.spot) == ("EUR", 0.36, 0.12)  # 360 GPU-s
    assert run_status({}, two, 1, cost)["lastRun"]["cost"] == {"currency": "EUR", "onDemand": 0.36, "spot": 0.12}
    mig = run({"count": 1, "resourceName": "nvidia.com/mig-1g.10gb"}).cost(settings.gpu_prices, "EUR")
    assert mig is not None and (mig.on_demand, mig.spot) == (0.025, None)
    assert run({"count": 1, "resourceName": "amd.com/gpu"}).cost(settings.gpu_prices, "EUR") is None, "no price"
    assert "cost" not in run_status({}, two, 1)["lastRun"], "no price table: no cost"
    for bad, words in (
        ('{"gpu": {"onDemand": 1}}', "not an extended resource name"),
        ('{"nvidia.com/gpu": {"onDemand": -1}}', "greater than or equal to 0"),
        ("3 dollars", "must be a JSON object"),
    ):
        with pytest.raises(SettingsError, match=f"ANCHOR_GPU_PRICES: .*{words}"):
            Settings.from_env({"ANCHOR_GPU_PRICES": bad})


def _scheduled_pod(phase: str, init: dict[str, Any] | None = None, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """A bound pod (scheduled after an earlier Unschedulable) with the engine sidecar's and the job's states."""
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-24T07:02:00Z"}
    engine = {
        "name": "voicevox",
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": "PodInitializing"}},
    }
    the_job = {"name": "job", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
    return _pending_pod(
        phase,
        conditions=[scheduled],
        initContainerStatuses=[{**engine, **(init or {})}],
        containerStatuses=[{**the_job, **(job or {})}],
    )


def test_an_engine_that_keeps_failing_is_what_holds_the_run_with_its_exit_code_and_last_words() -> None:
    """Tried on a real node: Init:CrashLoopBackOff for minutes while the status said nothing (it read PodScheduled
    only, and the last Event still told of the scheduler)."""
    crashing = {
        "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container"}},
        "lastState": {
            "terminated": {"exitCode": 1, "reason": "Error", "message": "model\nfile missing", "finishedAt": "T1"}
        },
    }
    entry = active_run(_scheduled_pod("Pending", init=crashing))
    assert entry is not None and (entry["phase"], entry["reason"], entry["since"]) == (
        "Pending",
        "CrashLoopBackOff",
        "T1",
    )
    message = entry["message"]
    assert message.startswith("the engine (voicevox) is waiting: CrashLoopBackOff; back-off 2m40s"), message
    assert "exit code 1 (Error): model file missing" in message and "restarted 5 times" in message


@pytest.mark.parametrize(
    ("init", "job", "reason", "words"),
    [
        (None, {"state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}, "ErrImagePull",
         "the job (job)"),
        ({"state": {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'}}}, None,
         "CreateContainerConfigError", 'secret "s3" not found'),
        ({"state": {"running": {"startedAt": "T2"}}, "ready": False}, None, "EngineNotReady", "not ready yet"),
        ({"state": {"running": {"startedAt": "T2"}}, "ready": True}, {"state": {"running": {}}}, None, None),
        (None, None, None, None),  # both on their way (PodInitializing): nothing to report
    ],
)  # fmt: skip
def test_what_holds_a_run_now_comes_from_its_containers_current_states(
    init: dict[str, Any] | None, job: dict[str, Any] | None, reason: str | None, words: str | None
) -> None:
    entry = active_run(_scheduled_pod("Running" if job and "running" in job["state"] else "Pending", init, job))
    assert entry is not None and entry.get("reason") == reason
    assert words is None or words in entry["message"]


def _workload(*conditions: dict[str, Any], admission: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Kueue v1beta2 Workload as Kueue writes it for a run's Job."""
    status: dict[str, Any] = {"conditions": list(conditions)}
    if admission:
        status["admission"] = admission
    return {
        "metadata": {"name": "job-morning-1-abcde", "creationTimestamp": "2026-11-24T06:00:00Z"},
        "spec": {"queueName": "gpu"},
        "status": status,
    }


def _kueue(kind: str, status: str, reason: str, message: str, at: str = "2026-11-24T06:00:01Z") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}


def test_a_workload_waiting_for_quota_is_a_queued_run_with_kueues_words() -> None:
    from controller.status import queued_run

    fresh = queued_run(_workload(), "morning-1", "gpu-cluster")
    assert fresh is not None and (fresh["phase"], fresh["reason"]) == ("Queued", "Queued")
    assert fresh["since"] == "2026-11-24T06:00:00Z" and "not considered by Kueue yet" in fresh["message"]
    words = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor gpu"
    waiting = queued_run(_workload(_kueue("QuotaReserved", "False", "Pending", words)), "morning-1", "gpu-cluster")
    assert waiting == {
        "job": "morning-1",
        "phase": "Queued",
        "reason": "Queued",
        "message": f"waiting in Kueue LocalQueue gpu (ClusterQueue gpu-cluster): {words}",
        "since": "2026-11-24T06:00:00Z",
        "queue": "gpu",
        "clusterQueue": "gpu-cluster",
    }
    missing = queued_run(
        _workload(_kueue("QuotaReserved", "False", "Inadmissible", "LocalQueue gpu doesn't exist")), "morning-1"
    )
    assert missing is not None and missing["reason"] == "Inadmissible" and "clusterQueue" not in missing
    assert missing["message"] == "waiting in Kueue LocalQueue gpu: LocalQueue gpu doesn't exist"


def test_a_preempted_workload_waits_again_and_an_admitted_or_finished_one_is_not_queued() -> None:
    from controller.status import admitted, queued_run

    evicted = _workload(
        _kueue("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: x) due to prioritization",
               "2026-11-24T06:10:00Z"),
        _kueue("QuotaReserved", "False", "Pending", "insufficient unused quota"),
        admission={"clusterQueue": "gpu-cluster"},
    )  # fmt: skip
    run = queued_run(evicted, "morning-1")
    assert run is not None and (run["phase"], run["reason"], run["since"]) == (
        "Queued",
        "Preempted",
        "2026-11-24T06:10:00Z",
    )
    assert run["clusterQueue"] == "gpu-cluster" and "Preempted to accommodate" in run["message"]
    going = _workload(_kueue("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue gpu"),
                      _kueue("Admitted", "True", "Admitted", "The workload is admitted"))  # fmt: skip
    assert admitted(going) and queued_run(going, "morning-1") is None
    done = _workload(_kueue("Finished", "True", "Succeeded", "Job finished successfully"))
    assert not admitted(done) and queued_run(done, "morning-1") is None
    checks = queued_run(_workload(_kueue("QuotaReserved", "True", "QuotaReserved", "reserved")), "morning-1")
    assert checks is not None and checks["reason"] == "QuotaReserved"


def test_the_runs_ahead_are_those_kueue_takes_first_from_the_same_cluster_queue() -> None:
    """Kueue's order (BestEffortFIFO and StrictFIFO): higher priority first, then older; a preempted Workload keeps
    its place, one evicted for not getting its pods ready goes to the end; other ClusterQueues do not count."""
    from controller.status import ahead, waiting

    def at(uid: str, created: str, priority: int | None = None, *conditions: dict[str, Any]) -> dict[str, Any]:
        document = _workload(*conditions)
        document["metadata"] |= {"uid": uid, "creationTimestamp": created}
        if priority is not None:
            document["spec"]["priority"] = priority
        return document

    early, late = "2026-11-24T06:00:00Z", "2026-11-24T06:00:05Z"
    places = {
        "first": waiting(at("first", early), "gpu"),
        "second": waiting(at("second", late), "gpu"),
        "urgent": waiting(at("urgent", "2026-11-24T06:09:00Z", 1000), "gpu"),
        "preempted": waiting(at("preempted", "2026-11-24T05:59:00Z", None, _kueue("Evicted", "True", "Preempted", "",
                                                                                   "2026-11-24T06:10:00Z")), "gpu"),
        "too-slow": waiting(at("too-slow", "2026-11-24T05:58:00Z", None, _kueue("Evicted", "True", "PodsReadyTimeout",
                                                                                 "", "2026-11-24T06:10:00Z")), "gpu"),
        "elsewhere": waiting(at("elsewhere", "2026-11-24T05:00:00Z"), "cpu"),
    }  # fmt: skip
    assert all(places.values())
    queue = [place for place in places.values() if place]
    order = {uid: ahead(place, queue) for uid, place in places.items() if place}
    assert order == {"urgent": 0, "preempted": 1, "first": 2, "second": 3, "too-slow": 4, "elsewhere": 0}
    admitted = at("gone", early, None, _kueue("Admitted", "True", "Admitted", "The workload is admitted"))
    reserved = at("checks", early, None, _kueue("QuotaReserved", "True", "QuotaReserved", "reserved"))
    assert waiting(admitted, "gpu") is None and waiting(reserved, "gpu") is None
    assert waiting(at("unknown", early), None) is None, "a LocalQueue whose ClusterQueue cannot be read: no place"


def test_an_active_run_replaces_what_the_last_one_said_in_a_merge_patch() -> None:
    """The status is written with a JSON merge patch, which keeps keys it is not told to drop: a Running run must
    not keep the Queued run's reason, message and queue."""
    from controller.status import queued_run, replacing

    queued = queued_run(_workload(_kueue("QuotaReserved", "False", "Pending", "no quota")), "morning-1", "gpu")
    running = active_run(_pending_pod("Running"))
    assert queued is not None and running is not None
    merged = {**queued, **replacing(running)}
    assert {k: v for k, v in merged.items() if v is not None} == running
    assert replacing(queued) == queued | {"pod": None, "ahead": None}
    from jsonschema import Draft202012Validator

    from api.crd import crd

    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    Draft202012Validator(schema["properties"]["activeRun"]).validate(queued)  # the API server keeps every field
