"""A morning queue on a GPU quota: --count NewsBroadcasts due at the same minute share --gpus GPUs through real Kueue,
and the controller (ANCHOR_KUEUE=true) says on each broadcast what its run is doing, then records it.

    python -m benchmarks.queue_scale [--count 200] [--gpus 4] [--run-seconds 2 | --full] [--nodes 2]
                                     [--gpus-per-node 4] [--lead 30] [--budget SECONDS]
                                     [--json benchmarks/results/queue_scale.json] [--log controller.log]

The kwok control plane of tests/support/kwok.py, Kueue v0.17.0 beside it (tests/support/kueue.py), --nodes kwok GPU
nodes of --gpus-per-node GPUs each and a ClusterQueue of --gpus nvidia.com/gpu (the nodes hold more: the quota is the
bound). Every broadcast has the same daily schedule, the first whole UTC minute at least --lead seconds ahead
(`timeZone: Etc/UTC`, `scheduling.queueName`), so the real CronJob controller makes all their Jobs at that minute and
Kueue holds all but --gpus of them. kwok plays the kubelet: a run's pod ends Succeeded --run-seconds after it started
running, with a RunResult as its termination message (benchmarks/kwok-queue-stages.yaml).

Watches on the broadcasts, Kueue's Workloads and the pods note, as the runs go:
- the makespan, from the schedule minute to the last run recorded on its broadcast (status.lastRun Succeeded), beside
  the model: ceil(count / gpus) waves of --run-seconds each; what is left over is the per-run overhead, split into
  the GPU's idle time between runs (a pod ending → Kueue admitting the next Workload → its pod Running) and the
  controller's lag from a pod ending to the run recorded;
- that each run is recorded exactly once (recentRuns of one) and none is lost;
- the most Workloads admitted and the most run pods Running at any moment (never more than --gpus);
- which broadcasts showed status.activeRun Queued while they waited, and the Queued Events;
- queue waits (Workload seen created → seen admitted) and the controller's own anchor_run_queue_wait_seconds;
- the controller's p99 reconcile (anchor_reconcile_duration_seconds, estimated within its bucket as Prometheus'
  histogram_quantile does) and its RSS (VmRSS sampled every 0.5 s, and the kernel's VmHWM);
- the controller's requests to the API server: it runs as a user of its own (a client certificate the cluster's CA
  signs, bound to cluster-admin), and the API server's audit log (level Metadata for that user alone) is counted by
  verb and resource, before the minute (reconciling the broadcasts) and from the minute on (the runs), beside the
  changes of the broadcasts, Jobs, pods and Workloads that its watches receive.
The figures are printed as JSON and written to --json.

Default size: 200 broadcasts on 4 GPUs, 2 s runs: 50 waves, about 6 minutes in all on 2 cores. `--full` makes the
runs 20 s (about 20 minutes). The makespan scales as ceil(count / gpus) × (run time + overhead per run): the
overhead is Kubernetes' and Kueue's hand-over of a GPU, which does not grow with the run time, so 20-minute runs
(`--run-seconds 1200`) would take 50 × 20 min, about 17 hours, plus 50 overheads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import kubernetes
import requests
import yaml

from api.v1alpha1 import GROUP, VERSION
from benchmarks.reconcile import memory_mb, spread, warnings_in
from tests.support import kueue
from tests.support.builders import a_broadcast
from tests.support.controller import running_controller
from tests.support.kwok import STAGES, Cluster, running_cluster, wait_for
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "queue_scale.json"
RUN_STAGE = Path(__file__).with_name("kwok-queue-stages.yaml")
PLURAL = "newsbroadcasts"
USER = "anchor-controller"
"""The controller's own user on the API server: its requests are the audit log's entries under this name."""
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "users": [USER]}, {"level": "None"}],
}
RSS_PERIOD = 0.5
RUN_SECONDS = 2.0
"""The default run time: 50 waves of 2 s and the overhead between them make the default run about 6 minutes."""
FULL_RUN_SECONDS = 20.0
EVENT_REASONS = ("Queued", "Admitted", "RunStarted", "RunSucceeded")


# -- the model and the figures (pure) ---------------------------------------------------------------------------


def waves(count: int, gpus: int) -> int:
    """How many runs each GPU takes in turn: the queue drains in this many run times at best."""
    return math.ceil(count / gpus)


def predicted_makespan(count: int, gpus: int, run_seconds: float, overhead_seconds: float = 0.0) -> float:
    """The model: ceil(count / gpus) × (run time + overhead per run); with no overhead, the floor no cluster beats."""
    return waves(count, gpus) * (run_seconds + overhead_seconds)


def schedule_minute(now: datetime, lead: float) -> datetime:
    """The first whole minute at least `lead` seconds after `now` (a cron schedule's finest step)."""
    earliest = now.astimezone(UTC) + timedelta(seconds=lead)
    minute = earliest.replace(second=0, microsecond=0)
    return minute if minute == earliest else minute + timedelta(minutes=1)


def daily_at(minute: datetime) -> str:
    """The cron schedule, in UTC, that is due at `minute` once a day."""
    return f"{minute.minute} {minute.hour} * * *"


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram from a /metrics text: cumulative counts by upper bound, every label set added up."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    total: float

    @classmethod
    def parse(cls, text: str, name: str) -> Histogram:
        buckets: dict[float, float] = {}
        count = total = 0.0
        for line in text.splitlines():
            found = _SAMPLE.match(line)
            if not found or not found["name"].startswith(name):
                continue
            value, suffix = float(found["value"]), found["name"][len(name) :]
            if suffix == "_bucket":
                bound = float(dict(_LABEL.findall(found["labels"] or ""))["le"])
                buckets[bound] = buckets.get(bound, 0.0) + value
            elif suffix == "_count":
                count += value
            elif suffix == "_sum":
                total += value
        return cls(tuple(sorted(buckets.items())), count, total)

    def quantile(self, q: float) -> float | None:
        """As Prometheus' histogram_quantile: the bucket holding the q-th observation, linear within it (from 0 for
        the first); the highest finite bound when it falls in +Inf; None when empty."""
        if not self.buckets or self.buckets[-1][1] == 0:
            return None
        rank = q * self.buckets[-1][1]
        lower, below = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower
                inside = cumulative - below
                return bound if inside == 0 else lower + (bound - lower) * (rank - below) / inside
            lower, below = bound, cumulative
        return lower

    def bucket(self, q: float) -> tuple[float, float] | None:
        """The bucket (lower, upper bound) holding the q-th observation: all the histogram can promise."""
        if not self.buckets or self.buckets[-1][1] == 0:
            return None
        rank, lower = q * self.buckets[-1][1], 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                return lower, bound
            lower = bound
        return None  # not reached: the last bucket holds every observation


def handovers(started: Iterable[float], ended: Iterable[float], gpus: int) -> list[float]:
    """How long a GPU stood idle between runs: the k-th run to start (past the first `gpus`) took the GPU the
    (k - gpus)-th run to end gave back, as Kueue admits no more than `gpus` at once; each gap is the time between."""
    starts, ends = sorted(started), sorted(ended)
    return [starts[k] - ends[k - gpus] for k in range(gpus, len(starts)) if k - gpus < len(ends)]


@dataclass(frozen=True)
class Request:
    """One API request of the audit log: when the server received it, and what it was."""

    at: float
    verb: str
    what: str
    code: int | None


def requests_of(events: Iterable[Mapping[str, Any]], user: str) -> list[Request]:
    """`user`'s requests in audit events, each once (an audit ID logs a watch at ResponseStarted and again at
    ResponseComplete), in the order received."""
    found: dict[str, Request] = {}
    for event in events:
        if (event.get("user") or {}).get("username") != user or event.get("stage") == "RequestReceived":
            continue
        ref = event.get("objectRef") or {}
        what = "/".join(p for p in (ref.get("resource"), ref.get("subresource")) if p) or event.get("requestURI", "?")
        received = _timestamp(event["requestReceivedTimestamp"])
        code = (event.get("responseStatus") or {}).get("code")
        found[event["auditID"]] = Request(received, event.get("verb", "?"), what, code)
    return sorted(found.values(), key=lambda r: r.at)


def tally(found: Sequence[Request], since: float, until: float) -> dict[str, Any]:
    """The requests received in [since, until): short ones by verb and resource and by response code; watches (long
    running: a handful per resource, held open) apart."""
    inside = [r for r in found if since <= r.at < until]
    short = [r for r in inside if r.verb != "watch"]
    return {
        "requests": len(short),
        "watches": len(inside) - len(short),
        "byVerb": dict(Counter(f"{r.verb} {r.what}" for r in short).most_common()),
        "byCode": {str(code): n for code, n in sorted(Counter(r.code for r in short).items(), key=str)},
    }


# -- what the watches see ---------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the watches have seen, with the time (Unix seconds) each thing was first seen. Each watch sees its
    kind's changes in the order the API server made them, so the sets below are the server's state at every step."""

    queued: set[str] = field(default_factory=set)
    places: dict[str, list[int]] = field(default_factory=dict)
    """Each broadcast's activeRun.ahead values while Queued, as they changed."""
    recorded: dict[str, float] = field(default_factory=dict)
    workloads_created: dict[str, float] = field(default_factory=dict)
    workloads_admitted: dict[str, float] = field(default_factory=dict)
    workload_job: dict[str, str] = field(default_factory=dict)
    admitted_now: set[str] = field(default_factory=set)
    max_admitted: int = 0
    running_now: set[str] = field(default_factory=set)
    max_running: int = 0
    pods_running: dict[str, float] = field(default_factory=dict)
    pods_succeeded: dict[str, float] = field(default_factory=dict)
    pod_broadcast: dict[str, str] = field(default_factory=dict)
    pod_job: dict[str, str] = field(default_factory=dict)
    jobs_complete: dict[str, float] = field(default_factory=dict)
    changes: Counter[str] = field(default_factory=Counter)
    """Events seen by kind from `counting_from` on: each is a change the controller's watch of that kind gets too."""
    counting_from: float = math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)

    def broadcast(self, kind: str, document: Mapping[str, Any], at: float) -> None:
        name, status = document["metadata"]["name"], document.get("status") or {}
        with self.lock:
            self.changes["newsbroadcasts"] += at >= self.counting_from
            active = status.get("activeRun") or {}
            if active.get("phase") == "Queued":
                self.queued.add(name)
                places = self.places.setdefault(name, [])
                if isinstance(active.get("ahead"), int) and places[-1:] != [active["ahead"]]:
                    places.append(active["ahead"])
            if (status.get("lastRun") or {}).get("phase") == "Succeeded":
                self.recorded.setdefault(name, at)

    def workload(self, kind: str, document: Mapping[str, Any], at: float) -> None:
        name, owners = document["metadata"]["name"], document["metadata"].get("ownerReferences") or []
        conditions = {c.get("type"): c.get("status") for c in (document.get("status") or {}).get("conditions") or []}
        holds = conditions.get("Admitted") == "True" and conditions.get("Finished") != "True" and kind != "DELETED"
        with self.lock:
            self.changes["workloads"] += at >= self.counting_from
            self.workload_job[name] = next((o["name"] for o in owners if o.get("kind") == "Job"), "")
            self.workloads_created.setdefault(name, at)
            if conditions.get("Admitted") == "True":
                self.workloads_admitted.setdefault(name, at)
            (self.admitted_now.add if holds else self.admitted_now.discard)(name)
            self.max_admitted = max(self.max_admitted, len(self.admitted_now))

    def pod(self, kind: str, document: Mapping[str, Any], at: float) -> None:
        metadata = document["metadata"]
        name, phase = metadata["name"], (document.get("status") or {}).get("phase")
        holds = phase == "Running" and not metadata.get("deletionTimestamp") and kind != "DELETED"
        labels = metadata.get("labels") or {}
        with self.lock:
            self.changes["pods"] += at >= self.counting_from
            (self.running_now.add if holds else self.running_now.discard)(name)
            self.max_running = max(self.max_running, len(self.running_now))
            self.pod_broadcast[name] = labels.get("anchor.news/broadcast", "")
            self.pod_job[name] = labels.get("batch.kubernetes.io/job-name", "")
            if holds:
                self.pods_running.setdefault(name, at)
            if phase == "Succeeded":
                self.pods_succeeded.setdefault(name, at)

    def job(self, kind: str, document: Mapping[str, Any], at: float) -> None:
        conditions = (document.get("status") or {}).get("conditions") or []
        with self.lock:
            self.changes["jobs"] += at >= self.counting_from
            if any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions):
                self.jobs_complete.setdefault(document["metadata"]["name"], at)

    def admissions_to_pods(self) -> list[float]:
        """For each run, from its Workload seen admitted to its pod seen Running (the Job controller makes the pod,
        the scheduler binds it, the kubelet starts it)."""
        admitted = {self.workload_job[w]: at for w, at in self.workloads_admitted.items()}
        return [at - admitted[job] for pod, at in self.pods_running.items() if (job := self.pod_job[pod]) in admitted]

    def record_lags(self) -> dict[str, list[float]]:
        """For each run: its pod seen Succeeded → its Job seen Complete (the Job controller) → its broadcast seen
        with the run recorded (the controller, which records a run once its Job is complete)."""
        lags: dict[str, list[float]] = {
            "podEndedToJobComplete": [],
            "jobCompleteToRecorded": [],
            "podEndedToRecorded": [],
        }
        for pod, ended in self.pods_succeeded.items():
            broadcast, complete = self.pod_broadcast.get(pod, ""), self.jobs_complete.get(self.pod_job.get(pod, ""))
            if broadcast in self.recorded:
                lags["podEndedToRecorded"].append(self.recorded[broadcast] - ended)
                if complete is not None:
                    lags["podEndedToJobComplete"].append(complete - ended)
                    lags["jobCompleteToRecorded"].append(self.recorded[broadcast] - complete)
        return lags


