"""The kopf handlers. They stay thin: read the object, call the pure builders (manifests.py, status.py), write.

- A NewsBroadcast (create/update/resume) → a CronJob it owns, applied server-side so a spec change patches the
  same object in place; no schedule → one Job, once. An invalid spec → Ready=False/InvalidSpec, a Warning Event,
  and the existing CronJob left untouched.
- The annotation `anchor.news/run-now: <token>` → one Job per token, as `kubectl create job --from=cronjob/...`.
  The Job's name derives from the token, so a restart can never create a second one.
- Jobs the controller owns → a RunStarted Event when they start, the run's result on the broadcast's status and a
  RunSucceeded/RunFailed Event when they finish. The status is written on a condition of the broadcast's
  resourceVersion and the Job annotated after it, so a run is recorded once even when a Job event and the sweep
  race or the controller dies in between; a periodic sweep retries what an API error left unreported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import kopf
import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from api.load import SpecError, parse_broadcast
from api.netguard import AddressPolicy
from api.status import JobAt, RunCost, RunNow
from api.v1alpha1 import GROUP, VERSION, NewsBroadcast
from controller import manifests, metrics
from controller.notify import Attempted, Delivery, Notifier, WebhookError, check_url, slack_message
from controller.remembered import Remembered
from controller.settings import Scope, Settings
from controller.status import (
    HELD_UP,
    Outcome,
    active_run,
    condition,
    finished,
    merge_conditions,
    now_rfc3339,
    outcome,
    replacing,
    run_status,
    seconds_between,
)

PLURAL = "newsbroadcasts"
RUN_NOW = "anchor.news/run-now"
REPORTED = "anchor.news/reported"
RETRY = "Retry"
FOREIGN = "Foreign"  # labelled as ours, not controlled by the broadcast: never reported
SETTLED = frozenset({"Finished", FOREIGN})  # report states that nothing changes any more
BROADCAST_LABEL = "anchor.news/broadcast"
MANAGED = {"app.kubernetes.io/managed-by": "anchor-controller"}
MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
FIELD_MANAGER = "anchor-controller"

log = logging.getLogger("anchor.controller")
_CLIENT: list[Any] = []  # one ApiClient: its connection pool is reused by every handler (threads share it safely)


def _client() -> Any:
    if not _CLIENT:
        configuration = kubernetes.client.Configuration.get_default_copy()
        # A pooled connection for every handler thread (the client's default is 5 per CPU), so none is opened and
        # thrown away per call when the handlers outnumber them.
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 32)
        _CLIENT.append(kubernetes.client.ApiClient(configuration))
    return _CLIENT[0]


def _api(kind: Any) -> Any:
    return kind(_client())


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "settings", None) is None:  # `anchor controller` checked them already
        memo.settings = Settings.from_env(os.environ)
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    # kopf's bookkeeping in the status (one write per reconcile), not in kopf.zalando.org annotations.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.controller.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.controller.lastHandledSpec")
    # Our own Events (RunStarted, RunSucceeded, InvalidSpec, ...) are posted explicitly; kopf's log lines
    # ("Handler 'reconcile' succeeded", two API writes per reconcile) stay in the log and are not posted as Events.
    settings.posting.level = logging.INFO
    settings.posting.loggers = False
    settings.watching.server_timeout = 300
    watch_only_ours(settings)
    own: Settings = memo.settings
    settings.execution.max_workers = own.workers
    memo.notifier = Notifier(
        AddressPolicy.of(False, own.webhook_allowed_networks),
        attempts=own.webhook_attempts,
        backoff=own.webhook_backoff_seconds,
        on_done=_delivered,
    )


def watch_only_ours(settings: kopf.OperatorSettings) -> None:
    """The handlers' `labels=` filters run in the controller; the label selector makes the API server send only the
    Jobs and pods we manage, so the controller's memory does not grow with the cluster's other workloads."""
    settings.watching.label_selectors["batch", "v1", "jobs"] = MANAGED_SELECTOR
    settings.watching.label_selectors["", "v1", "pods"] = MANAGED_SELECTOR


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    sweeper: asyncio.Task[None] | None = getattr(memo, "sweeper", None)
    if sweeper is not None:
        sweeper.cancel()
    notifier: Notifier | None = getattr(memo, "notifier", None)
    if notifier is not None:
        notifier.close()


# -- NewsBroadcast -----------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(
    body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    started = time.perf_counter()
    try:
        _reconcile(body, meta, status, patch, memo)
    except Exception:  # retried by kopf; what the API server refuses is reported in _reconcile instead
        metrics.RECONCILE_ERRORS.labels("ApiError").inc()
        raise
    finally:
        metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)


def _reconcile(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo) -> None:
    generation = meta.get("generation")
    conditions = list(status.get("conditions") or [])
    try:
        broadcast = parse_broadcast(_plain(body), f"NewsBroadcast {meta.get('namespace')}/{meta.get('name')}")
    except SpecError as exc:
        message = str(exc).split(":\n", 1)[-1].strip()
        _set_ready(patch, conditions, generation, "InvalidSpec", message)
        _event(body, "Warning", "InvalidSpec", message)
        metrics.RECONCILE_ERRORS.labels("InvalidSpec").inc()
        return  # the CronJob, if any, is left as it was

    settings: Settings = memo.settings
    batch = _api(kubernetes.client.BatchV1Api)
    try:
        message = _converge(batch, broadcast, settings, body, status, patch)
    except kopf.PermanentError as exc:  # the API server refused what we built: say so where the user looks
        _set_ready(patch, conditions, generation, "ApplyFailed", str(exc))
        _event(body, "Warning", "ApplyFailed", str(exc))
        metrics.RECONCILE_ERRORS.labels("ApplyFailed").inc()
        return
    _set_ready(patch, conditions, generation, "Reconciled", message)


def _set_ready(patch: kopf.Patch, conditions: list[Any], generation: int | None, reason: str, message: str) -> None:
    """The Ready condition (True only for Reconciled) and observedGeneration, in kopf's status patch."""
    ready = condition("Ready", reason == "Reconciled", reason, message, generation=generation, previous=conditions)
    patch.status["conditions"] = merge_conditions(conditions, ready)
    patch.status["observedGeneration"] = generation


