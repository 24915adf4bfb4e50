"""`anchor selftest`: what the chart's `helm test` pod runs, as the controller's ServiceAccount, to prove that an
installation works: the controller answers its health check, the NewsBroadcast CRD is served, and RBAC lets the
controller do everything it does, in each namespace it watches. One line per check; exit 0 when all pass, 1 if not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from api.v1alpha1 import API_VERSION

TIMEOUT = 10


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str
    """A resource, or resource/subresource."""
    verbs: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def reviews(self, namespace: str | None) -> list[dict[str, Any]]:
        resource, _, subresource = self.resource.partition("/")
        attributes = {"group": self.group, "resource": resource, "subresource": subresource}
        if namespace:
            attributes["namespace"] = namespace
        return [{"spec": {"resourceAttributes": {**attributes, "verb": verb}}} for verb in self.verbs]


# What the controller does (the chart's templates/rbac.yaml grants exactly these; tests/unit/test_chart.py checks).
PERMISSIONS = (
    Permission("anchor.news", "newsbroadcasts", ("get", "list", "watch", "patch")),
    Permission("anchor.news", "newsbroadcasts/status", ("get", "patch")),
    Permission("anchor.news", "newsbroadcasts/finalizers", ("update",)),
    Permission("batch", "cronjobs", ("get", "create", "patch", "delete")),
    Permission("batch", "jobs", ("get", "list", "watch", "create", "patch")),
    Permission("", "pods", ("list", "watch")),
    Permission("", "events", ("create",)),
)
SECRETS = Permission("", "secrets", ("get",))
KUEUE = (
    Permission("kueue.x-k8s.io", "workloads", ("get", "list", "watch")),
    Permission("kueue.x-k8s.io", "localqueues", ("get",)),
)
"""Read-only, when queueing is on (kueue.enabled or job.queueName): why a run waits in a Kueue queue."""
WORKLOADS = "kueue.x-k8s.io/v1beta2"
DRA = Permission("resource.k8s.io", "resourceclaimtemplates", ("create", "patch", "delete"))
"""When runs claim their GPUs through DRA (gpu.allocation=dra): the claim template each broadcast's pods share."""


@dataclass(frozen=True)
class Check:
    name: str
    problem: str | None

    def line(self) -> str:
        return f"ok      {self.name}" if self.problem is None else f"FAILED  {self.name}: {self.problem}"


def check_health(core: Any, namespace: str, service: str) -> Check:
    """The controller's /healthz through its Service (the API server's service proxy: no cluster DNS needed)."""
    name = f"the controller answers (service {namespace}/{service}, /healthz)"
    try:
        core.connect_get_namespaced_service_proxy_with_path(
            f"{service}:health", namespace, "healthz", _request_timeout=TIMEOUT
        )
    except ApiException as exc:
        if exc.status == 403:
            why = "may not read the Service through the API server's proxy (the chart grants it while `helm test` runs)"
        else:
            why = "is the controller pod running and ready? (kubectl describe deployment; its logs)"
        return Check(name, f"HTTP {exc.status} {exc.reason}: {why}")
    return Check(name, None)


def _where(namespaces: Sequence[str]) -> list[str | None]:
    """Each watched namespace, or None: all of them (a cluster-wide controller)."""
    return list(namespaces) or [None]


def check_crd(custom: Any, namespaces: Sequence[str]) -> Check:
    """The NewsBroadcast resource is served, and listing it works where the controller watches."""
    group, version = API_VERSION.split("/")
    name = f"the {API_VERSION} NewsBroadcast CRD is served"
    try:
        resources = custom.get_api_resources(group, version, _request_timeout=TIMEOUT)
        if not any(r.name == "newsbroadcasts" for r in resources.resources or []):
            return Check(name, f"{API_VERSION} has no newsbroadcasts resource")
        for namespace in _where(namespaces):
            if namespace:
                custom.list_namespaced_custom_object(group, version, namespace, "newsbroadcasts", limit=1)
            else:
                custom.list_cluster_custom_object(group, version, "newsbroadcasts", limit=1)
    except ApiException as exc:
        hint = "install the CRD (crds.enabled, or k8s/crds.yaml)" if exc.status == 404 else "see RBAC below"
        return Check(name, f"HTTP {exc.status} {exc.reason}; {hint}")
    return Check(name, None)


