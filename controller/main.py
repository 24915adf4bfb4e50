"""`anchor controller`: run the operator against the kubeconfig in use, or the in-cluster config in a pod."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence

import kopf

from api.result import ExitCode
from controller.peering import missing_peering, peerings
from controller.settings import Scope, Settings, SettingsError


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anchor controller", description="Run the anchor operator (kopf).")
    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable); default: ANCHOR_NAMESPACES (comma-separated), else all",
    )
    parser.add_argument("--liveness", default=os.environ.get("ANCHOR_LIVENESS", "http://0.0.0.0:8080/healthz"))
    parser.add_argument(
        "--metrics",
        default=os.environ.get("ANCHOR_METRICS", "0.0.0.0:9090"),
        help="serve Prometheus metrics on HOST:PORT at /metrics; empty: off (default: ANCHOR_METRICS or 0.0.0.0:9090)",
    )
    parser.add_argument(
        "--standalone", action="store_true", help="no peering (and no check for it): for a single replica or tests"
    )
    parser.add_argument(
        "--peering",
        default=os.environ.get("ANCHOR_PEERING", "anchor"),
        help="kopf peering object: a ClusterKopfPeering, or a KopfPeering in each --namespace; it must exist "
        "(the chart creates it), else the controller exits with 2 saying how to fix it (default: anchor)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=os.environ.get("ANCHOR_PEERING_PRIORITY") or None,  # argparse applies `type` to a string default
        help="peering priority: the highest acts, the others wait (default: random per process, because kopf "
        "freezes every replica when two share a priority)",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        default=os.environ.get("ANCHOR_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json"),
        help="json: one object per line with the object it is about (default off a terminal); text: for people",
    )
    args = parser.parse_args(argv)
    try:
        own = Settings.from_env(os.environ)  # checked before anything starts: a bad setting never crash-loops
    except SettingsError as exc:
        print(f"anchor controller: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    namespaces = args.namespace or [n for n in os.environ.get("ANCHOR_NAMESPACES", "").split(",") if n]
    if not args.standalone:
        # kopf, told to use a peering that is not there, pauses every handler and says so only in debug lines.
        problem = missing_peering(peerings(args.peering, namespaces))
        if problem:
            print(f"anchor controller: {problem}", file=sys.stderr)
            return int(ExitCode.CONFIG_ERROR)
    # kopf's own log set-up: JSON lines carry {"object": {"namespace", "name", ...}}; text lines a [ns/name] prefix.
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=args.log_format == "text",
        log_refkey="object",
    )
    if args.metrics:
        port = args.metrics.rpartition(":")[2]
        if not port.isdigit() or not 0 < int(port) < 65536:
            parser.error(f"--metrics: {args.metrics!r} is not HOST:PORT (such as 0.0.0.0:9090)")
        from controller import metrics

        metrics.serve(args.metrics)

    import controller.operator  # registers the handlers

    if own.kueue:  # the Workloads' handler, only when asked: it needs Kueue's CRDs served
        import controller.queueing  # noqa: F401

    # kopf's peering is not leader election: replicas of equal priority all pause. Distinct random priorities
    # make exactly one act; when it stops (its peering entry removed or expired), the next highest takes over.
    priority = args.priority if args.priority is not None else secrets.randbelow(2**31 - 2) + 1
    settings = kopf.OperatorSettings()
    # No runtime scanning of namespaces and CRDs: it needs cluster-wide list/watch of both, which a namespaced
    # install does not grant; the CRD is installed with the chart, before the controller starts.
    settings.scanning.disabled = True
    scope = Scope(tuple(namespaces), None if args.standalone else args.peering, 0 if args.standalone else priority)
    kopf.run(
        settings=settings,
        memo=kopf.Memo(scope=scope, settings=own),
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=args.standalone,
        priority=None if args.standalone else priority,
        peering_name=None if args.standalone else args.peering,
        liveness_endpoint=args.liveness or None,
    )
    return 0
