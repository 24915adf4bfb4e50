"""The NewsBroadcast CustomResourceDefinition, generated from the spec models (`make crd`); never edit it by hand.

Pydantic's JSON schema becomes a structural OpenAPI v3 schema: $refs inlined, optional fields unwrapped, titles
and defaults dropped (the job applies the defaults, so stored objects stay as the user wrote them), every
description kept (what `kubectl explain` prints), plus CEL rules for what only the cluster can reject.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic.alias_generators import to_camel

from api.status import PRESERVED, BroadcastStatus
from api.v1alpha1 import GROUP, KIND, VERSION, Voice, spec_json_schema

PLURAL = "newsbroadcasts"
SINGULAR = "newsbroadcast"
SHORT_NAMES = ["nb"]
CATEGORIES = ["anchor"]

_KEEP = {
    "type",
    "description",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "required",
    "format",
}

# What spec.voice says of the voice's sound, which a cast says per member instead.
_SOUND = tuple(to_camel(field) for field in Voice.model_fields if field != "engine_url")
# Rules the API server checks at apply time, keyed by the spec path they attach to.
_RULES: dict[str, list[dict[str, str]]] = {
    "spec.sources.feeds[]": [
        {
            "rule": "self.url.startsWith('http://') || self.url.startsWith('https://')",
            "message": "in a cluster a feed must be an http:// or https:// URL (file paths exist only on a laptop)",
            "fieldPath": ".url",
        }
    ],
    **{
        path: [
            {
                "rule": "[has(self.file), has(self.url), has(self.object)].filter(given, given).size() == 1",
                "message": "give exactly one of file, url and object",
            }
        ]
        for path in ("spec.cast[].portrait", "spec.audio.music")
    },
    "spec.output.s3": [
        {
            "rule": "!has(self.prefix) || !self.prefix.startsWith('/')",
            "message": "prefix must not start with '/'",
            "fieldPath": ".prefix",
        }
    ],
    "spec": [
        {
            "rule": "!has(self.suspend) || !self.suspend || has(self.schedule)",
            "message": "suspend applies to a schedule; set spec.schedule or drop spec.suspend",
            "fieldPath": ".suspend",
        },
        {
            "rule": "!has(self.cast) || !has(self.voice) || ("
            + " && ".join(f"!has(self.voice.{field})" for field in _SOUND)
            + ")",
            "message": "spec.voice and spec.cast both give the voice: with spec.cast, give each member's styleId and "
            "voice settings in spec.cast and leave spec.voice to engineUrl",
            "fieldPath": ".voice",
        },
        {
            "rule": "!has(self.cast) || !has(self.script) || !has(self.script.anchorName)",
            "message": "spec.script.anchorName and spec.cast both name the anchor: with spec.cast, the names are "
            "spec.cast[].name",
            "fieldPath": ".script.anchorName",
        },
        {
            "rule": "!has(self.cast) || self.cast.all(a, self.cast.exists_one(b, b.name == a.name))",
            "message": "spec.cast names a member more than once; each member's name is their own",
            "fieldPath": ".cast",
        },
        {
            "rule": "has(self.output) && has(self.output.s3) || ("
            "(!has(self.audio) || !has(self.audio.music) || !has(self.audio.music.object)) && "
            "(!has(self.cast) || self.cast.all(m, !has(m.portrait) || !has(m.portrait.object))))",
            "message": "an object source (spec.audio.music.object, spec.cast[].portrait.object) names an object in "
            "spec.output.s3's bucket, but spec.output.s3 is not set",
            "fieldPath": ".output",
        },
        {
            "rule": "!has(self.script) || !has(self.script.format) || self.script.format != 'dialogue' || "
            "(has(self.cast) && size(self.cast) >= 2)",
            "message": "spec.script.format is dialogue, which needs at least two presenters in spec.cast",
            "fieldPath": ".script.format",
        },
    ],
}


def openapi_schema() -> dict[str, Any]:
    """The structural schema of the whole object: spec from the models, status preserved as the controller writes it."""
    raw = spec_json_schema()
    spec = _structural(raw, raw.get("$defs", {}), "spec")
    raw_status = BroadcastStatus.model_json_schema(by_alias=True)
    status = _structural(raw_status, raw_status.get("$defs", {}), "status", bounded=False)
    for name in PRESERVED:
        status["properties"][name] = {**status["properties"][name], "x-kubernetes-preserve-unknown-fields": True}
    return {
        "type": "object",
        "description": "A recurring (or one-off) narrated news video, rendered by anchor.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version: anchor.news/v1alpha1."},
            "kind": {"type": "string", "description": "Kind: NewsBroadcast."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def _structural(node: dict[str, Any], defs: dict[str, Any], path: str, *, bounded: bool = True) -> dict[str, Any]:
    """`bounded`: give every string and list a maximum (what CEL's cost estimate needs in the spec). The status has
    no CEL rules, and a maximum the controller's write exceeds would lose the whole write: only declared ones."""
    if "$ref" in node:
        description = node.get("description")
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **({"description": description} if description else {})}
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    if options:
        (only,) = options  # the spec uses anyOf only for Optional[X]
        merged = _structural(only, defs, path, bounded=bounded)
        if node.get("description"):
            merged["description"] = " ".join(node["description"].split())
        return merged
    out = {k: v for k, v in node.items() if k in _KEEP}
    if "description" in out:
        out["description"] = " ".join(out["description"].split())
    if "const" in node:
        out["enum"] = [node["const"]]
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if node.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        extra = node.get("additionalProperties")
        if "properties" in node:
            out["properties"] = {
                name: _structural(prop, defs, f"{path}.{name}", bounded=bounded)
                for name, prop in node["properties"].items()
            }
        elif isinstance(extra, dict) and extra.get("type"):
            out["additionalProperties"] = _structural(extra, defs, f"{path}{{}}", bounded=bounded)  # e.g. nodeSelector
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True  # passed through as is, e.g. affinity
    if node.get("type") == "array":
        out["items"] = _structural(node["items"], defs, f"{path}[]", bounded=bounded)
        if node.get("maxItems") is None and bounded:
            out["maxItems"] = 100  # CEL cost estimation needs bounded lists
    if bounded and out.get("type") == "string" and "maxLength" not in out and "enum" not in out:
        out["maxLength"] = 2048
    if path in _RULES:
        out["x-kubernetes-validations"] = _RULES[path]
    return out


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "anchor", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
                        {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
                        {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRun.finishedAt"},
                        {"name": "Result", "type": "string", "jsonPath": ".status.lastRun.phase"},
                        # The run in progress: Queued (in Kueue), Pending or Running, and what holds it.
                        {"name": "Now", "type": "string", "jsonPath": ".status.activeRun.phase"},
                        {"name": "Waiting", "type": "string", "jsonPath": ".status.activeRun.reason", "priority": 1},
                        {"name": "Ahead", "type": "integer", "jsonPath": ".status.activeRun.ahead", "priority": 1},
                        {
                            "name": "Last Video",
                            "type": "string",
                            "jsonPath": ".status.lastRun.video",
                            "priority": 1,
                        },
                        {"name": "Cost", "type": "number", "jsonPath": ".status.lastRun.cost.onDemand"},
                        {
                            "name": "GPU Seconds",
                            "type": "number",
                            "jsonPath": ".status.lastRun.gpuSeconds",
                            "priority": 1,
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def render_yaml() -> str:
    header = "# Generated from api/v1alpha1.py by `make crd`; do not edit.\n"
    return header + yaml.safe_dump(crd(), allow_unicode=True, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
