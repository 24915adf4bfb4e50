"""Runs that wait in a Kueue queue (ANCHOR_KUEUE=true; imported, and so registered, only then).

Kueue suspends each run's Job (it carries kueue.x-k8s.io/queue-name) and makes a Workload for it; until Kueue admits
the Workload the Job has no pod, so the pod handlers have nothing to say. This handler watches the Workloads and,
for those of our Jobs, puts the truth on the broadcast: `status.activeRun` Queued with Kueue's words (waiting for
quota, preempted, inadmissible), an Event each time the reason changes, the queue time in the metrics, and Admitted
once Kueue lets the run go. The pod handlers take over from there. Read-only: workloads (get/list/watch) and
localqueues (get); Kueue's CRDs must be served when the controller starts.

While a run waits, `activeRun.ahead` says how many Workloads its ClusterQueue takes first, in Kueue's order
(priority, then age) among the Job Workloads this controller sees (all of them, unless it watches some namespaces
only). The places change each time a run ahead is admitted, so they are written on a period
(ANCHOR_QUEUE_POSITION_SECONDS), each waiting run's only when its place changed: the API cost is bounded by the
waiting runs per period, not by the rate of admissions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

from api.status import ActiveRun
from api.v1alpha1 import GROUP, VERSION
from controller import metrics
from controller.operator import (
    BROADCAST_LABEL,
    MANAGED,
    PLURAL,
    _api,
    _api_message,
    _event,
    acting,
    every,
    left_queue,
)
from controller.remembered import Remembered
from controller.settings import Scope
from controller.status import (
    QUEUE_HELD_UP,
    Waiting,
    admitted,
    ahead,
    now_rfc3339,
    queued_run,
    replacing,
    unix_time,
    waiting,
)

KUEUE = "kueue.x-k8s.io"
WORKLOAD_VERSION = "v1beta2"
JOB_UID = f"{KUEUE}/job-uid"
JSON_PATCH = "application/json-patch+json"
ATTEMPTS = 3
"""Tries of a status write that meets a conflict (another writer between our read and our write)."""
REMEMBERED = 4096
"""Jobs whose broadcast (or foreignness) is remembered, so a Workload event costs no API call to place."""

log = logging.getLogger("anchor.controller.queueing")


_BROADCASTS: Remembered[str | None] = Remembered(REMEMBERED)
"""Job uid → its broadcast's name, or None for a Job that is not one of our runs."""
_CLUSTER_QUEUES: Remembered[str | None] = Remembered(256)  # namespace/LocalQueue → its ClusterQueue


@dataclass(frozen=True)
class _Ours:
    """A waiting Workload that is one of our runs: where its place is written."""

    namespace: str
    broadcast: str
    job: str


class _Queues:
    """The Job Workloads waiting for quota, in every ClusterQueue, as the Workload events last showed them; and for
    those that are our runs, the place last written on their broadcast."""

    def __init__(self) -> None:
        self._waiting: dict[str, Waiting] = {}
        self._ours: dict[str, _Ours] = {}
        self._written: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, uid: str, place: Waiting | None, ours: _Ours | None) -> None:
        """The Workload's place now; None when it no longer waits for quota (admitted, finished, deleted)."""
        with self._lock:
            if place is None:
                self._waiting.pop(uid, None)
                self._ours.pop(uid, None)
                self._written.pop(uid, None)
                return
            self._waiting[uid] = place
            if ours is not None:
                self._ours[uid] = ours

    def ahead_of(self, uid: str) -> int | None:
        with self._lock:
            place = self._waiting.get(uid)
            return None if place is None else ahead(place, self._waiting.values())

    def changed(self) -> list[tuple[str, _Ours, int]]:
        """Our waiting runs whose place is not the one last written: (uid, where, place)."""
        with self._lock:
            queue = self._waiting.values()
            places = [(uid, ours, ahead(self._waiting[uid], queue)) for uid, ours in self._ours.items()]
            return [(uid, ours, n) for uid, ours, n in places if self._written.get(uid) != n]

    def written(self, uid: str, place: int) -> None:
        with self._lock:
            if uid in self._ours:
                self._written[uid] = place