class Watching(threading.Thread):
    """Streams one kind's events in a namespace to `seen(type, object, time)` until `stop` is set; a watch that the
    server ends resumes from the last resourceVersion it saw (or, told it is too old, lists again)."""

    def __init__(self, call: Callable[..., Any], args: Sequence[Any], seen: Callable[..., None], stop: threading.Event):
        super().__init__(daemon=True)
        self.call, self.args, self.seen, self.stop = call, args, seen, stop
        self.errors: list[str] = []

    def run(self) -> None:
        version: str | None = None
        while not self.stop.is_set():
            try:
                for event in kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
                    self.call, *self.args, resource_version=version, timeout_seconds=60, deserialize=False
                ):  # plain JSON: building client models would delay the timestamps
                    at = time.time()
                    if event["type"] == "ERROR":
                        version = None
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    self.seen(event["type"], event["object"], at)
                    if self.stop.is_set():
                        return
            except Exception as exc:  # a dropped connection: list again (the ledger's sets take a replay as is)
                self.errors.append(repr(exc)[:300])
                version = None
                self.stop.wait(1)


class RssSampler(threading.Thread):
    def __init__(self, pid: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak = pid, stop, 0.0

    def run(self) -> None:
        while not self.stop.wait(RSS_PERIOD):
            self.peak = max(self.peak, memory_mb(self.pid).get("VmRSS", 0.0))


# -- the cluster's side -----------------------------------------------------------------------------------------


def stages_file(directory: Path, run_seconds: float) -> Path:
    """benchmarks/kwok-queue-stages.yaml with the run time as its delay."""
    stage = yaml.safe_load(RUN_STAGE.read_text())
    stage["spec"]["delay"] = {"durationMilliseconds": round(run_seconds * 1000)}
    path = directory / "queue-stages.yaml"
    path.write_text(yaml.safe_dump(stage, sort_keys=False))
    return path


def controller_kubeconfig(cluster: Cluster, directory: Path) -> Path:
    """A kubeconfig for the controller alone: user USER, by a client certificate that the cluster's CA signs,
    bound to cluster-admin; the API server (and its audit log) tells its requests from everyone else's."""
    key, request, certificate = directory / f"{USER}.key", directory / f"{USER}.csr", directory / f"{USER}.crt"
    for command in (
        ["openssl", "genrsa", "-out", str(key), "2048"],
        ["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={USER}", "-out", str(request)],
        ["openssl", "x509", "-req", "-in", str(request), "-CA", str(cluster.pki / "ca.crt"),
         "-CAkey", str(cluster.pki / "ca.key"), "-set_serial", str(uuid.uuid4().int), "-days", "2",
         "-out", str(certificate)],
    ):  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    config = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
    for user in config["users"]:
        user["user"] = {"client-certificate": str(certificate), "client-key": str(key)}
    path = directory / f"{USER}.kubeconfig"
    path.write_text(json.dumps(config))
    cluster.kubectl("create", "clusterrolebinding", USER, "--clusterrole=cluster-admin", f"--user={USER}")
    return path


def audit_events(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """The API server's audit log, rotated parts included."""
    for path in sorted((cluster.workdir / "clusters" / cluster.name / "logs").glob("audit*.log")):
        with path.open(errors="replace") as lines:
            for line in lines:
                if line.startswith("{"):
                    yield json.loads(line)


def broadcast(namespace: str, name: str, schedule: str, queue: str) -> dict[str, Any]:
    document = a_broadcast(name).set(schedule=schedule, timeZone="Etc/UTC", scheduling={"queueName": queue})
    return document.in_namespace(namespace).dict()


def create_broadcasts(namespace: str, names: Sequence[str], schedule: str, queue: str) -> None:
    custom = kubernetes.client.CustomObjectsApi()

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, broadcast(namespace, name, schedule, queue)
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, names))


