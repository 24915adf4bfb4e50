"""Real Kueue (sigs.k8s.io/kueue, built by scripts/test-tools.sh with its CRDs and webhook configurations) on a test
control plane: the manager runs as a process on this machine and the API server calls its webhooks on 127.0.0.1.

What differs from `kubectl apply` of Kueue's release manifests, and why:
- the webhooks (admission and CRD conversion) name a URL on 127.0.0.1 with our own self-signed certificate instead of
  a Service, and only Kueue's own kinds' and batch/v1 Jobs' are installed: Kueue is configured for Jobs alone, and a
  webhook for pods or Deployments it does not serve would refuse every such object;
- no leader election, and its metrics and health endpoints on free ports of 127.0.0.1;
- its visibility server (an aggregated API served through a Service) is off;
- it runs in a mount namespace of its own (root: the real node's tests need it too), see below.
`install_crds` is separate from `running_kueue`, because a controller watching Workloads needs their CRD served
when it starts. When Kueue stops, its webhook configurations are removed, so the cluster admits Jobs as before.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support import leftovers
from tests.support.kwok import Cluster, wait_for
from tests.support.processes import free_port, stop
from tests.support.tools import tool

API = "kueue.x-k8s.io/v1beta2"
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
"""The CRDs Kueue's release serves more than one version of through its conversion webhook."""
WEBHOOKS = ("kueue-x-k8s-io", "batch-v1-job")
"""Path fragments of the admission webhooks installed: Kueue's own kinds and batch/v1 Jobs."""
NAMESPACE = "kueue-system"
MOUNT_POINT = Path("/etc/kueue")


def _config() -> Path:
    return tool("kueue").parent / "config"


@dataclass
class Kueue:
    process: subprocess.Popen[bytes]
    log: Path


def _certificate(directory: Path) -> bytes:
    """A self-signed serving certificate for 127.0.0.1 (tls.crt, tls.key: the names controller-runtime reads); its
    PEM, which is also the CA bundle the API server trusts it by."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kueue-test",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(directory / "tls.key"),
            "-out", str(directory / "tls.crt"),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return (directory / "tls.crt").read_bytes()


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def install_crds(cluster: Cluster) -> None:
    """Kueue's CRDs as its release installs them (conversion through the webhook is set once Kueue runs)."""
    for path in sorted((_config() / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    wait_for(lambda: cluster.kubectl("get", "workloads.kueue.x-k8s.io", "-A", check=False).returncode == 0,
             "Kueue's CRDs to serve")  # fmt: skip


def _point_webhooks(url: str, bundle: str) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, renamed as its release names them, each webhook calling `url`+path."""
    configurations = []
    for document in _documents(_config() / "webhooks.yaml"):
        hooks = []
        for hook in document.get("webhooks") or []:
            path = hook["clientConfig"]["service"]["path"]
            if any(fragment in path for fragment in WEBHOOKS):
                hooks.append({**hook, "clientConfig": {"url": url + path, "caBundle": bundle}})
        name = "kueue-" + document["metadata"]["name"]
        configurations.append({**document, "metadata": {"name": name}, "webhooks": hooks})
    return configurations


@contextmanager
def running_kueue(cluster: Cluster, workdir: Path) -> Iterator[Kueue]:
    """Kueue's manager against the cluster, its webhooks installed; stopped by its pid and its webhooks removed at
    the end, also when the caller fails."""
    webhook_port, health_port, metrics_port = free_port(), free_port(), free_port()
    bundle = base64.b64encode(_certificate(workdir / "certs")).decode()
    url = f"https://127.0.0.1:{webhook_port}"
    configuration = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(workdir / "certs")},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": ["batch/job"]},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(configuration))
    if cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", NAMESPACE)
    # Kueue without its internal certificate management reads its metrics server's certificate from a fixed path,
    # /etc/kueue/metrics/certs: the same certificate is bind-mounted there in a mount namespace of its own, so
    # nothing is written under /etc but the empty mount point.
    shutil.copytree(workdir / "certs", workdir / "etc" / "metrics" / "certs")
    MOUNT_POINT.mkdir(parents=True, exist_ok=True)
    command = [str(tool("kueue")), f"--config={workdir / 'config.yaml'}", "--feature-gates=VisibilityOnDemand=false",
               f"--visibility-server-port={free_port()}", "--zap-log-level=info"]  # fmt: skip
    log = workdir / "kueue.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
             f'mount --bind "$0" {MOUNT_POINT} && exec "$@"', str(workdir / "etc"), *command],
            env={**os.environ, **cluster.env}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    leftovers.current().process(process.pid, "kueue")
    configurations = _point_webhooks(url, bundle)
    try:
        for name in CONVERTED:
            conversion = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                          "clientConfig": {"url": f"{url}/convert", "caBundle": bundle}}}  # fmt: skip
            cluster.kubectl("patch", "crd", f"{name}.kueue.x-k8s.io", "--type=merge",
                            "-p", json.dumps({"spec": {"conversion": conversion}}))  # fmt: skip

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"kueue exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                return requests.get(f"http://127.0.0.1:{health_port}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, "Kueue's manager to be ready", timeout=90)
        for document in configurations:
            cluster.apply(document)
        yield Kueue(process, log)
    finally:
        for document in configurations:
            kind = document["kind"].lower()
            cluster.kubectl("delete", kind, document["metadata"]["name"], "--ignore-not-found", check=False)
        stop(process)


def gpu_quota(cluster: Cluster, namespace: str, name: str, gpus: int, *, preemption: bool = False) -> None:
    """A ResourceFlavor, a ClusterQueue `name` with a quota of `gpus` nvidia.com/gpu (CPU and memory plenty) and a
    LocalQueue `name` in `namespace` feeding it; with `preemption`, a Workload of higher priority evicts one of
    lower priority within the ClusterQueue. Returns once Kueue has both in use (a Workload is Inadmissible before)."""
    spec: dict[str, Any] = {
        "namespaceSelector": {},
        "resourceGroups": [
            {
                "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                "flavors": [
                    {
                        "name": name,
                        "resources": [
                            {"name": "cpu", "nominalQuota": "64"},
                            {"name": "memory", "nominalQuota": "512Gi"},
                            {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)},
                        ],
                    }
                ],
            }
        ],
    }
    if preemption:
        spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
    for document in (
        {"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": name}},
        {"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec},
        {
            "apiVersion": API,
            "kind": "LocalQueue",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterQueue": name},
        },
    ):
        cluster.apply(document)

    def active() -> bool:
        queues = (("clusterqueue", name, ()), ("localqueue", name, ("-n", namespace)))
        return all(_active(cluster.get(f"{kind}.kueue.x-k8s.io", queue, *where)) for kind, queue, where in queues)

    wait_for(active, f"Kueue to take ClusterQueue {name} and LocalQueue {namespace}/{name} into use")


def _active(queue: dict[str, Any]) -> bool:
    conditions = (queue.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Active" and c.get("status") == "True" for c in conditions)


def priority_class(cluster: Cluster, name: str, value: int) -> None:
    """A Kueue WorkloadPriorityClass (the kueue.x-k8s.io/priority-class label on a Job names it)."""
    cluster.apply({"apiVersion": API, "kind": "WorkloadPriorityClass", "metadata": {"name": name}, "value": value})