_QUEUES = _Queues()


@kopf.on.startup()
def watch_only_jobs_workloads(settings: kopf.OperatorSettings, **_: Any) -> None:
    """The API server sends only the Workloads Kueue made for Jobs (those of other kinds never concern us)."""
    settings.watching.label_selectors[KUEUE, WORKLOAD_VERSION, "workloads"] = JOB_UID


@kopf.on.event(KUEUE, WORKLOAD_VERSION, "workloads", labels={JOB_UID: kopf.PRESENT})
def workload_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        _QUEUES.update(str(body.get("metadata", {}).get("uid")), None, None)
        return
    try:
        report_workload(dict(body))
    except ApiException as exc:  # the next change of the Workload brings it again
        name = body.get("metadata", {}).get("name")
        log.warning("could not report Workload %s yet: %s %s: %s", name, exc.status, exc.reason, _api_message(exc))


def report_workload(workload: Mapping[str, Any]) -> None:
    """The broadcast's status and Events for the Workload of one of its runs."""
    metadata = workload.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    owner = next(
        (
            r
            for r in metadata.get("ownerReferences") or []
            if r.get("kind") == "Job" and r.get("apiVersion") == "batch/v1"
        ),
        None,
    )
    if owner is None:
        return
    job = str(owner.get("name"))
    broadcast_name = _broadcast_of(namespace, job, str(owner.get("uid")))
    queue = (workload.get("spec") or {}).get("queueName")
    cluster_queue = _cluster_queue(namespace, queue) if queue else None
    uid = str(metadata.get("uid"))
    ours = _Ours(namespace, broadcast_name, job) if broadcast_name else None
    _QUEUES.update(uid, waiting(workload, cluster_queue), ours)  # others' Workloads count too: they may be ahead
    if broadcast_name is None:
        return
    entry = queued_run(workload, job, cluster_queue)
    if entry is not None:
        entry["ahead"] = _QUEUES.ahead_of(uid)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _report(namespace, broadcast_name, job, workload, entry)
        except ApiException as exc:
            if exc.status != 409 or attempt == ATTEMPTS:
                raise
        else:
            return


def _report(
    namespace: str, broadcast_name: str, job: str, workload: Mapping[str, Any], entry: Mapping[str, Any] | None
) -> None:
    """One try: read the broadcast, and write what changed on the condition that nobody wrote in between (of two
    events racing, one writes and posts the Event, the other gets a conflict, reads again and finds it done)."""
    custom = _api(kubernetes.client.CustomObjectsApi)
    try:
        broadcast: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, broadcast_name)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    status = broadcast.get("status") or {}
    before = status.get("activeRun") or {}
    if (status.get("lastRun") or {}).get("job") == job:
        metrics.run_queued(namespace, broadcast_name, None)
        return  # finished and reported: an old event
    if entry is None:
        metrics.run_queued(namespace, broadcast_name, None)
        if admitted(workload) and before.get("job") == job and before.get("phase") == "Queued":
            _admitted(broadcast, workload, job, before)
        return
    metrics.run_queued(namespace, broadcast_name, unix_time(entry.get("since")))
    keys = ("job", "phase", "reason", "message")
    if {k: before.get(k) for k in keys} == {k: entry.get(k) for k in keys}:
        return
    _patch_active(broadcast, entry)
    if entry.get("ahead") is not None:
        _QUEUES.written(str((workload.get("metadata") or {}).get("uid")), entry["ahead"])
    if {k: before.get(k) for k in keys[:3]} != {k: entry.get(k) for k in keys[:3]}:
        kind = "Warning" if entry["reason"] in QUEUE_HELD_UP else "Normal"
        _event(broadcast, kind, str(entry["reason"]), f"Job {job}: {entry['message']}")