def start_watches(namespace: str, ledger: Ledger, stop: threading.Event) -> list[Watching]:
    custom, core, batch = (
        kubernetes.client.CustomObjectsApi(),
        kubernetes.client.CoreV1Api(),
        kubernetes.client.BatchV1Api(),
    )
    watches = [
        Watching(batch.list_namespaced_job, (namespace,), ledger.job, stop),
        Watching(custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL), ledger.broadcast, stop),
        Watching(
            custom.list_namespaced_custom_object,
            (kueue.API.split("/")[0], kueue.API.split("/")[1], namespace, "workloads"),
            ledger.workload,
            stop,
        ),
        Watching(core.list_namespaced_pod, (namespace,), ledger.pod, stop),
    ]
    for watch in watches:
        watch.start()
    return watches


def wait_for_runs(ledger: Ledger, count: int, deadline: float, controller_exited: Callable[[], str | None]) -> None:
    reported = time.monotonic()
    while True:
        with ledger.lock:
            recorded, running, queued = len(ledger.recorded), len(ledger.running_now), len(ledger.queued)
        if recorded >= count or time.time() > deadline:
            return
        exited = controller_exited()
        if exited:
            raise RuntimeError(exited)
        if time.monotonic() - reported > 30:
            reported = time.monotonic()
            print(f"  {recorded}/{count} recorded, {running} running, {queued} seen Queued", file=sys.stderr)
        time.sleep(0.5)  # polling what the watch threads gathered, with a deadline


