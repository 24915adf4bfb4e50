"""The kopf peering a controller replica is told to use, checked before the operator starts.

What kopf 1.45.2 does when that peering (peering_name given: settings.peering.mandatory) is missing: without the
CRD, the orchestrator turns on its "peering CRD is missing" toggle, which pauses every watch-stream; with scanning
disabled (as here) the CRD is never looked for again, so the pause lasts for good. With the CRD but without the
object, the keep-alive PATCH gets a 404 it ignores (silent=True) and the peering toggle, switched on at start, waits
for an event about the object that never comes. Either way the controller runs, serves its liveness probe and
handles nothing, with nothing said above debug level; hence this check.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"
PEERING_CRDS = "charts/anchor/crds/kopf-peerings.yaml"


@dataclass(frozen=True)
class Peering:
    """The kopf peering object a controller replica uses: one ClusterKopfPeering when it watches every namespace,
    else a KopfPeering in each namespace it watches."""

    name: str
    namespace: str | None = None

    @property
    def kind(self) -> str:
        return "ClusterKopfPeering" if self.namespace is None else "KopfPeering"

    @property
    def plural(self) -> str:
        return self.kind.lower() + "s"

    def __str__(self) -> str:
        where = "" if self.namespace is None else f" in namespace {self.namespace!r}"
        return f"{self.kind} {self.name!r}{where}"

    def manifest(self) -> dict[str, Any]:
        metadata = {"name": self.name} | ({"namespace": self.namespace} if self.namespace else {})
        return {"apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}", "kind": self.kind, "metadata": metadata}


def peerings(name: str, namespaces: Sequence[str]) -> list[Peering]:
    """The peering objects kopf will use. Namespace patterns (kopf accepts globs) cannot be checked up front."""
    if not namespaces:
        return [Peering(name)]
    return [Peering(name, n) for n in namespaces if not any(c in n for c in "*?[!")]


def missing_peering(wanted: Sequence[Peering], api: Any = None) -> str | None:
    """What is missing and how to fix it, or None when every peering object exists. One GET per object; only when
    one is missing, one more call (API discovery) tells a missing CRD from a missing object. Anything else the
    API server answers (no permission, unreachable) is left for kopf to report: this check adds no failure."""
    if not wanted:
        return None
    try:
        api = api or kubernetes.client.CustomObjectsApi(_api_client())
        missing = [peering for peering in wanted if not _exists(api, peering)]
        if not missing:
            return None
        served = _served(api, missing[0].plural)
    except (ApiException, kubernetes.config.ConfigException, urllib3.exceptions.HTTPError, OSError) as exc:
        reason = f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else str(exc)
        print(f"anchor controller: could not check the peering objects ({reason}); going on", file=sys.stderr)
        return None
    return explain_missing_peering(missing, crd_installed=served)


def explain_missing_peering(missing: Sequence[Peering], *, crd_installed: bool) -> str:
    """The message for a controller started with peering whose peering resource is not there."""
    plural = missing[0].plural
    if crd_installed:
        what = ", ".join(str(p) for p in missing) + (" does" if len(missing) == 1 else " do") + " not exist"
    else:
        what = f"{missing[0]} cannot exist: its CRD {plural}.{PEERING_GROUP} is not installed"
    create = [f"       echo '{json.dumps(p.manifest())}' | kubectl apply -f -" for p in missing]
    install = [] if crd_installed else [f"       kubectl apply -f {PEERING_CRDS}"]
    return "\n".join(
        [
            f"peering {missing[0].name!r} is required (--peering), but {what}. kopf would pause every handler and "
            "the controller would do nothing. Either:",
            "  1. create what is missing (the Helm chart installs the CRDs and creates the object):",
            *install,
            *create,
            "  2. or, for a single replica, run without peering: anchor controller --standalone "
            "(two replicas without peering would both act on every broadcast)",
        ]
    )


def _api_client() -> Any:
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient()


def _exists(api: Any, peering: Peering) -> bool:
    try:
        if peering.namespace is None:
            api.get_cluster_custom_object(
                PEERING_GROUP, PEERING_VERSION, peering.plural, peering.name, _request_timeout=10
            )
        else:
            api.get_namespaced_custom_object(
                PEERING_GROUP, PEERING_VERSION, peering.namespace, peering.plural, peering.name, _request_timeout=10
            )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _served(api: Any, plural: str) -> bool:
    """Whether the API server serves the peering resource (its CRD is installed)."""
    try:
        resources = api.get_api_resources(PEERING_GROUP, PEERING_VERSION, _request_timeout=10)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.name == plural for r in resources.resources or [])