def _converge(
    batch: Any, broadcast: NewsBroadcast, settings: Settings, body: kopf.Body, status: kopf.Status, patch: kopf.Patch
) -> str:
    """Make the cluster match the spec; the Ready message. A schedule → the CronJob, applied. No schedule → the
    CronJob, if one was made before, retired, and one Job, once: `status.oneOff` remembers it, so neither a
    restart nor a metadata change runs it again after the Job's TTL has removed it."""
    template = manifests.resource_claim_template(broadcast, settings)
    if template is not None:  # dra mode: what each run's pod claims its GPUs from, before any run can need it
        kopf.adopt(template, owner=body)
        _apply_claim_template(_api(kubernetes.client.ResourceV1Api), template)
    if broadcast.spec.schedule:
        cronjob = manifests.cronjob(broadcast, settings)
        kopf.adopt(cronjob, owner=body)
        _apply_cronjob(batch, cronjob)
        return f"CronJob {cronjob['metadata']['name']} scheduled {broadcast.spec.schedule} ({broadcast.spec.time_zone})"
    _retire_cronjob(batch, broadcast, body)
    job = manifests.one_off_job(broadcast, settings)
    name = job["metadata"]["name"]
    if (status.get("oneOff") or {}).get("job") == name:
        return f"one-off Job {name} ran already; annotate {RUN_NOW} to run again"
    kopf.adopt(job, owner=body)
    created = _create_job(batch, job)
    patch.status["oneOff"] = JobAt(job=name, at=now_rfc3339()).dump()
    return f"one-off Job {name}" + (" created" if created else " exists")