def _answers(url: str, exited: Callable[[], str | None]) -> bool:
    problem = exited()
    if problem:
        raise RuntimeError(problem)
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def events_with_reason(cluster: Cluster, namespace: str, reason: str) -> set[str]:
    """The broadcasts with at least one Event of this reason."""
    items = cluster.get("events", "-n", namespace, "--field-selector", f"reason={reason}")["items"]
    return {e["involvedObject"]["name"] for e in items if e["involvedObject"].get("kind") == "NewsBroadcast"}


# -- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Observed:
    """What one run of the benchmark saw; `times` are Unix seconds: the controller launched, the first broadcast
    created, all CronJobs there, the last run recorded (and 3 s more)."""

    minute: datetime
    times: dict[str, float]
    ledger: Ledger
    statuses: list[dict[str, Any]]
    jobs_created: list[float]
    """The Jobs' creationTimestamps (whole seconds: the API server's resolution)."""
    events: dict[str, int]
    metrics_text: str
    rss: dict[str, float]
    requests: list[Request]
    notes: dict[str, Any]


def measure(cluster: Cluster, workdir: Path, args: argparse.Namespace) -> Observed:
    for n in range(args.nodes):
        cluster.add_gpu_node(f"gpu-node-{n + 1}", gpus=args.gpus_per_node)
    kubeconfig = controller_kubeconfig(cluster, workdir)
    kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    with (
        kueue.running_kueue(cluster, workdir / "kueue") as running_kueue,
        cluster.restricted_namespace("morning") as namespace,
    ):
        kueue.gpu_quota(cluster, namespace, namespace, gpus=args.gpus)
        env = {**cluster.env, "KUBECONFIG": str(kubeconfig), "ANCHOR_KUEUE": "true", **args.controller_env}
        health, metrics = f"http://127.0.0.1:{free_port()}/healthz", f"127.0.0.1:{free_port()}"
        notes: dict[str, Any] = {"loadAverageBefore": [round(x, 2) for x in os.getloadavg()]}
        times = {"launched": time.time()}
        with running_controller(
            ["--standalone", f"--liveness={health}", f"--metrics={metrics}"], env, args.log
        ) as running:
            wait_for(lambda: _answers(health, running.exited), "the controller's liveness endpoint", timeout=60)
            stop, ledger = threading.Event(), Ledger()
            watches = start_watches(namespace, ledger, stop)
            sampler = RssSampler(running.pid, stop)
            sampler.start()
            times["created"] = time.time()
            minute = schedule_minute(datetime.now(UTC), args.lead)
            ledger.counting_from = minute.timestamp()
            create_broadcasts(namespace, [f"news-{n:04d}" for n in range(args.count)], daily_at(minute), namespace)
            times["cronjobs"] = cronjobs_ready(namespace, args.count, minute)
            before = memory_mb(running.pid)  # every broadcast reconciled, no run yet: what the runs add comes after
            print(f"{args.count} broadcasts due at {minute:%H:%M:%S} UTC; their CronJobs ready "
                  f"{times['cronjobs'] - times['created']:.1f} s after the first create, "
                  f"{minute.timestamp() - times['cronjobs']:.1f} s ahead of the minute", file=sys.stderr)  # fmt: skip
            wait_for_runs(ledger, args.count, minute.timestamp() + args.budget, running.exited)
            time.sleep(3)  # what the last run's report posts after its status (its Event, the Job's mark)
            times["finished"] = time.time()
            metrics_text = requests.get(f"http://{metrics}/metrics", timeout=10).text
            rss = {key: round(value, 1) for key, value in memory_mb(running.pid).items()}
            rss["sampledPeak"] = round(sampler.peak, 1)
            rss["beforeTheMinute"] = round(before.get("VmRSS", 0.0), 1)
            events = {r: len(events_with_reason(cluster, namespace, r)) for r in EVENT_REASONS}
            statuses = [b.get("status") or {} for b in cluster.get(PLURAL, "-n", namespace)["items"]]
            jobs = [
                _timestamp(j["metadata"]["creationTimestamp"]) for j in cluster.get("jobs", "-n", namespace)["items"]
            ]
            notes["controllerLogWarnings"] = len(warnings_in(args.log))
            stop.set()
        notes["loadAverageAfter"] = [round(x, 2) for x in os.getloadavg()]
        notes["watchErrors"] = [e for w in watches for e in w.errors]
        notes["kueueExitCode"] = running_kueue.process.poll()
    found = requests_of(audit_events(cluster), USER)  # the controller has stopped: its every request is logged
    return Observed(minute, times, ledger, statuses, jobs, events, metrics_text, rss, found, notes)


