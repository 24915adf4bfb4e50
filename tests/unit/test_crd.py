"""The CRD is generated from the spec models, committed, structural, documented, and a valid Kubernetes object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from api.crd import crd, render_yaml
from tests.support.builders import a_broadcast

REPO = Path(__file__).resolve().parents[2]
COMMITTED = [REPO / "charts" / "anchor" / "files" / "crds" / "newsbroadcasts.anchor.news.yaml"]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_crd_equals_the_generated_one(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == render_yaml(), "spec changed: run `make crd` and commit the result"


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(crd(), "1.36", strict=True)


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    return found


def test_schema_is_structural_and_every_spec_field_is_described() -> None:
    nodes = _walk(_schema())
    for path, node in nodes:
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title", "default"} & node.keys(), path
        assert not ("additionalProperties" in node and "properties" in node), path
        if path != ".metadata":
            assert node.get("type"), f"{path} has no type"
    spec_nodes = [(p, n) for p, n in nodes if p.startswith(".spec.")]
    assert len(spec_nodes) > 40
    assert [p for p, n in spec_nodes if not n.get("description") and not p.endswith("[]")] == []
    assert all("\n" not in n.get("description", "") for _, n in spec_nodes)


def test_sample_broadcast_fits_the_schema_and_a_bad_one_does_not() -> None:
    sample = yaml.safe_load((REPO / "job" / "sample" / "broadcast-ja.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(sample, _schema())
    bad = a_broadcast().voice(speedScale=9).dict()
    with pytest.raises(jsonschema.ValidationError, match="9 is greater than the maximum of 2"):
        jsonschema.validate(bad, _schema())


def test_names_printer_columns_and_status_subresource() -> None:
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "newsbroadcasts.anchor.news"
    assert spec["names"]["shortNames"] == ["nb"] and spec["names"]["categories"] == ["anchor"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == [
        "Ready",
        "Schedule",
        "Suspended",
        "Last Run",
        "Result",
        "Now",
        "Waiting",
        "Ahead",
        "Last Video",
        "Cost",
        "GPU Seconds",
        "Age",
    ]
