"""Kubernetes' own DRA test driver (k8s.io/kubernetes test/e2e/dra/test-driver, built by scripts/test-tools.sh) as the
real node's kubelet plugin: it registers with the kubelet, publishes a ResourceSlice of simulated devices for the
node, and prepares each allocated claim by writing a CDI spec that containerd applies to every container naming the
claim: environment variables `claim_<claim>_<request>=true` and the DeviceClass's and claim's opaque parameters
(`admin_<key>`, `user_<key>`). What a real GPU driver (NVIDIA's) does with device nodes and NVIDIA_VISIBLE_DEVICES,
this does with those variables, which a container can print."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import leftovers
from tests.support.kwok import Cluster, wait_for
from tests.support.node import RealNode
from tests.support.processes import stop
from tests.support.tools import tool

DRIVER = "test-driver.cdi.k8s.io"


@contextmanager
def running_dra_driver(cluster: Cluster, node: RealNode, devices: int = 2) -> Iterator[str]:
    """The driver's kubelet plugin for `node`, until its ResourceSlice is published; stopped by its pid at the end,
    which deletes its sockets (the kubelet then unregisters it). Yields the driver's name."""
    log = node.workdir / "dra-driver.log"
    (node.kubelet_root / "plugins" / DRIVER).mkdir(parents=True, exist_ok=True)  # the driver makes only its parent
    command = [
        str(tool("dra_driver", "dra-test-driver", version_of="kubernetes")),
        f"--kubeconfig={cluster.kubeconfig}",
        "kubelet-plugin",
        f"--node-name={node.name}",
        f"--plugin-registration-path={node.kubelet_root / 'plugins_registry'}",
        f"--datadir={node.kubelet_root / 'plugins'}",
        f"--cdi-dir={node.cdi_dir}",
        f"--num-devices={devices}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    leftovers.current().process(process.pid, "dra test driver")
    try:

        def published() -> list[dict[str, Any]]:
            if process.poll() is not None:
                raise RuntimeError(f"the DRA test driver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            slices: list[dict[str, Any]] = cluster.get("resourceslices")["items"]
            return [s for s in slices if s["spec"].get("nodeName") == node.name and s["spec"]["driver"] == DRIVER]

        wait_for(published, f"the DRA test driver's ResourceSlice for {node.name}", timeout=60)
        yield DRIVER
    finally:
        stop(process)
        slices = cluster.get("resourceslices")["items"]
        for found in slices:  # what it published for the node goes with it
            if found["spec"].get("nodeName") == node.name and found["spec"]["driver"] == DRIVER:
                cluster.kubectl("delete", "resourceslice", found["metadata"]["name"], "--ignore-not-found", check=False)


def device_class(name: str, driver: str = DRIVER, **parameters: str) -> dict[str, Any]:
    """A DeviceClass of the driver's devices; its opaque parameters reach each container as admin_<key>=<value>."""
    spec: dict[str, Any] = {"selectors": [{"cel": {"expression": f'device.driver == "{driver}"'}}]}
    if parameters:
        spec["config"] = [{"opaque": {"driver": driver, "parameters": parameters}}]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": name}, "spec": spec}