def cronjobs_ready(namespace: str, count: int, minute: datetime) -> float:
    """When all `count` CronJobs exist; a CronJob made after its minute would wait a day, so that fails here."""
    batch = kubernetes.client.BatchV1Api()
    wait_for(
        lambda: len(batch.list_namespaced_cron_job(namespace).items) >= count or None,
        f"{count} CronJobs before {minute:%H:%M} UTC (make --lead longer)",
        timeout=max(1.0, minute.timestamp() - time.time() - 2),
        interval=1,
    )
    return time.time()


def figures(seen: Observed, args: argparse.Namespace) -> dict[str, Any]:
    ledger = seen.ledger
    return {
        "measuredAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs; the control plane, Kueue, the controller and this benchmark all on it",
        "size": {
            "broadcasts": args.count,
            "gpuQuota": args.gpus,
            "nodes": f"{args.nodes} × {args.gpus_per_node} GPUs",
            "runSeconds": args.run_seconds,
            "scheduleMinute": seen.minute.isoformat(),
        },
        "controllerEnv": args.controller_env,
        "makespan": makespan(seen, args),
        "runs": {
            "recorded": len(ledger.recorded),
            "lost": args.count - len(ledger.recorded),
            "statusSucceeded": sum(1 for s in seen.statuses if (s.get("lastRun") or {}).get("phase") == "Succeeded"),
            "recordedOnce": sum(1 for s in seen.statuses if len(s.get("recentRuns") or []) == 1),
            "recordedMoreThanOnce": sum(1 for s in seen.statuses if len(s.get("recentRuns") or []) > 1),
            "broadcastsWithEvent": seen.events,
            "recordedSeconds": {stretch: spread(lags) for stretch, lags in ledger.record_lags().items()},
        },
        "concurrency": {
            "quota": args.gpus,
            "maxAdmittedWorkloads": ledger.max_admitted,
            "maxRunningPods": ledger.max_running,
        },
        "queued": {
            "mustHaveWaited": max(0, args.count - args.gpus),
            "seenQueuedOnStatus": len(ledger.queued),
            "withQueuedEvent": seen.events["Queued"],
            "withAdmittedEvent": seen.events["Admitted"],
            "withPlaceOnStatus": sum(1 for places in ledger.places.values() if places),
            "placesShownPerRun": _round(mean([len(p) for p in ledger.places.values()] or [0]), 2),
            "largestPlace": max((max(p) for p in ledger.places.values() if p), default=None),
        },
        "queueWaitSeconds": queue_waits(seen),
        "controller": controller_figures(seen),
        "apiRequests": api_requests(seen, args),
        "notes": seen.notes,
    }


