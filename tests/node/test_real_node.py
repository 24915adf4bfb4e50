"""Pods on the real node: a restricted pod runs there for real (exit code, `kubectl logs`, a test server on the
node's address), kwok keeps to its fake node, a pod reaches the API server with its ServiceAccount, and a run's pod
in DRA mode shares one claimed device between its two containers."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from controller import manifests, operator
from controller.settings import Settings
from tests.node.conftest import FAKE_GPU_NODE
from tests.support.builders import a_broadcast
from tests.support.dra import device_class, running_dra_driver
from tests.support.http import Reply, scripted_server
from tests.support.kwok import Cluster, wait_for
from tests.support.node import POD_SUBNET, SANDBOX_IMAGE, RealNode, build_static_image

pytestmark = pytest.mark.node
PROBE_IMAGE = "registry.test/anchor-node-probe:1"


@pytest.fixture(scope="session")
def probe(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> str:
    build_static_image(PROBE_IMAGE, Path(__file__).with_name("probe.go"), tmp_path_factory.mktemp("images"))
    real_node.load_images([PROBE_IMAGE])
    return PROBE_IMAGE


def restricted_pod(namespace: str, name: str, image: str, node: str, *args: str, **container: Any) -> dict[str, Any]:
    """A pod the restricted Pod Security Standard admits, pinned to `node`, run once."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": list(args),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    **container,
                }
            ],
        },
    }


def finished(cluster: Cluster, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        pod: dict[str, Any] = cluster.get("pod", "-n", namespace, name)
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    try:
        return wait_for(done, f"pod {name} to finish", timeout=timeout)
    except AssertionError as exc:
        described = cluster.kubectl("describe", "pod", "-n", namespace, name, check=False).stdout
        raise AssertionError(f"{exc}\n{described[-3000:]}") from exc


def test_a_restricted_pod_runs_on_the_real_node_and_reaches_a_test_server(
    cluster: Cluster, real_node: RealNode, probe: str, namespace: str
) -> None:
    gpu = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}  # the node's CPU-mocked GPU admits it
    greeting = Reply(200, b"hello from the test", "text/plain")
    with scripted_server(lambda _method, _path, _body: greeting, host=real_node.ip) as server:
        url = f"{server.url}/greeting"
        cluster.apply(restricted_pod(namespace, "probe", probe, real_node.name, "get", url, **gpu))
        pod = finished(cluster, namespace, "probe")

    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    logs = cluster.kubectl("logs", "-n", namespace, "probe").stdout
    assert (pod["spec"]["nodeName"], pod["status"]["phase"], terminated["exitCode"]) == (real_node.name, "Succeeded", 0)
    assert logs.splitlines() == ["probe: hello from the real node", f"probe: GET {url} -> 200 hello from the test"]
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_SUBNET)  # the pods' bridge
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/greeting")]


