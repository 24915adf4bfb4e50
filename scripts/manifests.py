"""`make manifests`: the chart's default installation rendered as plain manifests in k8s/, for `kubectl apply`
without Helm. tests/unit/test_k8s.py renders them again and fails when they differ from what is committed.

    k8s/crds.yaml     the CRDs: NewsBroadcast and kopf's peerings
    k8s/anchor.yaml   the namespace anchor-system (restricted Pod Security) and the controller: RBAC, Deployment,
                      Service, peering object

Run from the repository root with the project's venv: python -m scripts.manifests [--check]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "anchor"
OUT = REPO / "k8s"
RELEASE, NAMESPACE = "anchor", "anchor-system"
HEADER = (
    "# Generated from charts/anchor by `make manifests` (helm template {release} -n {namespace}); do not edit.\n"
    "# {what}\n"
)


def helm() -> str:
    """The helm that scripts/test-tools.sh builds (ANCHOR_HELM names another)."""
    if os.environ.get("ANCHOR_HELM"):
        return os.environ["ANCHOR_HELM"]
    script = REPO / "scripts" / "test-tools.sh"
    version = re.search(r'^HELM_VERSION="([^"]+)"', script.read_text(encoding="utf-8"), flags=re.M)
    cache = subprocess.run(["bash", str(script), "--path"], capture_output=True, text=True, check=True).stdout.strip()
    return f"{cache}/helm-{version.group(1) if version else 'missing'}/helm"


def _namespace() -> dict[str, object]:
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}


def render(helm_binary: str | None = None) -> dict[str, str]:
    """File name → content."""
    done = subprocess.run(
        [helm_binary or helm(), "template", RELEASE, str(CHART), "-n", NAMESPACE, "--include-crds", "--skip-tests"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed: {done.stderr.strip()}")
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    crds = sorted(
        (d for d in documents if d["kind"] == "CustomResourceDefinition"), key=lambda d: d["metadata"]["name"]
    )
    rest = [_namespace(), *(d for d in documents if d["kind"] != "CustomResourceDefinition")]

    def dump(what: str, objects: list[dict[str, object]]) -> str:
        body = yaml.safe_dump_all(objects, allow_unicode=True, sort_keys=False, width=120, explicit_start=True)
        return HEADER.format(release=RELEASE, namespace=NAMESPACE, what=what) + body

    controller = "The controller (namespace anchor-system): kubectl apply --server-side -f k8s/anchor.yaml"
    return {
        "crds.yaml": dump("The CRDs; apply them first: kubectl apply --server-side -f k8s/crds.yaml", crds),
        "anchor.yaml": dump(controller, rest),
    }


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        stale = [name for name, text in rendered.items() if (OUT / name).read_text(encoding="utf-8") != text]
        for name in stale:
            print(f"k8s/{name} differs from the chart: run `make manifests` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    for name, text in rendered.items():
        (OUT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