def makespan(seen: Observed, args: argparse.Namespace) -> dict[str, Any]:
    """The minute to the last run recorded, the model's floor, and where the time beyond it went."""
    due, ledger = seen.minute.timestamp(), seen.ledger
    recorded = sorted(ledger.recorded.values())
    total = recorded[-1] - due if len(recorded) == args.count else None
    n_waves = waves(args.count, args.gpus)
    ran = [ledger.pods_succeeded[p] - at for p, at in ledger.pods_running.items() if p in ledger.pods_succeeded]
    gaps = handovers(ledger.pods_running.values(), ledger.pods_succeeded.values(), args.gpus)
    idle = statistics.median(gaps) if gaps else None  # the steady hand-over, without the start's
    typical = None if idle is None else round(predicted_makespan(args.count, args.gpus, args.run_seconds, idle), 1)
    to_admission = handovers(ledger.workloads_admitted.values(), ledger.pods_succeeded.values(), args.gpus)
    jobs = sorted(t - due for t in seen.jobs_created)
    return {
        "seconds": _round(total),
        "model": {
            "formula": "ceil(broadcasts / gpus) × (runSeconds + overheadPerRunSeconds)",
            "waves": n_waves,
            "floorSeconds": predicted_makespan(args.count, args.gpus, args.run_seconds),
            "overheadPerRunSeconds": None if total is None else round(total / n_waves - args.run_seconds, 2),
            "withTheTypicalGpuIdleSeconds": typical,
            "note": "the rest of the makespan is the start: the CronJob controller, Kueue and the controller taking in "
            "every Job at once while the first runs' GPUs wait",
        },
        "podRunningToSucceededSeconds": spread(ran),
        "gpuIdleBetweenRunsSeconds": spread(gaps),
        "ofWhich": {
            "podEndedToNextAdmittedSeconds": spread(to_admission),
            "admittedToPodRunningSeconds": spread(ledger.admissions_to_pods()),
        },
        "jobsCreatedSecondsAfterMinute": {"first": jobs[0] if jobs else None, "last": jobs[-1] if jobs else None},
        "firstPodRunningSecondsAfterMinute": _round(min(ledger.pods_running.values(), default=due) - due),
        "cronJobsReadySecondsBeforeMinute": round(due - seen.times["cronjobs"], 1),
    }


