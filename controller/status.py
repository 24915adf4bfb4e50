"""What the NewsBroadcast's status should say: pure functions from Job and Pod objects to status dicts.

Conditions follow the Kubernetes API conventions (type, status, reason in CamelCase, message for humans,
lastTransitionTime that moves only when status changes, observedGeneration).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from api.cost import ALLOCATION_VARIABLE, allocation_from_env, estimate
from api.result import NOTHING_NEW, ExitCode, RunResult
from api.status import MESSAGE_LIMIT, RECENT_RUNS, ActiveRun, Condition, Phase, RunCost, RunRecord
from controller.manifests import ENGINE_CONTAINER

JOB_CONTAINER = "job"


def now_rfc3339(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Outcome:
    """How a finished Job ended, from the Job's conditions and its pods' termination messages."""

    job: str
    phase: Phase
    reason: str
    message: str
    started_at: str | None
    finished_at: str | None
    result: RunResult | None
    gpus: int = 0
    """GPUs the run's pod held (its containers' extended-resource limits)."""
    gpu_resource: str | None = None
    """Their resource name (nvidia.com/gpu, a MIG slice, ...)."""

    def cost(self, prices: Mapping[str, Any], currency: str) -> RunCost | None:
        """The run's GPU time at `prices` (resource name → hourly on_demand and spot), or None without a price."""
        price = prices.get(self.gpu_resource or "")
        seconds = self.gpu_seconds
        if price is None or seconds is None:
            return None
        return estimate(seconds, price, currency)

    @property
    def gpu_seconds(self) -> float | None:
        """What the run cost in GPU time: the GPUs held times the Job's start-to-finish time (None when unknown)."""
        if not self.started_at or not self.finished_at:
            return None
        try:
            held = _moment(self.finished_at) - _moment(self.started_at)
        except ValueError:
            return None
        return round(max(held.total_seconds(), 0.0) * self.gpus, 1)

    def record(self, cost: RunCost | None = None) -> dict[str, Any]:
        """The status entry for this run (lastRun and each recentRuns item)."""
        result = self.result
        engine = result.engine if result else None
        return RunRecord(
            job=self.job,
            phase=self.phase,
            reason=self.reason,
            message=self.message[:MESSAGE_LIMIT],
            started_at=self.started_at,
            finished_at=self.finished_at,
            run_id=result.run_id if result else None,
            video=result.video if result else None,
            video_url=result.video_url if result else None,
            page_url=result.page_url if result else None,
            duration_seconds=result.duration_seconds if result else None,
            stories=result.stories if result else None,
            engine_device=engine.device if engine else None,
            engine_version=engine.version if engine else None,
            gpu=result.gpu if result else None,
            credits=result.credits if result else None,
            warnings=len(result.warnings) if result else None,
            gpu_seconds=self.gpu_seconds,
            cost=cost,
        ).dump()


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for entry in job.get("status", {}).get("conditions") or []:
        if entry.get("type") == kind and entry.get("status") == "True":
            found: Mapping[str, Any] = entry
            return found
    return None


def finished(job: Mapping[str, Any]) -> bool:
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def job_result(pods: Sequence[Mapping[str, Any]]) -> tuple[RunResult | None, str | None]:
    """The newest run result among the Job's pods (from the job container's termination message), and, when no
    pod left one, the most telling Kubernetes reason (OOMKilled, ImagePullBackOff, Unschedulable, ...)."""
    newest: tuple[str, RunResult] | None = None
    reason = None
    for pod in pods:
        status = pod.get("status", {})
        for container in status.get("containerStatuses") or []:
            if container.get("name") != JOB_CONTAINER:
                continue
            state = container.get("state", {}) or {}
            last = container.get("lastState", {}) or {}
            terminated = state.get("terminated") or last.get("terminated")
            waiting = state.get("waiting")
            if terminated:
                message = terminated.get("message") or ""
                parsed = _parse_result(message)
                if parsed is not None:
                    at = terminated.get("finishedAt") or ""
                    if newest is None or at >= newest[0]:
                        newest = (at, parsed)
                elif terminated.get("reason") not in (None, "Completed", "Error"):
                    reason = terminated["reason"]  # OOMKilled, ContainerCannotRun, ...
                elif reason is None:
                    reason = f"ExitCode{terminated.get('exitCode')}"
            elif waiting and waiting.get("reason"):
                reason = waiting["reason"]  # ImagePullBackOff, CreateContainerConfigError, ...
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and reason is None:
                reason = condition.get("reason") or "Unschedulable"
    return (newest[1] if newest else None), reason


