"""`anchor controller` refuses to start with a peering that is not there (kopf would pause silently for good): which
peering objects it checks, the calls it makes, the message, and that the chart's RBAC allows the check.
tests/operator/test_controller_startup.py runs the same against a real API server."""

from __future__ import annotations

import json
import re
import subprocess
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from controller.peering import PEERING_CRDS, Peering, explain_missing_peering, missing_peering, peerings
from tests.support.tools import REPO, tool


class FakeApi:
    """CustomObjectsApi's three calls the check makes, over a set of existing peering objects."""

    def __init__(self, objects: set[Peering], *, served: bool = True, status: int | None = None) -> None:
        self.objects, self.served, self.status = objects, served, status
        self.calls: list[str] = []

    def _get(self, peering: Peering) -> dict[str, Any]:
        self.calls.append(f"get {peering}")
        if self.status is not None:
            raise ApiException(status=self.status, reason="Forbidden")
        if not self.served or peering not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return peering.manifest()

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str, **_: Any) -> Any:
        assert (group, version, plural) == ("kopf.dev", "v1", "clusterkopfpeerings")
        return self._get(Peering(name))

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **_: Any
    ) -> Any:
        assert (group, version, plural) == ("kopf.dev", "v1", "kopfpeerings")
        return self._get(Peering(name, namespace))

    def get_api_resources(self, group: str, version: str, **_: Any) -> Any:
        self.calls.append(f"discover {group}/{version}")
        if not self.served:
            raise ApiException(status=404, reason="Not Found")
        kinds = ("clusterkopfpeerings", "kopfpeerings")
        return SimpleNamespace(resources=[SimpleNamespace(name=k) for k in kinds])


def _commands(message: str) -> list[dict[str, Any]]:
    """The objects the message's `echo '...' | kubectl apply -f -` lines would create."""
    return [json.loads(m) for m in re.findall(r"echo '(.+)' \| kubectl apply -f -", message)]


def test_a_cluster_wide_controller_uses_one_clusterkopfpeering_a_namespaced_one_a_kopfpeering_per_namespace() -> None:
    assert peerings("anchor", []) == [Peering("anchor")]
    assert peerings("anchor", ["news", "sports"]) == [Peering("anchor", "news"), Peering("anchor", "sports")]
    assert peerings("anchor", ["news-*", "sports"]) == [Peering("anchor", "sports")]  # a glob names no object


def test_when_the_peering_exists_the_check_costs_one_get_and_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi({Peering("anchor")})
    assert missing_peering([Peering("anchor")], api) is None
    assert api.calls == ["get ClusterKopfPeering 'anchor'"]
    assert capsys.readouterr().err == ""


def test_a_missing_object_is_named_with_the_command_that_creates_it_and_the_standalone_way_out() -> None:
    api = FakeApi(set())
    message = missing_peering([Peering("anchor")], api)
    assert message is not None
    assert api.calls == ["get ClusterKopfPeering 'anchor'", "discover kopf.dev/v1"]
    assert "peering 'anchor' is required (--peering), but ClusterKopfPeering 'anchor' does not exist" in message
    assert _commands(message) == [
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "anchor"}}
    ]
    assert "anchor controller --standalone" in message
    assert PEERING_CRDS not in message  # the CRD is there: installing it again would not help


def test_a_missing_crd_is_named_with_the_file_that_installs_it() -> None:
    message = missing_peering([Peering("anchor")], FakeApi(set(), served=False))
    assert message is not None
    assert "ClusterKopfPeering 'anchor' cannot exist: its CRD clusterkopfpeerings.kopf.dev is not installed" in message
    assert f"kubectl apply -f {PEERING_CRDS}" in message
    assert (REPO / PEERING_CRDS).is_file()
    assert [c["kind"] for c in _commands(message)] == ["ClusterKopfPeering"]
    assert message.index(PEERING_CRDS) < message.index("echo '"), "the CRD first, then the object"
    assert "--standalone" in message


def test_namespaced_names_each_namespace_whose_kopfpeering_is_missing() -> None:
    api = FakeApi({Peering("anchor", "news")})
    wanted = peerings("anchor", ["news", "sports", "weather"])
    message = missing_peering(wanted, api)
    assert message is not None
    assert "KopfPeering 'anchor' in namespace 'sports', KopfPeering 'anchor' in namespace 'weather' do not exist" in (
        message
    )
    assert "'news'" not in message
    assert [c["metadata"] for c in _commands(message)] == [
        {"name": "anchor", "namespace": "sports"},
        {"name": "anchor", "namespace": "weather"},
    ]


def test_an_answer_that_is_not_a_404_is_left_for_kopf_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert missing_peering([Peering("anchor")], FakeApi(set(), status=403)) is None
    assert "could not check the peering objects (HTTP 403 Forbidden); going on" in capsys.readouterr().err


def test_the_message_reads_as_numbered_steps() -> None:
    message = explain_missing_peering([Peering("p", "ns")], crd_installed=False)
    lines = message.splitlines()
    assert lines[0].endswith("the controller would do nothing. Either:")
    assert lines[1].startswith("  1. ") and lines[-1].startswith("  2. or, for a single replica")


@pytest.mark.parametrize("namespaced", [False, True], ids=["ClusterRole", "Role"])
def test_the_charts_rbac_allows_the_check(namespaced: bool) -> None:
    sets = ["--set", "controller.namespaces={news}"] if namespaced else []
    done = subprocess.run(
        [
            str(tool("helm")),
            "template",
            "anchor",
            str(REPO / "charts" / "anchor"),
            "-n",
            "anchor-system",
            "--skip-tests",
            *sets,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    (role,) = [o for o in objects if o["kind"] == ("Role" if namespaced else "ClusterRole")]
    resource = "kopfpeerings" if namespaced else "clusterkopfpeerings"
    assert any(
        "kopf.dev" in rule["apiGroups"] and resource in rule["resources"] and "get" in rule["verbs"]
        for rule in role["rules"]
    )
    # The chart creates the object the controller is told to use.
    (peering,) = [o for o in objects if o["apiVersion"] == "kopf.dev/v1"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert f"--peering={peering['metadata']['name']}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
