"""Which metrics PromQL names, and which a scrape offers: so the chart's dashboard and alert rules can be held to the
metrics the controller exports."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_NOT_NAMES = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_SAMPLES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum")}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects; Grafana's `$variables` may stand anywhere in it."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expression)  # strings: label values, regexes
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana's variables
    names = set()
    for word in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):  # not the unit of a duration (23h) or number
        if word.group() not in _NOT_NAMES and not text[word.end() :].lstrip().startswith("("):  # nor a function
            names.add(word.group())
    return names


def exported(exposition: str) -> set[str]:
    """The sample names a scrape offers, from its `# TYPE` lines: every family is listed even before it has a sample
    (a histogram as its _bucket, _count and _sum)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.M):
        names.update(name + suffix for suffix in _SAMPLES.get(kind, ("",)))
    return names


def dashboard_queries(dashboard: Mapping[str, Any]) -> Iterator[str]:
    """Every panel's query (rows' panels too) and the selector each `label_values(selector, label)` variable reads."""

    def panels(within: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        for panel in within.get("panels") or []:
            yield panel
            yield from panels(panel)

    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            selector = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"]["query"])
            assert selector, f"variable {variable['name']}: not label_values(metric, label)"
            yield selector.group(1)


def rule_expressions(rule: Mapping[str, Any]) -> Iterator[str]:
    """Every expression of a PrometheusRule."""
    for group in rule["spec"]["groups"]:
        for each in group["rules"]:
            yield each["expr"]