def test_kwok_plays_only_its_fake_node_and_leaves_the_real_one_to_the_kubelet(
    cluster: Cluster, real_node: RealNode, namespace: str
) -> None:
    fake = restricted_pod(namespace, "faked", SANDBOX_IMAGE, FAKE_GPU_NODE)
    fake["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    cluster.apply(restricted_pod(namespace, "sandbox", SANDBOX_IMAGE, real_node.name))
    cluster.apply(fake)

    def running(name: str) -> dict[str, Any] | None:
        pod: dict[str, Any] = cluster.get("pod", "-n", namespace, name)
        return pod if pod["status"].get("phase") == "Running" else None

    real_pod = wait_for(lambda: running("sandbox"), "the pause pod to run on the real node", timeout=60)
    fake_pod = wait_for(lambda: running("faked"), "kwok to play the pod on its fake node", timeout=30)
    assert real_pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    assert "containerID" not in fake_pod["status"]["containerStatuses"][0]  # kwok's stage, no container
    node = cluster.get("node", real_node.name)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert node["metadata"]["annotations"].get("kwok.x-k8s.io/node") is None


def test_a_pod_reaches_the_api_server_with_its_service_account(
    cluster: Cluster, real_node: RealNode, probe: str, namespace: str
) -> None:
    cluster.kubectl("create", "serviceaccount", "-n", namespace, "prober")
    pod = restricted_pod(namespace, "in-cluster", probe, real_node.name, "in-cluster", env=real_node.api_env)
    pod["spec"] |= {"serviceAccountName": "prober", "automountServiceAccountToken": True}
    cluster.apply(pod)
    finished_pod = finished(cluster, namespace, "in-cluster")

    logs = cluster.kubectl("logs", "-n", namespace, "in-cluster").stdout
    assert finished_pod["status"]["phase"] == "Succeeded", logs
    assert f"probe: GET https://{real_node.ip}:{real_node.api_port}/api -> 200" in logs
    assert f"probe: the API server knows us as system:serviceaccount:{namespace}:prober (201)" in logs


def test_in_dra_mode_the_engine_and_the_job_containers_share_one_claimed_device(
    cluster: Cluster, real_node: RealNode, probe: str, namespace: str
) -> None:
    """gpu.allocation=dra on the real node with Kubernetes' DRA test driver: the controller's ResourceClaimTemplate
    and run pod (its engine sidecar and job container playing the probe) get one claim allocated on the node, and
    both containers see the same device's CDI edits; restricted Pod Security admits it and the Job completes."""
    device_class_name = f"anchor-test-gpu-{namespace}"
    with running_dra_driver(cluster, real_node) as driver:
        cluster.apply(device_class(device_class_name, driver, model="simulated"))
        settings = Settings(gpu_allocation="dra", gpu_device_class=device_class_name, image_pull_policy="Never")
        broadcast = a_broadcast("shared").set(gpu={"count": 2}).in_namespace(namespace).model()
        resource = kubernetes.client.ResourceV1Api(kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))
        template = manifests.resource_claim_template(broadcast, settings)
        assert template is not None
        two = copy.deepcopy(template)
        template["spec"]["spec"]["devices"]["requests"][0]["exactly"]["count"] = 1
        operator._apply_claim_template(resource, template)  # the controller's own apply
        operator._apply_claim_template(resource, two)  # a changed count: immutable, so replaced
        applied = cluster.get("resourceclaimtemplate", "-n", namespace, template["metadata"]["name"])
        assert applied["spec"]["spec"]["devices"]["requests"][0]["exactly"]["count"] == 2

        claims: list[dict[str, Any]] = []

        def claim_while_running(_method: str, _path: str, _body: bytes) -> Reply:
            """The job container asks this while its pod runs, so its claim is still there to be read (the
            ResourceClaim controller deletes a template's claim when the pod is done)."""
            claims.extend(cluster.get("resourceclaims", "-n", namespace)["items"])
            return Reply(200, b"claim read", "text/plain")

        with scripted_server(claim_while_running, host=real_node.ip) as server:
            job = manifests.one_off_job(broadcast, settings)
            pod = job["spec"]["template"]["spec"]
            pod["nodeSelector"] = {"kubernetes.io/hostname": real_node.name}
            (engine,), (main,) = pod["initContainers"], pod["containers"]
            shown = ["env", "claim_", "env", "admin_"]
            for container, steps in ((engine, [*shown, "hold"]), (main, [*shown, "get", f"{server.url}/claim"])):
                container |= {"image": probe, "args": steps}
                for field in ("command", "startupProbe"):  # the image's own entrypoint; the engine's probe needs bash
                    container.pop(field, None)
            cluster.apply(job)

            def complete() -> dict[str, Any] | None:
                found: dict[str, Any] = cluster.get("job", "-n", namespace, job["metadata"]["name"])
                done = {c["type"] for c in found["status"].get("conditions") or [] if c["status"] == "True"}
                assert "Failed" not in done, found["status"]
                return found if "Complete" in done else None

            wait_for(complete, "the DRA-mode run's Job to complete on the real node", timeout=120)
        (run_pod,) = cluster.get("pods", "-n", namespace, "-l", f"job-name={job['metadata']['name']}")["items"]
        lines = {
            name: cluster.kubectl("logs", "-n", namespace, run_pod["metadata"]["name"], "-c", name).stdout.splitlines()
            for name in ("voicevox", "job")
        }

    (claim,) = claims
    assert claim["status"]["reservedFor"] == [{"name": run_pod["metadata"]["name"], "resource": "pods",
                                               "uid": run_pod["metadata"]["uid"]}]  # fmt: skip
    allocated = claim["status"]["allocation"]["devices"]["results"]
    assert len(allocated) == 2 and {r["driver"] for r in allocated} == {driver}
    assert {r["pool"] for r in allocated} == {real_node.name}  # the real node's devices, from its ResourceSlice
    assert run_pod["spec"]["nodeName"] == real_node.name and run_pod["status"]["phase"] == "Succeeded"
    seen = {name: sorted(line for line in found if line.startswith("probe: env ")) for name, found in lines.items()}
    claim_variable = "probe: env claim_" + claim["metadata"]["name"].replace("-", "_") + "_gpu=true"
    assert seen["voicevox"] == seen["job"] == ["probe: env admin_model=simulated", claim_variable], seen