def queue_waits(seen: Observed) -> dict[str, Any]:
    ledger = seen.ledger
    waits = [ledger.workloads_admitted[n] - ledger.workloads_created[n] for n in ledger.workloads_admitted]
    histogram = Histogram.parse(seen.metrics_text, "anchor_run_queue_wait_seconds")
    return {
        "workloads": {
            **spread(waits),
            "mean": _round(statistics.fmean(waits) if waits else None),
            "count": len(waits),
            "measured": "Workload seen created → seen admitted",
        },
        "controllerHistogram": {
            "count": histogram.count,
            "mean": _round(histogram.total / histogram.count if histogram.count else None),
            "p50Bucket": histogram.bucket(0.5),
            "p99Bucket": histogram.bucket(0.99),
        },
    }


def controller_figures(seen: Observed) -> dict[str, Any]:
    reconcile = Histogram.parse(seen.metrics_text, "anchor_reconcile_duration_seconds")
    return {
        "reconciles": reconcile.count,
        "reconcileP99Seconds": _round(reconcile.quantile(0.99), 4),
        "reconcileP99Bucket": reconcile.bucket(0.99),
        "rssMb": seen.rss,
    }


def api_requests(seen: Observed, args: argparse.Namespace) -> dict[str, Any]:
    due, recorded = seen.minute.timestamp(), len(seen.ledger.recorded)
    before = tally(seen.requests, seen.times["launched"], due)
    during = tally(seen.requests, due, seen.times["finished"])
    window = seen.times["finished"] - due
    return {
        "counted": f"the API server's audit log: requests of user {USER} (the controller alone), watches apart;"
        " beforeMinute from the controller's start (reconciling the broadcasts), fromMinute until 3 s after the"
        " last run was recorded",
        "beforeMinute": {**before, "perBroadcast": round(before["requests"] / args.count, 2)},
        "fromMinute": {
            **during,
            "windowSeconds": round(window, 1),
            "perBroadcastRun": round(during["requests"] / max(1, recorded), 2),
            "perSecond": round(during["requests"] / window, 2),
        },
        "objectChangesSeenPerRun": {
            kind: round(n / max(1, recorded), 2) for kind, n in sorted(seen.ledger.changes.items())
        },
    }