def _admitted(broadcast: Any, workload: Mapping[str, Any], job: str, before: Mapping[str, Any]) -> None:
    """Kueue let the run go: Pending (its pod comes next), and the Admitted Event with how long it waited."""
    conditions = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions") or []}
    at = (conditions.get("Admitted") or {}).get("lastTransitionTime") or now_rfc3339()
    cluster_queue = ((workload.get("status") or {}).get("admission") or {}).get("clusterQueue")
    cluster_queue = cluster_queue or before.get("clusterQueue")
    entry = ActiveRun(
        job=job,
        phase="Pending",
        reason="Admitted",
        message="admitted by Kueue; its pod comes next",
        since=at,
        queue=before.get("queue"),
        cluster_queue=cluster_queue,
    ).dump()
    _patch_active(broadcast, entry)  # conditional: if the pod's handler wrote first, a conflict, and we read again
    left_queue(broadcast, before, at, cluster_queue)


def _patch_active(broadcast: Any, entry: Mapping[str, Any]) -> None:
    """status.activeRun, if the broadcast is still the version read (a 409 Conflict otherwise)."""
    metadata = broadcast["metadata"]
    patch = {"metadata": {"resourceVersion": metadata["resourceVersion"]}, "status": {"activeRun": replacing(entry)}}
    _api(kubernetes.client.CustomObjectsApi).patch_namespaced_custom_object_status(
        GROUP, VERSION, metadata["namespace"], PLURAL, metadata["name"], patch
    )


def _broadcast_of(namespace: str, job: str, uid: str) -> str | None:
    """The broadcast whose run the Job is (our label on a Job we manage), or None; one GET per Job, remembered."""
    known, name = _BROADCASTS.get(uid)
    if known:
        return name
    try:
        found = _api(kubernetes.client.BatchV1Api).read_namespaced_job(job, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return None  # not remembered: a Job that appears later under this uid is looked at then
    labels = found.metadata.labels or {}
    ours = all(labels.get(k) == v for k, v in MANAGED.items()) and found.metadata.uid == uid
    name = labels.get(BROADCAST_LABEL) if ours else None
    _BROADCASTS.put(uid, name)
    return name


def _cluster_queue(namespace: str, queue: str) -> str | None:
    """The ClusterQueue a LocalQueue feeds (its spec.clusterQueue, which Kueue does not let change), or None when
    the LocalQueue cannot be read (absent: Kueue says so in its own words)."""
    key = f"{namespace}/{queue}"
    known, name = _CLUSTER_QUEUES.get(key)
    if known:
        return name
    try:
        local: Any = _api(kubernetes.client.CustomObjectsApi).get_namespaced_custom_object(
            KUEUE, WORKLOAD_VERSION, namespace, "localqueues", queue
        )
    except ApiException as exc:
        if exc.status not in (403, 404):
            raise
        return None
    name = (local.get("spec") or {}).get("clusterQueue")
    _CLUSTER_QUEUES.put(key, name)
    return name


@kopf.on.startup()
async def start_places(memo: kopf.Memo, **_: Any) -> None:
    """Every ANCHOR_QUEUE_POSITION_SECONDS, the waiting runs' places brought up to date (one task, as the sweep)."""
    period = memo.settings.queue_position_seconds
    memo.places = asyncio.create_task(every(period, lambda: write_places(memo.scope), "writing the queue places"))


def write_places(scope: Scope) -> None:
    """`activeRun.ahead` of each waiting run whose place changed, on the condition that the run is still the one
    Queued there (a JSON patch that tests it first: a run admitted meanwhile is left alone). A replica that peering
    keeps paused writes nothing: its view of the queues is not kept up."""
    acts = acting(scope)
    custom = _api(kubernetes.client.CustomObjectsApi)
    for uid, ours, place in _QUEUES.changed():
        if not acts(ours.namespace):
            continue
        patch = [
            {"op": "test", "path": "/status/activeRun/job", "value": ours.job},
            {"op": "test", "path": "/status/activeRun/phase", "value": "Queued"},
            {"op": "add", "path": "/status/activeRun/ahead", "value": place},
        ]
        try:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ours.namespace, PLURAL, ours.broadcast, patch, _content_type=JSON_PATCH
            )
        except ApiException as exc:
            if exc.status in (404, 422):  # the broadcast is gone, or the run no longer Queued there (a test failed)
                continue
            raise
        _QUEUES.written(uid, place)