def _retire_cronjob(batch: Any, broadcast: NewsBroadcast, owner: kopf.Body) -> None:
    """The schedule was removed: delete the CronJob we made for it. Its Jobs are handed to the broadcast first,
    so a run in progress finishes and is reported, and the garbage collector still takes them with the broadcast."""
    namespace, name = broadcast.metadata.namespace, broadcast.name
    uid = owner.get("metadata", {}).get("uid")
    try:
        cronjob = batch.read_namespaced_cron_job(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise _api_error(exc, f"read CronJob {namespace}/{name}") from None
    if not any(ref.controller and ref.uid == uid for ref in cronjob.metadata.owner_references or []):
        return  # not ours
    jobs = batch.list_namespaced_job(namespace, label_selector=f"{BROADCAST_LABEL}={name}").items
    for job in jobs:
        if any(ref.controller and ref.uid == cronjob.metadata.uid for ref in job.metadata.owner_references or []):
            adopted: dict[str, Any] = {"metadata": {}}
            kopf.adopt(adopted, owner=owner)
            references = {"ownerReferences": adopted["metadata"]["ownerReferences"]}
            try:  # a JSON merge patch replaces the list (a strategic merge would add a second controller)
                batch.patch_namespaced_job(
                    job.metadata.name,
                    namespace,
                    {"metadata": references},
                    _content_type="application/merge-patch+json",
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise _api_error(exc, f"hand Job {namespace}/{job.metadata.name} to the broadcast") from None
    try:
        options = kubernetes.client.V1DeleteOptions(
            propagation_policy="Background", preconditions=kubernetes.client.V1Preconditions(uid=cronjob.metadata.uid)
        )
        batch.delete_namespaced_cron_job(name, namespace, body=options)
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise _api_error(exc, f"delete CronJob {namespace}/{name}") from None
    _event(owner, "Normal", "ScheduleRemoved", f"CronJob {name} deleted: spec.schedule was removed")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def count(type: str | None, meta: kopf.Meta, body: kopf.Body, **_: Any) -> None:
    """The broadcasts-managed gauge and each broadcast's clock: its last success, the run it waits on, its last run's
    result (in the event loop: no thread hop, no API call; a schedule that names no time only leaves its gauge out)."""
    observed = metrics.Observed.of(body)
    metrics.seen(meta.get("namespace", ""), meta.get("name", ""), deleted=type == "DELETED", observed=observed)


@kopf.on.event(GROUP, VERSION, PLURAL, annotations={RUN_NOW: kopf.PRESENT})
def run_now(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """`anchor.news/run-now: <token>` → one Job per token. Annotations are not part of what kopf diffs for
    updates, so this watches the events of annotated broadcasts; the Job's name derives from the token, so
    repeats are harmless."""
    metadata = body.get("metadata", {})
    token = (metadata.get("annotations") or {}).get(RUN_NOW)
    if type == "DELETED" or not token or token == (body.get("status", {}).get("runNow") or {}).get("token"):
        return
    try:
        broadcast = parse_broadcast(_plain(body))
    except SpecError:
        return  # reconcile reports the invalid spec
    name = _run_now(_api(kubernetes.client.BatchV1Api), broadcast, memo.settings, token, body)
    _api(kubernetes.client.CustomObjectsApi).patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        body["metadata"]["namespace"],
        PLURAL,
        broadcast.name,
        {"status": {"runNow": RunNow(token=token, job=name, at=now_rfc3339()).dump()}},
    )


def _plain(body: kopf.Body) -> dict[str, Any]:
    document = {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
    return dict(document)


def _apply_cronjob(batch: Any, cronjob: dict[str, Any]) -> None:
    """Server-side apply: creates the CronJob or patches it in place (same uid); fields we dropped are removed."""
    namespace, name = cronjob["metadata"]["namespace"], cronjob["metadata"]["name"]
    try:
        batch.patch_namespaced_cron_job(
            name,
            namespace,
            cronjob,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
    except ApiException as exc:
        raise _api_error(exc, f"apply CronJob {namespace}/{name}") from None


def _apply_claim_template(resource: Any, template: dict[str, Any]) -> None:
    """Server-side apply of the broadcast's ResourceClaimTemplate (dra mode). Its spec cannot change in place (the API
    server refuses): a changed GPU count or DeviceClass replaces it, which only later runs' pods see."""
    namespace, name = template["metadata"]["namespace"], template["metadata"]["name"]
    try:
        resource.patch_namespaced_resource_claim_template(
            name, namespace, template, field_manager=FIELD_MANAGER, force=True,
            _content_type="application/apply-patch+yaml",
        )  # fmt: skip
    except ApiException as exc:
        if exc.status != 422:
            raise _api_error(exc, f"apply ResourceClaimTemplate {namespace}/{name}") from None
        try:  # immutable: replace it
            resource.delete_namespaced_resource_claim_template(name, namespace)
            resource.create_namespaced_resource_claim_template(namespace, template)
        except ApiException as again:
            raise _api_error(again, f"replace ResourceClaimTemplate {namespace}/{name}") from None


def _create_job(batch: Any, job: dict[str, Any]) -> bool:
    """Create a Job with a deterministic name; False when it exists already (a restart, a repeated event)."""
    namespace = job["metadata"]["namespace"]
    try:
        batch.create_namespaced_job(namespace, job)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise _api_error(exc, f"create Job {namespace}/{job['metadata']['name']}") from None
    return True


def _run_now(batch: Any, broadcast: NewsBroadcast, settings: Settings, token: str, owner: kopf.Body) -> str:
    if broadcast.spec.schedule:
        cronjob = manifests.cronjob(broadcast, settings)
        kopf.adopt(cronjob, owner=owner)
        job = manifests.job_from_cronjob(cronjob, token)
    else:
        job = manifests.job_from_cronjob(
            {
                "metadata": {"name": broadcast.name},
                "spec": {"jobTemplate": manifests.job_template(broadcast, settings)},
            },
            token,
        )
    kopf.adopt(job, owner=owner)
    if _create_job(batch, job):
        _event(owner, "Normal", "RunRequested", f"run-now token {token!r}: Job {job['metadata']['name']}")
    name: str = job["metadata"]["name"]
    return name


def _api_error(exc: ApiException, doing: str) -> Exception:
    if exc.status in (400, 403, 404, 422):
        return kopf.PermanentError(f"cannot {doing}: {exc.status} {exc.reason}: {_api_message(exc)}")
    return kopf.TemporaryError(f"cannot {doing} yet: {exc.status} {exc.reason}", delay=10)


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))[:500]
    except ValueError:
        return str(exc.body or "")[:500]


# -- Jobs --------------------------------------------------------------------------------------------------


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
def job_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED" or (body.get("metadata", {}).get("annotations") or {}).get(REPORTED) in (RETRY, FOREIGN):
        return  # a report that failed is retried by the sweep, with a period, not at once on its own event
    try:
        report_job(dict(body), memo.notifier, memo.settings)
    except ApiException as exc:  # the sweep below retries what could not be reported now
        log.warning("could not report Job %s yet: %s %s", body.get("metadata", {}).get("name"), exc.status, exc.reason)


@kopf.on.event("", "v1", "pods", labels=MANAGED)
def pod_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        return
    try:
        report_pod(dict(body))
    except ApiException as exc:
        log.warning("could not report pod %s yet: %s %s", body.get("metadata", {}).get("name"), exc.status, exc.reason)


def report_pod(pod: Mapping[str, Any], attempts: int = 3) -> None:
    """`status.activeRun` for a run whose pod is Pending or Running, saying what holds it now; a Warning Event when
    it is held up (cannot be scheduled, a container crash-looping or its image not pulled), once per pod and
    reason. A run that was Queued in Kueue has left the queue: Admitted, announced once (the write is conditional
    on the broadcast's version, so of this and the Workload's handler, one announces it)."""
    entry = active_run(pod)
    metadata = pod["metadata"]
    broadcast_name = (metadata.get("labels") or {}).get(BROADCAST_LABEL)
    if entry is None or not broadcast_name:
        return
    custom = _api(kubernetes.client.CustomObjectsApi)
    for attempt in range(1, attempts + 1):
        try:
            broadcast: Any = custom.get_namespaced_custom_object(
                GROUP, VERSION, metadata["namespace"], PLURAL, broadcast_name
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        status = broadcast.get("status") or {}
        if (status.get("lastRun") or {}).get("job") == entry["job"]:
            return  # the run has finished and was reported; this is an old event
        before = status.get("activeRun") or {}
        keys = ("job", "pod", "phase", "reason")
        if {k: before.get(k) for k in keys} == {k: entry.get(k) for k in keys}:
            return
        queued = before.get("phase") == "Queued" and before.get("job") == entry["job"]
        body: dict[str, Any] = {"status": {"activeRun": replacing(entry)}}
        if queued:
            body["metadata"] = {"resourceVersion": broadcast["metadata"].get("resourceVersion")}
        try:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, metadata["namespace"], PLURAL, broadcast_name, body
            )
        except ApiException as exc:
            if exc.status == 409 and queued and attempt < attempts:
                continue  # the Workload's handler wrote meanwhile: read again
            raise
        if queued:
            left_queue(broadcast, before, now_rfc3339(), before.get("clusterQueue"))
        if entry.get("reason") in HELD_UP:  # a run held up, not only on its way: once each time the reason changes
            what = "is not scheduled" if entry["reason"] == "Unschedulable" else "is held up"
            message = f"Job {entry['job']}: pod {entry['pod']} {what}: {entry.get('message')}"
            _event(broadcast, "Warning", str(entry["reason"]), message)
        return


def left_queue(broadcast: Any, before: Mapping[str, Any], at: str, cluster_queue: str | None) -> str:
    """A run that waited Queued in Kueue has been let go: the Admitted Event and its time in the queue (the
    metrics); returns the words said."""
    words = f"admitted by Kueue (ClusterQueue {cluster_queue})" if cluster_queue else "admitted by Kueue"
    waited = seconds_between(before.get("since"), at)
    if waited is not None:
        words += f" after waiting {waited:.0f} s"
        metrics.QUEUE_WAIT.observe(waited)
    _event(broadcast, "Normal", "Admitted", f"Job {before.get('job')}: {words}")
    return words


@kopf.on.startup()
async def start_sweeper(memo: kopf.Memo, **_: Any) -> None:
    """Every ANCHOR_SWEEP_SECONDS (60), report the finished Jobs that an API error left unreported (a restart
    needs no sweep: the Jobs' watch lists them all). One task for the operator, not a kopf timer per broadcast:
    kopf gives every object with a timer a finalizer, so a broadcast could not be deleted while the controller is
    away."""
    memo.sweeper = asyncio.create_task(
        every(memo.settings.sweep_seconds, lambda: sweep(memo), "the sweep for unreported Jobs")
    )


async def every(period: float, work: Callable[[], object], what: str) -> None:
    """`work` in a thread every `period` seconds for as long as the operator runs; a failure is logged, and the
    next period tries again."""
    while True:
        await asyncio.sleep(period)  # a period, not a wait for another thread
        try:
            await asyncio.to_thread(work)
        except Exception:
            log.exception("%s failed; it runs again in %s s", what, period)


def sweep(memo: kopf.Memo) -> None:
    scope: Scope = memo.scope
    acts = acting(scope)
    batch = _api(kubernetes.client.BatchV1Api)
    if not scope.namespaces:
        if acts(None):
            _report_unreported(_items(batch.list_job_for_all_namespaces, label_selector=MANAGED_SELECTOR), memo)
        return
    for namespace in scope.namespaces:
        if acts(namespace):
            _report_unreported(_items(batch.list_namespaced_job, namespace, label_selector=MANAGED_SELECTOR), memo)


def acting(scope: Scope) -> Callable[[str | None], bool]:
    """Whether this replica acts now in a namespace (None: cluster-wide), as peering decides: only the
    highest-priority live replica does; a standalone one always does. Each peering object is read once, when
    first asked about."""
    if scope.peering is None:
        return lambda _namespace: True
    known: dict[str | None, bool] = {}

    def acts(namespace: str | None) -> bool:
        where = namespace if scope.namespaces else None
        if where not in known:
            inside = where in scope.namespaces if scope.namespaces else True
            known[where] = inside and scope.acts(_peers(where, scope))
        return known[where]

    return acts


def _peers(namespace: str | None, scope: Scope) -> Mapping[str, Any]:
    """The peering object's status (peer id → priority, lastseen, lifetime); empty when standalone."""
    if scope.peering is None:
        return {}
    custom = _api(kubernetes.client.CustomObjectsApi)
    try:
        if namespace is None:
            found = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", scope.peering)
        else:
            found = custom.get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", scope.peering)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    peers: Mapping[str, Any] = found.get("status") or {}
    return peers


def _report_unreported(jobs: list[dict[str, Any]], memo: kopf.Memo) -> None:
    for document in jobs:
        if (document["metadata"].get("annotations") or {}).get(REPORTED) not in SETTLED and finished(document):
            try:
                report_job(document, memo.notifier, memo.settings)
            except ApiException as exc:
                log.warning("could not report Job %s yet: %s %s", document["metadata"]["name"], exc.status, exc.reason)


def report_job(job: Mapping[str, Any], notifier: Notifier | None = None, settings: Settings | None = None) -> None:
    """Events and status for one of our Jobs; idempotent through the Job's `anchor.news/reported` annotation."""
    metadata = job["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    broadcast_name = (metadata.get("labels") or {}).get(BROADCAST_LABEL)
    reported = (metadata.get("annotations") or {}).get(REPORTED)
    if not broadcast_name or reported in SETTLED or (reported is not None and not finished(job)):
        return  # settled, or a running Job whose start was announced: nothing to do, no API call
    custom = _api(kubernetes.client.CustomObjectsApi)
    try:
        broadcast: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, broadcast_name)
    except ApiException as exc:
        if exc.status == 404:
            return  # the broadcast is gone; the garbage collector takes its Jobs
        raise
    batch = _api(kubernetes.client.BatchV1Api)
    if not _controlled_by(batch, job, broadcast):
        log.warning("Job %s/%s carries the labels of broadcast %s but is not its run; ignored", namespace, name,
                    broadcast_name)  # fmt: skip
        _mark(batch, namespace, name, FOREIGN, None)
        return
    version = metadata.get("resourceVersion")
    if not finished(job):
        if (job.get("spec") or {}).get("suspend"):
            return  # waiting in a Kueue queue (controller/queueing.py says so): it starts when Kueue admits it
        if _mark(batch, namespace, name, "Started", version):
            _event(broadcast, "Normal", "RunStarted", f"Job {name} started")
        return
    core = _api(kubernetes.client.CoreV1Api)
    documents = _items(core.list_namespaced_pod, namespace, label_selector=f"batch.kubernetes.io/job-name={name}")
    result = outcome(job, documents)
    if result is None:
        return
    cost = result.cost(settings.gpu_prices, settings.cost_currency) if settings else None
    try:
        recorded = _record(custom, broadcast, job, result, cost)
    except ApiException:
        _mark(batch, namespace, name, RETRY, None)  # the sweep tries again
        raise
    _mark(batch, namespace, name, "Finished", None)
    if recorded:
        _announce(broadcast, name, result)
        _count(namespace, broadcast_name, result, cost)
        if notifier is not None:
            _notify(notifier, broadcast, result)


def _record(
    custom: Any, broadcast: Any, job: Mapping[str, Any], result: Outcome, cost: RunCost | None, attempts: int = 3
) -> bool:
    """Write the finished run on the broadcast's status, exactly once: the patch is conditional on the broadcast's
    resourceVersion, so of two reporters (a Job event and the sweep) one writes and the other, on its conflict,
    reads the status again and finds the run there. False when the run was recorded already (a restart after the
    status was written and before the Job was marked: the run's Events are not posted twice)."""
    attempt = 1
    while not _has_run(broadcast.get("status") or {}, result):
        try:
            _report_finished(custom, broadcast, job, result, cost)
        except ApiException as exc:
            if exc.status != 409 or attempt == attempts:
                raise
            metadata = broadcast["metadata"]
            broadcast = custom.get_namespaced_custom_object(
                GROUP, VERSION, metadata["namespace"], PLURAL, metadata["name"]
            )
            attempt += 1
        else:
            return True
    return False


def _has_run(status: Mapping[str, Any], result: Outcome) -> bool:
    runs = [status.get("lastRun") or {}, *(status.get("recentRuns") or [])]
    # The start time tells a re-used run-now token's new Job from the old Job of the same name.
    key = (result.job, result.phase, _instant(result.started_at))
    return any((run.get("job"), run.get("phase"), _instant(run.get("startedAt"))) == key for run in runs)


def _instant(stamp: str | None) -> float | str | None:
    """A timestamp as a point in time, so `...Z` and `...+00:00` spellings of one instant compare equal."""
    try:
        return _seconds(stamp) if stamp else None
    except ValueError:
        return stamp


def _controlled_by(batch: Any, job: Mapping[str, Any], broadcast: Any) -> bool:
    """Whether the Job is the broadcast's run: controlled by the broadcast (run-now, one-off, a retired CronJob's
    Job) or by the CronJob the broadcast controls. Labels alone are not enough: anyone who may create Jobs in the
    namespace could otherwise write runs onto the broadcast's status and its team's webhook."""
    uid = broadcast["metadata"].get("uid")
    owner = next((r for r in job["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    if owner is None:
        return False
    if owner.get("kind") == "NewsBroadcast":
        return bool(owner.get("uid") == uid)
    if owner.get("kind") != "CronJob":
        return False
    if _CRONJOB_CONTROLLERS.get(str(owner.get("uid"))) == (True, uid):
        return True  # checked before; anything else is read again (a CronJob adopted since would be stale here)
    try:
        cronjob = batch.read_namespaced_cron_job(owner["name"], job["metadata"]["namespace"])
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    if cronjob.metadata.uid != owner.get("uid"):
        return False  # a CronJob of that name, but not the one the Job names
    controllers = [r.uid for r in cronjob.metadata.owner_references or [] if r.controller]
    if uid in controllers:
        _CRONJOB_CONTROLLERS.put(cronjob.metadata.uid, uid)
        return True
    return False


_CRONJOB_CONTROLLERS: Remembered[str] = Remembered(4096)
"""CronJob uid → the uid of the broadcast found to control it, so each report of a scheduled run does not read its
CronJob again. Only what passed is remembered: a Job that does not pass is checked against the CronJob as it is."""


def _count(namespace: str, broadcast: str, result: Outcome, cost: RunCost | None) -> None:
    metrics.run_finished(namespace, broadcast, result.phase, result.reason, result.gpu_seconds, cost)
    if result.started_at and result.finished_at:
        try:
            seconds = _seconds(result.finished_at) - _seconds(result.started_at)
        except ValueError:
            return
        metrics.RUN_DURATION.labels(result.phase).observe(max(0.0, seconds))


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _notify(notifier: Notifier, broadcast: Any, result: Outcome) -> None:
    """Queue the webhook the broadcast asks for; problems with its Secret are the user's to fix: a Warning."""
    try:
        parsed = parse_broadcast({k: broadcast.get(k) for k in ("apiVersion", "kind", "metadata", "spec")})
    except SpecError:
        return
    notify = parsed.spec.notify
    if notify is None or not (notify.on_success if result.phase == "Succeeded" else notify.on_failure):
        return
    namespace = broadcast["metadata"]["namespace"]
    ref = notify.webhook_secret
    try:
        url = check_url(_secret_value(namespace, ref.name, ref.key))
    except WebhookError as exc:
        _event(broadcast, "Warning", "WebhookFailed", f"spec.notify.webhookSecret ({ref.name}/{ref.key}): {exc}")
        metrics.WEBHOOKS.labels("failed").inc()
        return
    label = f"{namespace}/{parsed.name} Job {result.job}"
    notifier.submit(Delivery(url, slack_message(namespace, parsed.name, result), label, _reference(broadcast)))


def _secret_value(namespace: str, name: str, key: str) -> str:
    try:
        secret = _api(kubernetes.client.CoreV1Api).read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise WebhookError("the Secret does not exist") from None
        if exc.status == 403:
            raise WebhookError("the controller may not read this Secret (RBAC)") from None
        raise WebhookError(f"the Secret could not be read: {exc.status} {exc.reason}") from None
    except urllib3.exceptions.HTTPError as exc:  # the API server unreachable for a moment
        raise WebhookError(f"the Secret could not be read: {exc.__class__.__name__}") from None
    data = secret.data or {}
    if key not in data:
        raise WebhookError(f"the Secret has no key {key!r}")
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise WebhookError("the value is not UTF-8 text") from None


def _reference(broadcast: Any) -> dict[str, str]:
    metadata = broadcast["metadata"]
    return {
        "apiVersion": broadcast.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": broadcast.get("kind", "NewsBroadcast"),
        "name": metadata["name"],
        "namespace": metadata["namespace"],
        "uid": metadata.get("uid", ""),
    }


def _delivered(delivery: Delivery, attempted: Attempted) -> None:
    """From the webhook worker: count the delivery; a failed one becomes a Warning Event on the broadcast."""
    metrics.WEBHOOKS.labels("delivered" if attempted.ok else ("dropped" if attempted.attempts == 0 else "failed")).inc()
    if attempted.ok or not delivery.involved:
        return
    _post_event(delivery.involved, "Warning", "WebhookFailed", f"{delivery.label}: {attempted.detail}")


def _event(obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
    """An Event on a NewsBroadcast, posted by us (from handlers, the sweep and the webhook worker alike: kopf's
    own posting works only inside its handlers)."""
    _post_event(_reference(obj), type, reason, message)


def _post_event(involved: Mapping[str, str], type: str, reason: str, message: str) -> None:
    now = now_rfc3339()
    event: Any = {
        "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
        "involvedObject": dict(involved),
        "reason": reason,
        "message": message[:1024],
        "type": type,
        "source": {"component": "anchor-controller"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        _api(kubernetes.client.CoreV1Api).create_namespaced_event(involved["namespace"], event)
    except ApiException as exc:  # an Event lost is not a run lost: the status has it
        log.warning("could not post the %s Event on %s: %s %s", reason, involved.get("name"), exc.status, exc.reason)
    except urllib3.exceptions.HTTPError as exc:  # the API server unreachable for a moment
        log.warning("could not post the %s Event on %s: %s", reason, involved.get("name"), exc.__class__.__name__)


def _report_finished(
    custom: Any, broadcast: Any, job: Mapping[str, Any], result: Outcome, cost: RunCost | None
) -> None:
    metadata = job["metadata"]
    patch = run_status(broadcast.get("status") or {}, result, broadcast["metadata"].get("generation"), cost)
    scheduled = (metadata.get("annotations") or {}).get("batch.kubernetes.io/cronjob-scheduled-timestamp")
    patch["lastScheduleTime"] = scheduled or result.started_at
    precondition = {"resourceVersion": broadcast["metadata"].get("resourceVersion")}
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        metadata["namespace"],
        PLURAL,
        broadcast["metadata"]["name"],
        {"metadata": precondition, "status": patch},
    )


def _announce(broadcast: Any, job: str, result: Outcome) -> None:
    if result.phase == "Succeeded":
        _event(broadcast, "Normal", result.reason, f"Job {job}: {result.message}")  # RunSucceeded or NothingNew
    else:
        _event(broadcast, "Warning", result.reason, f"Job {job} failed: {result.message}")


def _items(call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """A list call's items as the API server sent them (plain camelCase JSON, timestamps as written), not as client
    models: a run's timestamps must compare equal whether a watch event or the sweep's list brought the Job."""
    response = call(*args, _preload_content=False, **kwargs)
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def _mark(batch: Any, namespace: str, name: str, value: str, resource_version: str | None) -> bool:
    """Annotate the Job's report state; with a resource version, only if the Job is still the version we looked at
    (of two events racing to announce a start, one marks it and the other gets a conflict and stays quiet)."""
    metadata: dict[str, Any] = {"annotations": {REPORTED: value}}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    try:
        batch.patch_namespaced_job(name, namespace, {"metadata": metadata})
    except ApiException as exc:
        if exc.status in (404, 409):  # gone (its TTL), or changed since: a later event decides
            return False
        raise
    return True