def _parse_result(message: str) -> RunResult | None:
    # The job writes its result JSON as the whole termination message; with FallbackToLogsOnError the message
    # may instead be the log tail, whose last line is the result.
    for candidate in (message, message.strip().splitlines()[-1] if message.strip() else ""):
        if candidate.strip().startswith("{"):
            try:
                return RunResult.parse(candidate)
            except (ValueError, ValidationError):
                continue
    return None


def _moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def unix_time(stamp: Any) -> float | None:
    """An RFC 3339 time (as the API server and the status write them) as a Unix time; None when it is not one."""
    try:
        moment = datetime.fromisoformat(str(stamp)) if stamp else None
    except ValueError:
        return None
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def seconds_between(since: str | None, until: str | None) -> float | None:
    """Seconds from one RFC 3339 time to another (0 if reversed); None when either is missing or unreadable."""
    start, end = unix_time(since), unix_time(until)
    return None if start is None or end is None else max(0.0, end - start)


_NOT_ACCELERATORS = ("cpu", "memory", "ephemeral-storage")


def _accelerators(job: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The accelerators a Job's pod holds: its containers' extended-resource limits (nvidia.com/gpu, a MIG slice,
    amd.com/gpu, ...); the controller's pods request nothing else beyond CPU and memory. A pod that claims its GPUs
    through DRA has no such limit: what the job container was told it holds (ANCHOR_GPU_ALLOCATION) says it."""
    pod = job.get("spec", {}).get("template", {}).get("spec", {})
    found = []
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for container in containers:
        for name, quantity in ((container.get("resources") or {}).get("limits") or {}).items():
            if name not in _NOT_ACCELERATORS and not name.startswith("hugepages-") and str(quantity).isdigit():
                found.append((name, int(quantity)))
    if not found and pod.get("resourceClaims"):
        for container in containers:
            variables = {e.get("name"): e.get("value") for e in container.get("env") or []}
            try:
                allocation = allocation_from_env({ALLOCATION_VARIABLE: variables.get(ALLOCATION_VARIABLE) or ""})
            except ValueError:
                continue
            if allocation is not None:
                found.append((allocation.resource, allocation.count))
    return found


def gpus_held(job: Mapping[str, Any]) -> int:
    return sum(count for _, count in _accelerators(job))


def _gpu_resource(job: Mapping[str, Any]) -> str | None:
    return next((name for name, _ in _accelerators(job)), None)


def outcome(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Outcome | None:
    """How a finished Job ended, or None while it runs."""
    if not finished(job):
        return None
    name = job["metadata"]["name"]
    status = job.get("status", {})
    result, pod_reason = job_result(pods)
    complete = _condition(job, "Complete")
    failed = _condition(job, "Failed")
    if complete is not None:
        message = f"video published: {result.video_url or result.video}" if result else "the run completed"
        nothing_new = result is not None and result.reason == NOTHING_NEW
        if nothing_new and result is not None:
            message = result.message or "no new stories: every story was aired by an earlier run"
        return Outcome(
            name,
            "Succeeded",
            NOTHING_NEW if nothing_new else "RunSucceeded",
            message,
            status.get("startTime"),
            status.get("completionTime") or complete.get("lastTransitionTime"),
            result,
            gpus_held(job),
            _gpu_resource(job),
        )
    failed = failed or {}
    if result is not None and result.status == "Failed":
        reasons = {
            int(ExitCode.CONFIG_ERROR): "InvalidConfiguration",
            int(ExitCode.TRANSIENT_ERROR): "TransientFailure",
            int(ExitCode.INTERNAL_ERROR): "InternalError",
        }
        reason = reasons.get(result.exit_code, "RunFailed")
        message = result.message or "the run failed"
    else:
        # No result: the pod died without one (OOM, deadline, image pull, never scheduled).
        reason = pod_reason or failed.get("reason") or "RunFailed"
        message = failed.get("message") or f"the Job failed ({reason})"
        if pod_reason and failed.get("reason"):
            message = f"{failed.get('reason')}: {message} (pod: {pod_reason})"
    finished_at = failed.get("lastTransitionTime")
    started_at = status.get("startTime")
    return Outcome(name, "Failed", reason, message, started_at, finished_at, result, gpus_held(job), _gpu_resource(job))


def condition(
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]] = (),
    at: str | None = None,
) -> dict[str, Any]:
    """A condition whose lastTransitionTime only moves when its status flips."""
    status = "True" if ok else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    moved = before is None or before.get("status") != status
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message[:MESSAGE_LIMIT],
        last_transition_time=(at or now_rfc3339()) if moved else before.get("lastTransitionTime"),  # type: ignore[union-attr]
        observed_generation=generation,
    ).dump()


def merge_conditions(previous: Sequence[Mapping[str, Any]], *updates: dict[str, Any]) -> list[dict[str, Any]]:
    by_type = {c["type"]: dict(c) for c in previous if "type" in c}
    for update in updates:
        by_type[update["type"]] = update
    return sorted(by_type.values(), key=lambda c: str(c["type"]))


HELD_UP = frozenset(
    {
        "Unschedulable",
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "StartError",
    }
)
"""Reasons a run is held up and will not get going by itself: each is a Warning Event when it starts holding."""
_ON_THE_WAY = frozenset({"ContainerCreating", "PodInitializing"})
"""Waiting reasons that are only the way a container starts: nothing to report."""
_ROLES = {ENGINE_CONTAINER: "the engine", JOB_CONTAINER: "the job"}


def active_run(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """What `status.activeRun` should say about a Job's pod that has not finished: Running, or Pending, and what
    holds the run now, from the pod's current state (not the first reason it ever had):
    - not scheduled, with the scheduler's words (Unschedulable: "0/3 nodes are available: 3 Insufficient …");
    - a container that cannot start or keeps failing, the engine sidecar or the job (CrashLoopBackOff,
      ImagePullBackOff, CreateContainerConfigError …), with its last exit code and termination message;
    - the engine started but not ready yet (EngineNotReady: loading its models, or failing its readiness probe)."""
    metadata, status = pod.get("metadata", {}), pod.get("status", {})
    phase = status.get("phase")
    job = (metadata.get("labels") or {}).get("batch.kubernetes.io/job-name")
    if not job or phase not in ("Pending", "Running") or metadata.get("deletionTimestamp"):
        return None
    waiting = _unscheduled(status) if phase == "Pending" else {}
    if not waiting:
        containers = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        waiting = next((found for c in containers if (found := _held(c))), {}) or _engine_not_ready(status)
    return ActiveRun(job=job, pod=metadata.get("name"), phase=phase, **waiting).dump()


def replacing(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An activeRun entry for a JSON merge patch of the status: every field the entry leaves out is null, so what
    an earlier entry said (a reason, a queue, a message) does not linger beside the new one."""
    fields = {field.alias or name for name, field in ActiveRun.model_fields.items()}
    return {key: entry.get(key) for key in sorted(fields)}


def _unscheduled(status: Mapping[str, Any]) -> dict[str, Any]:
    for item in status.get("conditions") or []:
        if item.get("type") == "PodScheduled" and item.get("status") == "False":
            return {
                "reason": item.get("reason") or "Unschedulable",
                "message": str(item.get("message") or "")[:MESSAGE_LIMIT],
                "since": item.get("lastTransitionTime"),
            }
    return {}


def _held(container: Mapping[str, Any]) -> dict[str, Any]:
    """A container waiting for a reason other than starting up: the reason, and what its last run ended with."""
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason")
    if not reason or reason in _ON_THE_WAY:
        return {}
    name = str(container.get("name") or "")
    role = _ROLES.get(name, f"container {name}")
    words = [f"{role} ({name}) is waiting: {reason}"]
    if waiting.get("message"):
        words.append(str(waiting["message"]))
    last = (container.get("lastState") or {}).get("terminated") or {}
    if last:
        ended = f"its last run ended with exit code {last.get('exitCode')}"
        if last.get("reason"):
            ended += f" ({last['reason']})"
        if last.get("message"):
            ended += f": {' '.join(str(last['message']).split())}"
        words.append(ended)
    restarts = container.get("restartCount") or 0
    if restarts:
        words.append(f"restarted {restarts} times")
    return {
        "reason": str(reason),
        "message": "; ".join(words)[:MESSAGE_LIMIT],
        "since": last.get("finishedAt"),
    }


def _engine_not_ready(status: Mapping[str, Any]) -> dict[str, Any]:
    for container in status.get("initContainerStatuses") or []:
        state = container.get("state") or {}
        if container.get("name") == ENGINE_CONTAINER and "running" in state and container.get("ready") is False:
            return {
                "reason": "EngineNotReady",
                "message": "the engine (voicevox) is running but not ready yet: loading its models, or failing its "
                "readiness probe; the job waits for it",
                "since": state["running"].get("startedAt"),
            }
    return {}


def run_status(
    status: Mapping[str, Any], result: Outcome, generation: int | None, cost: RunCost | None = None
) -> dict[str, Any]:
    """The status patch for a finished run: lastRun, recentRuns (newest first, bounded), times, conditions; the
    run is no longer the active one."""
    record = result.record(cost)
    recent = [r for r in status.get("recentRuns") or [] if r.get("job") != result.job]
    patch: dict[str, Any] = {
        "lastRun": record,
        "recentRuns": [record, *recent][:RECENT_RUNS],
        "conditions": merge_conditions(
            status.get("conditions") or [],
            condition(
                "LastRunSucceeded",
                result.phase == "Succeeded",
                result.reason,
                result.message,
                generation=generation,
                previous=status.get("conditions") or [],
            ),
        ),
    }
    if result.phase == "Succeeded":
        patch["lastSuccessfulTime"] = result.finished_at
    if (status.get("activeRun") or {}).get("job") == result.job:
        patch["activeRun"] = None  # a merge patch removes it
    return patch


QUEUE_HELD_UP = frozenset({"Inadmissible"})
"""Queued reasons that will not pass by themselves (no such LocalQueue, a stopped ClusterQueue): Warning Events."""


def _true(conditions: Mapping[str, Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    found = conditions.get(kind)
    return found if found is not None and found.get("status") == "True" else None


def admitted(workload: Mapping[str, Any]) -> bool:
    """Whether Kueue has admitted the Workload (its Job is unsuspended and its pod follows)."""
    conditions = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions") or []}
    return _true(conditions, "Admitted") is not None


def queued_run(workload: Mapping[str, Any], job: str, cluster_queue: str | None = None) -> dict[str, Any] | None:
    """What `status.activeRun` should say about a run whose Kueue Workload is not admitted: phase Queued, and why:
    - Queued: waiting for quota, with Kueue's words ("insufficient unused quota for nvidia.com/gpu ...");
    - Preempted (or Evicted): a higher-priority Workload took its quota, or its queue stopped; it waits to be
      admitted again and resumes from its checkpoint;
    - Inadmissible: Kueue cannot admit it as things stand (no such LocalQueue, a stopped ClusterQueue);
    - QuotaReserved: quota reserved, waiting for the ClusterQueue's admission checks.
    None once the Workload is admitted or finished: the pod says what follows."""
    metadata, spec, status = workload.get("metadata") or {}, workload.get("spec") or {}, workload.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if _true(conditions, "Admitted") or _true(conditions, "Finished"):
        return None
    queue = spec.get("queueName")
    cluster_queue = (status.get("admission") or {}).get("clusterQueue") or cluster_queue
    reserved = conditions.get("QuotaReserved") or {}
    evicted = _true(conditions, "Evicted")
    if evicted is not None:
        reason = "Preempted" if evicted.get("reason") == "Preempted" else "Evicted"
        words, since = evicted.get("message") or f"evicted ({evicted.get('reason')})", evicted.get("lastTransitionTime")
    elif reserved.get("status") == "True":
        reason, words, since = (
            "QuotaReserved",
            "quota reserved; waiting for admission checks",
            reserved.get("lastTransitionTime"),
        )
    elif reserved.get("reason") == "Inadmissible":
        reason, words, since = "Inadmissible", reserved.get("message") or "", reserved.get("lastTransitionTime")
    else:
        reason, words = "Queued", reserved.get("message") or "not considered by Kueue yet"
        since = metadata.get("creationTimestamp")
    where = f"waiting in Kueue LocalQueue {queue}" + (f" (ClusterQueue {cluster_queue})" if cluster_queue else "")
    return ActiveRun(
        job=job,
        phase="Queued",
        reason=reason,
        message=f"{where}: {' '.join(str(words).split())}"[:MESSAGE_LIMIT],
        since=since,
        queue=queue,
        cluster_queue=cluster_queue,
    ).dump()


@dataclass(frozen=True)
class Waiting:
    """A Workload waiting in a ClusterQueue for quota, with what Kueue orders the queue by (BestEffortFIFO and
    StrictFIFO alike): higher priority first, then the older queue-order time."""

    cluster_queue: str
    priority: int
    since: float
    uid: str

    @property
    def order(self) -> tuple[int, float, str]:
        return -self.priority, self.since, self.uid


# Kueue puts a Workload evicted for not getting its pods ready in time back at the queue's end (its requeuing
# timestamp is the eviction); a preempted one keeps its place (its creation time).
_REQUEUED_AT_THE_END = frozenset({"PodsReadyTimeout"})


def waiting(workload: Mapping[str, Any], cluster_queue: str | None) -> Waiting | None:
    """The Workload's place in its ClusterQueue's order while it waits for quota; None when it does not wait for
    quota (admitted, finished, quota reserved, or its ClusterQueue unknown)."""
    metadata, spec, status = workload.get("metadata") or {}, workload.get("spec") or {}, workload.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if not cluster_queue or any(_true(conditions, kind) for kind in ("Admitted", "Finished", "QuotaReserved")):
        return None
    evicted = _true(conditions, "Evicted")
    stamp = metadata.get("creationTimestamp")
    if evicted is not None and evicted.get("reason") in _REQUEUED_AT_THE_END:
        stamp = evicted.get("lastTransitionTime") or stamp
    since = unix_time(stamp)
    priority = spec.get("priority")
    return Waiting(
        cluster_queue=cluster_queue,
        priority=priority if isinstance(priority, int) else 0,
        since=since if since is not None else float("inf"),
        uid=str(metadata.get("uid") or ""),
    )


def ahead(one: Waiting, queue: Iterable[Waiting]) -> int:
    """How many of the waiting Workloads Kueue takes before `one` from the same ClusterQueue."""
    return sum(1 for other in queue if other.cluster_queue == one.cluster_queue and other.order < one.order)
