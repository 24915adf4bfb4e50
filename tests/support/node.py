"""A real node for the test suite's control plane: kubelet and containerd on this machine, joined to the kwokctl
cluster beside kwok's fake GPU nodes (kwok manages only nodes annotated kwok.x-k8s.io/node=fake, see kwok.py), with
one CPU-mocked `nvidia.com/gpu` on its status so that GPU pods schedule onto it.

Addresses come from the RFC 2544 benchmarking range and nowhere else: the node is 198.18.0.1/32 on lo (the kubelet
refuses a loopback node IP, and the API server reaches it there for `kubectl logs`), its pods get 198.18.1.0/24 on a
CNI bridge without NAT, and a test server bound to 198.18.0.1 is reachable from them. The API server listens on
127.0.0.1 only and no kube-proxy serves the `kubernetes` Service, so a forwarder in this process listens on
198.18.0.1 at the API server's port; its certificate names 198.18.0.1 (kwokctl.yaml), so a pod given `node.api_env`
reaches it with its ServiceAccount's in-cluster credentials (tests/support/forwarder.py).

Images come from docker (`load_images`; pods use imagePullPolicy: Never); `build_static_image` makes one FROM
scratch out of a Go program, as the pod sandbox's pause image is made. Everything the node keeps lives under its work
directory; on exit it drains and deletes the Node, stops kubelet and containerd by pid, kills its containerd's shims
and their containers, unmounts what they mounted there, and removes the bridge, the address and the cgroups it
created. One node per machine at a time (a lock in /run: the address, bridge and cgroups are the machine's). Where
the machine cannot host it, NodeUnavailable says exactly why, for tests to skip with.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from tests.support import leftovers
from tests.support.forwarder import TcpForwarder
from tests.support.kwok import Cluster, wait_for
from tests.support.processes import free_port, stop
from tests.support.tools import tool

NODE_NAME = "anchor-real-node"
NODE_IP = "198.18.0.1"
POD_SUBNET = "198.18.1.0/24"
BRIDGE = "anchor-cni0"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
FILES = Path(__file__).with_name("node-files")
LOCK = Path("/run/anchor-real-node.lock")
CGROUP = Path("/sys/fs/cgroup")
CGROUP_V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids")


class NodeUnavailable(RuntimeError):
    """This machine cannot host the real node; the message says why (tests skip with it)."""


@dataclass
class Binaries:
    kubelet: Path
    containerd: Path  # with containerd-shim-runc-v2 and ctr beside it
    runc: Path
    cni: Path  # the directory of the CNI plugins

    @property
    def ctr(self) -> Path:
        return self.containerd.with_name("ctr")


@dataclass
class RealNode:
    name: str
    cluster: Cluster
    workdir: Path
    binaries: Binaries
    socket: Path  # containerd's
    api_port: int
    ip: str = NODE_IP
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def api_env(self) -> list[dict[str, str]]:
        """Container env that points a pod's in-cluster configuration at the API server through this node's address
        (explicit env wins over the kubelet's service variables)."""
        return [
            {"name": "KUBERNETES_SERVICE_HOST", "value": self.ip},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.api_port)},
        ]

    @property
    def kubelet_root(self) -> Path:
        """The kubelet's --root-dir: its plugins_registry/ and plugins/ are where DRA drivers register and listen."""
        return self.workdir / "kubelet"

    @property
    def cdi_dir(self) -> Path:
        """Where containerd reads CDI specs (a DRA driver's container edits) from."""
        return self.workdir / "cdi"

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.binaries.ctr), "--address", str(self.socket), "--namespace", "k8s.io", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def load_images(self, names: Sequence[str]) -> None:
        """Copy images from docker into the node's containerd: `docker save NAME... | ctr images import`, all in one
        archive, so the layers they share (the job, controller and engine images share their base) go across once."""
        ctr = [str(self.binaries.ctr), "--address", str(self.socket), "--namespace", "k8s.io"]
        save = subprocess.Popen(["docker", "save", *names], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        load = subprocess.Popen(
            [*ctr, "images", "import", "--local", "-"],
            stdin=save.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        if save.stdout:
            save.stdout.close()  # ctr holds the pipe now: docker save ends if ctr does
        load_error = load.communicate(timeout=600)[1]
        save_error = save.communicate(timeout=60)[1]
        if save.returncode != 0 or load.returncode != 0:
            detail = (save_error + load_error).decode(errors="replace")
            raise RuntimeError(f"could not load {', '.join(names)} into the node: {detail}")

    def summary(self) -> str:
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.timings.items() if step != "total")
        return f"real node {self.name} up in {self.timings.get('total', 0):.1f} s ({steps})"


def build_static_image(tag: str, source: Path, workdir: Path, user: str = "65532:65532") -> str:
    """`tag`: an image FROM scratch holding only `source` (a Go program of the standard library alone) built static,
    run as the numeric non-root `user`. Go's build cache and docker's layer cache make a rebuild about a second."""
    context = workdir / tag.replace("/", "_").replace(":", "_")
    context.mkdir(parents=True, exist_ok=True)
    go_env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": ""}
    _run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(context / "program"), str(source)], env=go_env)
    dockerfile = f'FROM scratch\nCOPY program /program\nUSER {user}\nENTRYPOINT ["/program"]\n'
    (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    # The legacy builder: FROM scratch needs neither a registry nor the buildx plugin.
    _run(["docker", "build", "--network", "host", "--quiet", "--tag", tag, str(context)],
         env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
    return tag


@contextmanager
def running_node(cluster: Cluster, workdir: Path, name: str = NODE_NAME, gpus: int = 1) -> Iterator[RealNode]:
    """Bring the node up (Ready, GPUs on its status, the API forwarder listening); always take it all down again."""
    binaries = prerequisites()
    workdir.mkdir(parents=True, exist_ok=True)
    node = RealNode(name, cluster, workdir, binaries, workdir / "containerd.sock", cluster.api_port)
    with ExitStack() as teardown:
        teardown.enter_context(_one_node_per_machine())
        started = time.monotonic()
        lap = _stopwatch(node.timings)
        build_static_image(SANDBOX_IMAGE, FILES / "pause.go", workdir / "images", user="65535:65535")
        lap("pause image")

        _network(teardown)
        teardown.enter_context(_kubelet_leftovers())
        teardown.callback(_unmount_under, workdir)
        leftovers.current().note("mounts", under=str(workdir))
        containerd = _start_containerd(node, teardown)
        node.load_images([SANDBOX_IMAGE])
        lap("containerd")

        teardown.callback(cluster.kubectl, "delete", "node", name, "--ignore-not-found", "--wait=false", check=False)
        _start_kubelet(node, containerd, teardown)
        lap("kubelet to Ready")

        _mock_gpus(cluster, name, gpus)
        teardown.enter_context(TcpForwarder((NODE_IP, node.api_port), ("127.0.0.1", node.api_port)))
        node.timings["total"] = time.monotonic() - started
        yield node


@contextmanager
def _one_node_per_machine(timeout: float = 240) -> Iterator[None]:
    """The node's address, bridge, kubepods cgroups and the kubelet's device-plugins directory are the machine's:
    a second session's node waits for the first (an exclusive lock on LOCK), and gives up saying so."""
    with LOCK.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NodeUnavailable(f"another session's real node has held {LOCK} for {timeout:.0f} s") from None
                time.sleep(1)  # polling the lock with a deadline
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mock_gpus(cluster: Cluster, name: str, gpus: int) -> None:
    """What a device plugin would advertise, put on the node's status (the kubelet keeps extended resources)."""
    patch = [
        {"op": "add", "path": f"/status/{part}/nvidia.com~1gpu", "value": str(gpus)}
        for part in ("capacity", "allocatable")
    ]
    cluster.kubectl("patch", "node", name, "--subresource=status", "--type=json", "-p", json.dumps(patch))


def prerequisites() -> Binaries:
    """The node's binaries, or NodeUnavailable with what this machine lacks."""
    if sys.platform != "linux":
        raise NodeUnavailable("a real node needs Linux")
    if os.geteuid() != 0:
        raise NodeUnavailable("a real node needs root (kubelet, containerd, an address on lo, a bridge)")
    try:
        kubelet = tool("kubelet", version_of="kubernetes")
        binaries = Binaries(kubelet, tool("containerd", "containerd"), tool("runc"), tool("cni", "bridge").parent)
        for name, binary in (("containerd", "ctr"), ("containerd", "containerd-shim-runc-v2"), ("cni", "loopback"),
                             ("cni", "host-local")):  # fmt: skip
            tool(name, binary)
    except (FileNotFoundError, KeyError) as exc:
        raise NodeUnavailable(str(exc)) from exc
    for command in ("ip", "umount", "go", "docker"):
        if shutil.which(command) is None:
            raise NodeUnavailable(f"{command} is not installed")
    if not (CGROUP / "cgroup.controllers").exists():  # cgroup v1: the kubelet needs these hierarchies
        missing = [name for name in CGROUP_V1_CONTROLLERS if not (CGROUP / name / "cgroup.procs").exists()]
        if missing:
            raise NodeUnavailable(f"cgroup v1 without the {', '.join(missing)} hierarchy mounted under {CGROUP}")
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise NodeUnavailable("the kernel has no overlay filesystem (containerd's overlayfs snapshotter needs it)")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        reason = info.stderr.strip().splitlines()[-1:] or ["no answer"]
        raise NodeUnavailable(f"no Docker daemon answers (scripts/with-docker.sh starts one): {reason[0]}")
    return binaries


# --- network: the node's address on lo and the pods' bridge ---------------------------------------------------------


def _network(teardown: ExitStack) -> None:
    """Add NODE_IP/32 to lo unless there, and have the bridge the CNI plugin makes removed again unless it was there
    already (a node stopped without its teardown leaves it; reusing it is harmless)."""
    if not _link_exists(BRIDGE):
        teardown.callback(_run, ["ip", "link", "delete", BRIDGE], check=False)
        leftovers.current().note("link", name=BRIDGE)
    addresses = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    if f" {NODE_IP}/" not in addresses:
        leftovers.current().note("address", address=f"{NODE_IP}/32", dev="lo")
        _run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"])
        teardown.callback(_run, ["ip", "addr", "delete", f"{NODE_IP}/32", "dev", "lo"], check=False)


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _cni_config(workdir: Path) -> dict[str, object]:
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": POD_SUBNET}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(workdir / "cni-ipam"),
    }
    bridge = {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True, "ipam": ipam}
    return {"cniVersion": "1.0.0", "name": "anchor-node", "plugins": [bridge]}


# --- containerd -----------------------------------------------------------------------------------------------------


def _start_containerd(node: RealNode, teardown: ExitStack) -> subprocess.Popen[bytes]:
    workdir, binaries = node.workdir, node.binaries
    # A shim's socket is this directory + "/" + 64 hex digits, within the 108 bytes of a socket path.
    shim_sockets = Path(tempfile.mkdtemp(prefix="anchor-node-", dir="/run"))
    teardown.callback(shutil.rmtree, shim_sockets, ignore_errors=True)
    cni_conf = workdir / "cni-conf"
    cni_conf.mkdir(exist_ok=True)
    node.cdi_dir.mkdir(exist_ok=True)
    (cni_conf / "10-anchor.conflist").write_text(json.dumps(_cni_config(workdir), indent=2), encoding="utf-8")
    config = Template((FILES / "containerd.toml").read_text(encoding="utf-8")).substitute(
        root=workdir / "containerd" / "root",
        state=workdir / "containerd" / "state",
        socket=node.socket,
        sandbox_image=SANDBOX_IMAGE,
        runc=binaries.runc,
        runc_root=workdir / "containerd" / "runc",
        shim_sockets=shim_sockets,
        cni_bin=binaries.cni,
        cni_conf=cni_conf,
        cdi=node.cdi_dir,
    )
    (workdir / "containerd.toml").write_text(config, encoding="utf-8")
    # The shim and runc are found on PATH: ours first, never the machine's (docker's containerd brings older ones).
    path = os.pathsep.join([str(binaries.containerd.parent), str(binaries.runc.parent), os.environ.get("PATH", "")])
    process = _start(
        [str(binaries.containerd), "--config", str(workdir / "containerd.toml")],
        workdir / "containerd.log", env={**os.environ, "PATH": path},
    )  # fmt: skip
    teardown.callback(stop, process)
    teardown.callback(leftovers.kill_shims, node.socket)
    leftovers.current().note("shims", socket=str(node.socket))
    leftovers.current().process(process.pid, "containerd")

    def answers() -> bool:
        _alive(process, workdir / "containerd.log", "containerd")
        return node.ctr("version").returncode == 0

    wait_for(answers, "containerd to answer on its socket", timeout=30)
    return process


# --- kubelet --------------------------------------------------------------------------------------------------------


def _kubelet_config(node: RealNode) -> dict[str, object]:
    workdir = node.workdir
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,  # where the API server connects for logs and exec
        "port": free_port(node.ip),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": free_port(),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(node.cluster.pki / "ca.crt")},  # the API server's admin certificate
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # these machines run cgroup v1
        "failSwapOn": False,
        "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE to lower it with
        "podLogsDir": str(workdir / "pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        "imageGCHighThresholdPercent": 100,  # never garbage-collect the images a test loaded
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "shutdownGracePeriod": "0s",
    }


def _start_kubelet(node: RealNode, containerd: subprocess.Popen[bytes], teardown: ExitStack) -> None:
    workdir = node.workdir
    config = workdir / "kubelet.json"
    config.write_text(json.dumps(_kubelet_config(node), indent=2), encoding="utf-8")
    command = [
        str(node.binaries.kubelet),
        f"--config={config}",
        f"--kubeconfig={node.cluster.kubeconfig}",
        f"--root-dir={node.kubelet_root}",
        f"--cert-dir={workdir / 'kubelet' / 'pki'}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.ip}",
        "--node-labels=anchor.test/node=real",
    ]
    log = workdir / "kubelet.log"
    process = _start(command, log)
    leftovers.current().process(process.pid, "kubelet")
    teardown.callback(stop, process)
    teardown.callback(_drain, node)

    def ready() -> bool:
        _alive(process, log, "kubelet")
        _alive(containerd, workdir / "containerd.log", "containerd")
        found = node.cluster.kubectl("get", "node", node.name, "-o", "json", check=False)
        if found.returncode != 0:
            return False
        conditions = json.loads(found.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    try:
        wait_for(ready, f"node {node.name} to be Ready", timeout=120, interval=0.5)
    except AssertionError as exc:
        raise RuntimeError(f"{exc}\nkubelet log:\n{_tail(log)}") from exc


def _drain(node: RealNode) -> None:
    """Cordon the node and delete its pods while the kubelet still runs, so it stops them cleanly (network, mounts)."""
    node.cluster.kubectl("cordon", node.name, check=False)
    node.cluster.kubectl(
        "delete", "pods", "--all-namespaces", f"--field-selector=spec.nodeName={node.name}",
        "--grace-period=1", "--timeout=45s", check=False,
    )  # fmt: skip


# --- cgroups and mounts the node leaves behind ----------------------------------------------------------------------


@contextmanager
def _kubelet_leftovers() -> Iterator[None]:
    """What the kubelet makes outside its root directory, removed on exit where this node made it: the `kubepods`
    cgroups (cgroupfs driver) and /var/lib/kubelet, for device-plugins/, a path compiled into the kubelet."""
    device_plugins_parent = Path("/var/lib/kubelet")
    made_parent = not device_plugins_parent.exists()
    roots = [CGROUP / "kubepods"] if (CGROUP / "cgroup.controllers").exists() else [
        CGROUP / name / "kubepods" for name in (*CGROUP_V1_CONTROLLERS, "devices", "freezer", "blkio", "hugetlb",
                                                "systemd", "net_cls", "net_prio", "perf_event")
    ]  # fmt: skip
    new = [root for root in roots if root.parent.is_dir() and not root.exists()]
    try:
        yield
    finally:
        for root in new:
            for directory in sorted((d for d in root.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                with suppress(OSError):
                    directory.rmdir()
            with suppress(OSError):
                root.rmdir()
        if made_parent:
            shutil.rmtree(device_plugins_parent, ignore_errors=True)


def _unmount_under(workdir: Path) -> None:
    """Unmount what containerd and the kubelet mounted under the work directory (deepest first), then drop
    containerd's image store, which only this node used."""
    leftovers.unmount_under(workdir)
    if not leftovers.mounts_under(workdir):
        shutil.rmtree(workdir / "containerd" / "root", ignore_errors=True)


# --- processes ------------------------------------------------------------------------------------------------------


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _alive(process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")


def _tail(log: Path, size: int = 4000) -> str:
    return log.read_text(errors="replace")[-size:]


def _run(command: list[str], env: dict[str, str] | None = None, check: bool = True) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-3000:]}")


def _stopwatch(timings: dict[str, float]) -> Callable[[str], None]:
    last = time.monotonic()

    def lap(step: str) -> None:
        nonlocal last
        now = time.monotonic()
        timings[step] = now - last
        last = now

    return lap