def check_kueue(custom: Any) -> Check:
    """Kueue's Workloads are served: the controller, told to watch them, looks for them when it starts."""
    name = f"Kueue's {WORKLOADS} Workloads are served"
    group, version = WORKLOADS.split("/")
    try:
        resources = custom.get_api_resources(group, version, _request_timeout=TIMEOUT)
    except ApiException as exc:
        return Check(name, f"HTTP {exc.status} {exc.reason}; install Kueue, then restart the controller")
    if not any(r.name == "workloads" for r in resources.resources or []):
        return Check(name, f"{WORKLOADS} has no workloads resource; install Kueue, then restart the controller")
    return Check(name, None)


def check_rbac(
    authorization: Any, namespaces: Sequence[str], secrets: bool, kueue: bool = False, dra: bool = False
) -> list[Check]:
    """SelfSubjectAccessReviews of every verb the controller uses, in each watched namespace (or cluster-wide)."""
    wanted = (*PERMISSIONS, *((SECRETS,) if secrets else ()), *(KUEUE if kueue else ()), *((DRA,) if dra else ()))
    checks = []
    for namespace in _where(namespaces):
        denied = []
        for permission in wanted:
            for review in permission.reviews(namespace):
                answer = authorization.create_self_subject_access_review(review, _request_timeout=TIMEOUT)
                if not answer.status.allowed:
                    denied.append(f"{review['spec']['resourceAttributes']['verb']} {permission}")
        where = f"namespace {namespace}" if namespace else "all namespaces"
        checks.append(
            Check(f"RBAC lets the controller act in {where}", "denied: " + ", ".join(denied) if denied else None)
        )
    return checks


def run(
    namespace: str,
    service: str,
    watched: Sequence[str],
    secrets: bool,
    client: Any,
    out: Callable[[str], None],
    kueue: bool = False,
    dra: bool = False,
) -> int:
    core = kubernetes.client.CoreV1Api(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    authorization = kubernetes.client.AuthorizationV1Api(client)
    checks = [check_health(core, namespace, service), check_crd(custom, watched)]
    if kueue:
        checks.append(check_kueue(custom))
    try:
        checks += check_rbac(authorization, watched, secrets, kueue, dra)
    except ApiException as exc:
        checks.append(Check("RBAC lets the controller act", f"HTTP {exc.status} {exc.reason}"))
    for check in checks:
        out(check.line())
    failed = sum(check.problem is not None for check in checks)
    out(f"{len(checks) - failed} of {len(checks)} checks passed")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anchor selftest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", required=True, help="the release's namespace (the controller's Service)")
    parser.add_argument("--service", required=True, help="the controller's Service")
    parser.add_argument("--watch", action="append", default=[], help="a watched namespace (repeatable; none: all)")
    parser.add_argument("--secrets", action="store_true", help="the controller reads webhook Secrets")
    parser.add_argument("--kueue", action="store_true", help="the controller reads Kueue's Workloads")
    parser.add_argument("--dra", action="store_true", help="the controller makes ResourceClaimTemplates (DRA)")
    args = parser.parse_args(argv)
    try:
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        client = kubernetes.client.ApiClient()
        return run(
            args.namespace, args.service, args.watch, args.secrets, client, print, kueue=args.kueue, dra=args.dra
        )
    except (kubernetes.config.ConfigException, urllib3.exceptions.HTTPError, OSError) as exc:
        print(f"FAILED  cannot reach the API server: {exc}", file=sys.stderr)
        return 1
