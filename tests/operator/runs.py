"""Playing a broadcast's run on the kwok cluster: ask for it with run-now, then finish its pod as a kubelet would."""

from __future__ import annotations

from api.result import RunResult
from tests.support.kwok import Cluster, wait_for


def run_to_the_end(cluster: Cluster, namespace: str, name: str, exit_code: int, result: RunResult) -> None:
    """`anchor.news/run-now=go` on the broadcast, then its pod ends with this exit code and termination message."""
    cluster.kubectl("annotate", "-n", namespace, f"newsbroadcast/{name}", "anchor.news/run-now=go")
    pods = wait_for(lambda: cluster.running_pods(namespace), f"a running pod in {namespace}")
    cluster.finish_pod(namespace, pods[0]["metadata"]["name"], exit_code, result.compact_json())