def _timestamp(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def report(result: Mapping[str, Any]) -> None:
    makespan, runs, most = result["makespan"], result["runs"], result["concurrency"]
    model = makespan["model"]
    size = result["size"]
    print(f"makespan {makespan['seconds']} s for {size['broadcasts']} runs of {size['runSeconds']} s on "
          f"{most['quota']} GPUs; floor {model['floorSeconds']} s ({model['waves']} waves), "
          f"overhead {model['overheadPerRunSeconds']} s per run", file=sys.stderr)  # fmt: skip
    print(f"recorded {runs['recorded']} ({runs['lost']} lost, {runs['recordedMoreThanOnce']} more than once); "
          f"most admitted at once {most['maxAdmittedWorkloads']}, running {most['maxRunningPods']} "
          f"(quota {most['quota']})", file=sys.stderr)  # fmt: skip
    queued, api = result["queued"], result["apiRequests"]["fromMinute"]
    print(f"Queued on status: {queued['seenQueuedOnStatus']}, Queued Events: {queued['withQueuedEvent']} "
          f"(at least {queued['mustHaveWaited']} had to wait); controller requests per run "
          f"{api['perBroadcastRun']}, per second {api['perSecond']}", file=sys.stderr)  # fmt: skip
    print(json.dumps(result, indent=2))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="NewsBroadcasts due at the same minute (default 200)")
    parser.add_argument("--gpus", type=int, default=4, help="the ClusterQueue's nvidia.com/gpu quota (default 4)")
    parser.add_argument("--run-seconds", type=float, help=f"each run's simulated run time (default {RUN_SECONDS:g})")
    parser.add_argument("--full", action="store_true", help=f"full size: {FULL_RUN_SECONDS:g} s runs (about 20 min)")
    parser.add_argument("--nodes", type=int, default=2, help="kwok GPU nodes (default 2)")
    parser.add_argument("--gpus-per-node", type=int, default=4, help="GPUs on each node (default 4)")
    parser.add_argument("--lead", type=float, default=30.0, help="least seconds from creating to the minute")
    parser.add_argument("--budget", type=float, help="seconds after the minute to wait for every run recorded "
                        "(default: 3 × the model's floor + 300)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=RESULTS, help="where the figures go ('-': nowhere)")
    parser.add_argument("--log", type=Path, help="keep the controller's log here (default: a temporary file)")
    parser.add_argument("--controller-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a controller setting (repeatable), e.g. ANCHOR_QUEUE_POSITION_SECONDS=30")  # fmt: skip
    args = parser.parse_args(argv)
    pairs = [item.partition("=") for item in args.controller_env]
    if any(not name.startswith("ANCHOR_") or not sep for name, sep, _ in pairs):
        parser.error("--controller-env takes NAME=VALUE with an ANCHOR_ setting's name")
    args.controller_env = {name: value for name, _, value in pairs}
    if args.run_seconds is None:
        args.run_seconds = FULL_RUN_SECONDS if args.full else RUN_SECONDS
    elif args.full:
        parser.error("--full is --run-seconds 20: give one or the other")
    if min(args.count, args.gpus, args.nodes, args.gpus_per_node) < 1 or args.run_seconds <= 0:
        parser.error("--count, --gpus, --nodes, --gpus-per-node and --run-seconds must be positive")
    if args.budget is None:
        args.budget = 3 * predicted_makespan(args.count, args.gpus, args.run_seconds) + 300
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anchor-queue-") as scratch:
        workdir = Path(scratch)
        args.log = args.log or workdir / "controller.log"
        policy = workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        os.environ["KWOK_KUBE_AUDIT_POLICY"] = str(policy)  # kwokctl's setting for the API server's audit log
        stages = (STAGES, stages_file(workdir, args.run_seconds))
        with running_cluster(workdir, name=f"anchor-queue-{uuid.uuid4().hex[:6]}", stages=stages) as cluster:
            cluster.kubectl("apply", "--server-side", "-f", str(REPO / "k8s" / "crds.yaml"))
            kueue.install_crds(cluster)  # served before the controller starts: it watches Kueue's Workloads
            wait_for(lambda: cluster.kubectl("get", PLURAL, check=False).returncode == 0, "the CRD to serve")
            result = figures(measure(cluster, workdir, args), args)
    report(result)
    if str(args.json) != "-":
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
