"""How fast the controller turns NewsBroadcasts into CronJobs on a real API server (kwok), and how much memory it holds.

    python -m benchmarks.reconcile [--count 200] [--rate 20] [--workers 8] [--budget 300] [--log controller.log]
                                   [--kueue]

Brings up the kwok control plane from tests/support/kwok.py, starts the controller as the operator tests do, then
runs two phases, each in a fresh namespace while a watch on CronJobs notes when each one appears:
- burst: --count NewsBroadcasts created as fast as a few client threads can. Throughput is count over the time from
  the first create to the last CronJob; latency here is mostly time spent queued behind the burst.
- paced: --count NewsBroadcasts created at --rate per second: latency while the controller keeps up.
Latency is CronJob ADDED minus create returned. Targets: p99 <= 1 s, >= 50 reconciles/s, controller RSS <= 120 MB.
--kueue: the same with Kueue's CRDs served and the controller in its queueing mode (ANCHOR_KUEUE=true, watching
Workloads), to tell what that mode itself costs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

from api.v1alpha1 import GROUP, VERSION
from tests.support.builders import a_broadcast
from tests.support.controller import running_controller
from tests.support.kueue import install_crds
from tests.support.kwok import Cluster, running_cluster, wait_for

REPO = Path(__file__).resolve().parents[1]
PLURAL = "newsbroadcasts"
WARM_UP = "warm-up"
TARGETS = {"p99_s": 1.0, "throughput_per_s": 50.0, "rss_mb": 120.0}


class CronJobWatch(threading.Thread):
    """Notes the monotonic time each CronJob in the namespace is first seen; `warm` is set on the warm-up one."""

    def __init__(self, namespace: str, timeout: float) -> None:
        super().__init__(daemon=True)
        self.namespace, self.timeout = namespace, timeout
        self.seen: dict[str, float] = {}
        self.warm, self.expected, self.done = threading.Event(), -1, threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        batch = kubernetes.client.BatchV1Api()
        try:  # no resourceVersion: the server replays what exists as ADDED, so nothing created early is missed
            for event in kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
                batch.list_namespaced_cron_job, self.namespace, timeout_seconds=int(self.timeout), deserialize=False
            ):  # plain JSON: building client models would delay the timestamps
                name = event["object"]["metadata"]["name"]
                if event["type"] == "ADDED" and name not in self.seen:
                    self.seen[name] = time.monotonic()
                    if name == WARM_UP:
                        self.warm.set()
                    elif len(self.seen) - 1 == self.expected:
                        break
        except Exception as exc:  # reported by the main thread; the cluster may be going away under us
            self.error = exc
        finally:
            self.done.set()


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return dict.fromkeys(("p50", "p90", "p99", "max"))
    return {**{f"p{p}": round(percentile(latencies, p), 3) for p in (50, 90, 99)}, "max": round(max(latencies), 3)}


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak) and VmRSS (now) from /proc, in MB (10^6 bytes); empty where there is no /proc."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 / 1e6 for key in ("VmHWM", "VmRSS") if key in fields}


def broadcast(namespace: str, name: str) -> dict[str, Any]:
    document = a_broadcast(name).set(schedule="0 7 * * *", timeZone="Asia/Tokyo").dict()
    document["metadata"]["namespace"] = namespace
    return document


def measure(
    cluster: Cluster, process: subprocess.Popen[bytes], args: argparse.Namespace, rate: float | None
) -> dict[str, Any]:
    """One phase in a fresh namespace: --count broadcasts created as fast as possible (rate None: throughput and
    latency under a burst) or paced at `rate` per second (latency when the controller keeps up)."""
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    custom = kubernetes.client.CustomObjectsApi()
    watch = CronJobWatch(namespace, args.budget + 60)
    watch.start()
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, broadcast(namespace, WARM_UP))
    if not watch.warm.wait(60):
        raise RuntimeError(f"no CronJob for the warm-up broadcast in 60 s (controller alive: {process.poll() is None})")

    names = [f"news-{n:04d}" for n in range(args.count)]
    watch.expected = args.count
    created: dict[str, float] = {}

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, broadcast(namespace, name))
        created[name] = time.monotonic()

    started = time.monotonic()
    if rate is None:
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(create, names))
    else:
        for n, name in enumerate(names):
            time.sleep(max(0.0, started + n / rate - time.monotonic()))  # pacing the load, not synchronising
            create(name)
    creating = time.monotonic() - started
    watch.done.wait(max(0.0, args.budget - creating))
    if watch.error:
        print(f"the CronJob watch stopped: {watch.error!r}", file=sys.stderr)

    seen = {name: watch.seen[name] for name in names if name in watch.seen}
    latencies = [seen[name] - created[name] for name in seen]
    last = max(seen.values(), default=started)
    return {
        "phase": "burst" if rate is None else f"paced {rate:g}/s",
        "count": args.count,
        "reconciled": len(seen),
        "missing": args.count - len(seen),
        "create_per_s": round(args.count / creating, 1),
        "throughput_per_s": round(len(seen) / (last - started), 1) if seen else 0.0,
        "latency_s": spread(latencies),
    }


def warnings_in(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "WARNING" in line or "ERROR" in line]


def report(phases: list[dict[str, Any]], rss: dict[str, float], warnings: list[str], kueue: bool = False) -> None:
    mark = {True: "ok", False: "MISSED"}
    met: dict[str, bool] = {}
    for figures in phases:
        latency, phase = figures["latency_s"], figures["phase"]
        p99_ok = latency["p99"] is not None and latency["p99"] <= TARGETS["p99_s"] and not figures["missing"]
        print(f"[{phase}] {figures['reconciled']}/{figures['count']} CronJobs seen ({figures['missing']} missing), "
              f"created at {figures['create_per_s']}/s")  # fmt: skip
        print(f"[{phase}] latency: p50 {latency['p50']} s, p90 {latency['p90']} s, p99 {latency['p99']} s, "
              f"max {latency['max']} s  [target p99 <= {TARGETS['p99_s']} s: {mark[p99_ok]}]")  # fmt: skip
        met[f"{phase} p99"] = p99_ok
        if phase == "burst":
            throughput_ok = figures["throughput_per_s"] >= TARGETS["throughput_per_s"]
            print(f"[{phase}] throughput: {figures['throughput_per_s']} reconciles/s"
                  f"  [target >= {TARGETS['throughput_per_s']}/s: {mark[throughput_ok]}]")  # fmt: skip
            met["throughput"] = throughput_ok
    met["rss"] = bool(rss) and rss.get("VmHWM", math.inf) <= TARGETS["rss_mb"]
    print(f"controller RSS: peak {rss.get('VmHWM')} MB, final {rss.get('VmRSS')} MB"
          f"  [target <= {TARGETS['rss_mb']} MB: {mark[met['rss']]}]")  # fmt: skip
    print(f"controller log: {len(warnings)} warning/error lines" + "".join(f"\n  {w[:300]}" for w in warnings[:5]))
    figures = {"kueue": kueue, "phases": phases, "rss_mb": rss, "targets": TARGETS, "met": met}
    print(json.dumps({**figures, "log_warnings": len(warnings)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="NewsBroadcasts to create (default 200)")
    parser.add_argument("--workers", type=int, default=8, help="client threads creating them (default 8)")
    parser.add_argument("--rate", type=float, default=20.0, help="creations per second of the paced phase")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds to wait for every CronJob")
    parser.add_argument("--log", type=Path, help="keep the controller's log here (default: a temporary file)")
    parser.add_argument("--kueue", action="store_true", help="Kueue's CRDs served and the controller's queueing on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anchor-bench-") as scratch:
        workdir = Path(scratch)
        log = args.log or workdir / "controller.log"
        with running_cluster(workdir, name=f"anchor-bench-{uuid.uuid4().hex[:6]}") as cluster:
            cluster.kubectl("apply", "-f", str(REPO / "k8s" / "crds.yaml"))
            wait_for(lambda: cluster.kubectl("get", PLURAL, check=False).returncode == 0, "the CRD to serve")
            if args.kueue:
                install_crds(cluster)
            kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
            env = {**cluster.env, "ANCHOR_KUEUE": "true" if args.kueue else "false"}
            with running_controller(["--standalone"], env, log) as running:
                process = running.process
                phases = [measure(cluster, process, args, None), measure(cluster, process, args, args.rate)]
                rss = {key: round(value, 1) for key, value in memory_mb(process.pid).items()}
                warnings = warnings_in(log)  # before stopping it: what a stop leaves unprocessed is not the run's
        report(phases, rss, warnings, args.kueue)


if __name__ == "__main__":
    main()
