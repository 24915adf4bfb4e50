"""A real Kubernetes control plane on 127.0.0.1 (kube-apiserver, etcd, controller-manager, scheduler) with kwok
playing the kubelet, brought up by `kwokctl --runtime binary` from the binaries scripts/test-tools.sh built.

kwok manages only the nodes annotated kwok.x-k8s.io/node=fake (`add_gpu_node`) and their pods, so a real kubelet
can join beside them (tests/support/node.py); the API server reaches such a kubelet with the admin certificate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.support import leftovers
from tests.support.processes import free_port
from tests.support.tools import tool

T = TypeVar("T")
STAGES = Path(__file__).with_name("kwok-stages.yaml")
KWOKCTL_OPTIONS = Path(__file__).with_name("kwokctl.yaml")


@dataclass
class Cluster:
    name: str
    kubeconfig: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig), "KWOK_WORKDIR": str(self.workdir)}

    @property
    def pki(self) -> Path:
        """kwokctl's certificates: ca.crt, and admin.crt/admin.key (system:masters, also the API server's)."""
        return self.workdir / "clusters" / self.name / "pki"

    @property
    def api_port(self) -> int:
        """The API server's port on 127.0.0.1."""
        server = self.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        return int(server.rsplit(":", 1)[1])

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(tool("kubernetes", "kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, document: dict[str, Any] | str) -> None:
        text = document if isinstance(document, str) else json.dumps(document)
        self.kubectl("apply", "-f", "-", input=text)

    @contextmanager
    def restricted_namespace(self, prefix: str) -> Iterator[str]:
        """A fresh namespace enforcing the restricted Pod Security Standard, deleted (without waiting) at the end."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        self.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
        try:
            yield name
        finally:
            self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def running_pods(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's pods in phase Running (kwok's stage has started them)."""
        return [p for p in self.get("pods", "-n", namespace)["items"] if p["status"].get("phase") == "Running"]

    def finish_pod(self, namespace: str, pod: str, exit_code: int, message: str = "", reason: str = "") -> None:
        """Play the kubelet: the job container exits with this code, termination message and reason (default
        Completed or Error by the code; OOMKilled and the like as a test says)."""
        extra = [f"anchor.test/reason={reason}"] if reason else []
        self.kubectl(
            "annotate", "--overwrite", "-n", namespace, f"pod/{pod}",
            f"anchor.test/exit-code={exit_code}", f"anchor.test/message={message}", *extra,
        )  # fmt: skip

    def evict(self, namespace: str, pod: str) -> None:
        """What `kubectl drain` does to each pod: the Eviction API marks it DisruptionTarget and deletes it."""
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
        self.kubectl(
            "create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", "-f", "-",
            input=json.dumps(eviction),
        )  # fmt: skip

    def add_gpu_node(self, name: str, gpus: int = 2) -> None:
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": name},
                },
                "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": str(gpus)},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": str(gpus)},
                },
            }
        )


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.3) -> T:
    """Poll a real server's state until `check` returns something truthy, or fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)  # polling the API server's state with a deadline, not synchronising our threads
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _pids(workdir: Path, name: str) -> list[int]:
    pids = []
    for path in (workdir / "clusters" / name / "pids").glob("*.pid"):
        try:
            pids.append(int(path.read_text().strip()))
        except ValueError:
            continue
    return pids


@contextmanager
def running_cluster(workdir: Path, name: str = "anchor-test", stages: Sequence[Path] = (STAGES,)) -> Iterator[Cluster]:
    """Create the cluster, bound to 127.0.0.1 on free ports; always delete it and stop its processes by pid.
    `stages`: the kwok Stage files that play the kubelet (a benchmark adds its own to the test suite's)."""
    kubernetes = tool("kubernetes", "kube-apiserver").parent
    kwokctl = tool("kwok", "kwokctl")
    cluster = Cluster(name, workdir / "kubeconfig", workdir / "kwok")
    etcd_port, etcd_peer = free_port(), f"http://127.0.0.1:{free_port()}"
    # kwokctl (v0.8.0) files a component's later --extra-args under the index of the flag that first named it, so
    # every component is named once before any is named again. Every port a component listens on is one we chose on
    # 127.0.0.1: kwokctl's own picks count down from 32766 alike for every cluster, so two clusters made at once
    # (the node's and the operator's, on two test workers) took the same etcd peer, controller-manager and
    # scheduler ports and the second never came up; and it binds etcd's peer port on 0.0.0.0.
    command = [
        str(kwokctl), "create", "cluster", "--name", name, "--runtime", "binary",
        "--kube-apiserver-binary", str(kubernetes / "kube-apiserver"),
        "--kube-controller-manager-binary", str(kubernetes / "kube-controller-manager"),
        "--kube-scheduler-binary", str(kubernetes / "kube-scheduler"),
        "--kwok-controller-binary", str(tool("kwok")),
        "--etcd-binary", str(tool("etcd")),
        "--kubeconfig", str(cluster.kubeconfig),
        "--kube-apiserver-port", str(free_port()),
        "--etcd-port", str(etcd_port),
        "--kube-controller-manager-port", str(free_port()),
        "--kube-scheduler-port", str(free_port()),
        "--extra-args", "kube-apiserver=bind-address=127.0.0.1",
        "--extra-args", "kube-controller-manager=bind-address=127.0.0.1",
        "--extra-args", "kube-scheduler=bind-address=127.0.0.1",
        "--extra-args", "kwok-controller=server-address=127.0.0.1:0",
        "--extra-args", f"etcd=listen-client-urls=http://127.0.0.1:{etcd_port}",
        "--extra-args", f"etcd=listen-peer-urls={etcd_peer}",
        "--extra-args", f"etcd=initial-advertise-peer-urls={etcd_peer}",
        "--extra-args", f"etcd=initial-cluster=node0={etcd_peer}",
        "--extra-args", "kwok-controller=manage-all-nodes=false",
        "--extra-args", "kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--extra-args", f"kube-apiserver=kubelet-client-certificate={cluster.pki / 'admin.crt'}",
        "--extra-args", f"kube-apiserver=kubelet-client-key={cluster.pki / 'admin.key'}",
        "--extra-args", "kube-apiserver=kubelet-preferred-address-types=InternalIP,Hostname",
        *(arg for path in stages for arg in ("--config", str(path))),
        "--config", str(KWOKCTL_OPTIONS),
        "--wait", "90s",
    ]  # fmt: skip
    env = {**os.environ, **cluster.env}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"kwokctl could not create the cluster:\n{done.stderr[-3000:]}")
        for pid in _pids(cluster.workdir, name):
            leftovers.current().process(pid, f"kwok cluster {name}")
        yield cluster
    finally:
        pids = _pids(cluster.workdir, name)
        subprocess.run([str(kwokctl), "delete", "cluster", "--name", name], env=env, capture_output=True, timeout=120)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
