"""The chart's monitoring (README: Monitoring and alerts): its ServiceMonitor or PodMonitor scrapes the controller,
its alert rules pass promtool's check and their unit tests (tests/fixtures/alerts/), and its Grafana dashboard and
rules name only metrics the controller exports. tests/operator/test_reporting.py checks the names again against a
scrape of the running controller."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from controller import metrics
from tests.support.promql import dashboard_queries, exported, metric_names, rule_expressions
from tests.support.tools import REPO, tool

CHART = REPO / "charts" / "anchor"
FIXTURES = REPO / "tests" / "fixtures" / "alerts"
ALL = (
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.prometheusRule.cost.dailyBudget=5",
    "monitoring.dashboard.enabled=true",
)


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool("helm")), "template", "news", str(CHART), "-n", "anchor-system", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _render(*sets: str, values: Path | None = None) -> list[dict[str, Any]]:
    done = _helm(*(a for s in sets for a in ("--set", s)), *(("--values", str(values)) if values else ()))
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    promtool = tool("promtool", version_of="prometheus")
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_nothing_for_prometheus_or_grafana_unless_asked() -> None:
    objects = _render()
    assert not [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert not [o for o in objects if o["kind"] == "ConfigMap"]
    assert {o["kind"] for o in _render(*ALL)} >= {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    rule = _one(_render("monitoring.prometheusRule.enabled=true"), "PrometheusRule")
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert alerts == ["AnchorBroadcastFailed", "AnchorBroadcastLate", "AnchorRunQueuedTooLong", "AnchorControllerDown"]
    rule = _one(_render(*ALL, "monitoring.prometheusRule.late.enabled=false"), "PrometheusRule")
    assert "AnchorGpuCostOverBudget" in str(rule) and "AnchorBroadcastLate" not in str(rule)


def test_the_service_monitor_scrapes_the_controllers_service_keeping_the_broadcasts_namespace() -> None:
    objects = _render(*ALL, "monitoring.serviceMonitor.labels.release=kube-prometheus-stack")
    monitor, service = _one(objects, "ServiceMonitor"), _one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["honorLabels"] is True, "else Prometheus renames the broadcasts' namespace to exported_namespace"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_pod_monitor_scrapes_the_controllers_pods_instead() -> None:
    objects = _render("monitoring.podMonitor.enabled=true", "monitoring.podMonitor.interval=1m")
    monitor, deployment = _one(objects, "PodMonitor"), _one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in [p["name"] for p in pod["spec"]["containers"][0]["ports"]]
    assert endpoint["honorLabels"] is True and endpoint["interval"] == "1m"
    assert "ServiceMonitor" not in {o["kind"] for o in objects}


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (("monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true"), "not both"),
        (("monitoring.serviceMonitor.enabled=true", "metrics.enabled=false"), "needs metrics.enabled"),
        (("monitoring.prometheusRule.late.graceSeconds=1h",), "graceSeconds"),
        (("monitoring.prometheusRule.cost.pricing=reserved",), "pricing"),
        (("monitoring.prometheusRule.cost.by={broadcast,team}",), "by"),
        (("monitoring.serviceMonitor.interval=often",), "interval"),
        (("monitoring.dashbord.enabled=true",), "additional properties 'dashbord' not allowed"),
    ],
)
def test_monitoring_values_that_cannot_work_are_refused(sets: tuple[str, ...], words: str) -> None:
    done = _helm(*(a for s in sets for a in ("--set", s)))
    assert done.returncode != 0 and words in done.stderr


def test_the_dashboard_configmap_carries_the_sidecars_label_and_the_charts_dashboard() -> None:
    configmap = _one(_render(*ALL), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["anchor.json"]) == json.loads((CHART / "files" / "dashboard.json").read_text())
    elsewhere = _one(
        _render(
            "monitoring.dashboard.enabled=true",
            "monitoring.dashboard.label=dashboards",
            "monitoring.dashboard.labelValue=news",
            "monitoring.dashboard.namespace=grafana",
            "monitoring.dashboard.annotations.grafana_folder=News",
        ),
        "ConfigMap",
    )
    assert elsewhere["metadata"]["labels"]["dashboards"] == "news" and "grafana_dashboard" not in elsewhere["metadata"]
    assert elsewhere["metadata"]["namespace"] == "grafana"
    assert elsewhere["metadata"]["annotations"] == {"grafana_folder": "News"}


def test_every_alert_fires_when_it_should_and_not_when_it_should_not_under_promtool(tmp_path: Path) -> None:
    rule = _one(_render(values=FIXTURES / "values.yaml"), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(json.dumps(rule["spec"]))  # a rule file: the PrometheusRule's groups
    shutil.copy(FIXTURES / "anchor.test.yaml", tmp_path)
    checked = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0 and "SUCCESS: 5 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "anchor.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    unit_tests = yaml.safe_load((FIXTURES / "anchor.test.yaml").read_text())["tests"]
    tested_alerts = {case["alertname"] for test in unit_tests for case in test["alert_rule_test"]}
    assert tested_alerts == {r["alert"] for r in rule["spec"]["groups"][0]["rules"]}, "every alert has unit tests"
    for test in unit_tests:
        cases = test["alert_rule_test"]
        assert any(c["exp_alerts"] for c in cases) and any(not c["exp_alerts"] for c in cases), test["name"]


@pytest.mark.parametrize("by", [[], ["namespace"]])
def test_a_budget_for_the_installation_or_each_namespace_checks_too(tmp_path: Path, by: list[str]) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        json.dumps({"monitoring": {"prometheusRule": {"enabled": True, "cost": {"dailyBudget": 20.5, "by": by}}}})
    )
    rule = _one(_render(values=values), "PrometheusRule")
    (cost,) = [r for r in rule["spec"]["groups"][0]["rules"] if r["alert"] == "AnchorGpuCostOverBudget"]
    assert cost["expr"].startswith(f"sum by ({''.join(f'{label}, ' for label in by)}currency) (")
    assert cost["expr"].endswith("> 20.5") and "broadcast" not in cost["annotations"]["summary"]
    (tmp_path / "rules.yaml").write_text(json.dumps(rule["spec"]))
    checked = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_and_the_rules_name_only_metrics_the_controller_exports() -> None:
    offered = exported(generate_latest(metrics.REGISTRY).decode())
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    named = {name for query in dashboard_queries(dashboard) for name in metric_names(query)}
    rule = _one(_render(*ALL), "PrometheusRule")
    named |= {name for expression in rule_expressions(rule) for name in metric_names(expression)}
    assert named and named <= offered, sorted(named - offered)
    assert {"anchor_runs_total", "anchor_run_duration_seconds_bucket", "anchor_run_cost_total"} <= named


def test_the_dashboards_panels_have_their_own_ids_and_places_and_ask_the_chosen_prometheus() -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = [
        (p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy)
        for p in panels
        for dx in range(p["gridPos"]["w"])
        for dy in range(p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)), "no two panels overlap"
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)
    datasources = {json.dumps(t["datasource"]) for p in panels for t in p.get("targets", [])}
    assert datasources == {json.dumps({"type": "prometheus", "uid": "${datasource}"})}


def test_metric_names_reads_promql_as_prometheus_would() -> None:
    expression = (
        'sum by (namespace, le) (rate(a_total{job="x", le=~"1|2"}[5m] offset 1h)) / on(namespace) group_left(team)'
        " b_info or vector(0) unless c:recorded * 1e3 > bool 2h + d[$__range] and histogram_quantile(0.9, e_bucket)"
    )
    assert metric_names(expression) == {"a_total", "b_info", "c:recorded", "d", "e_bucket"}
    assert exported("# TYPE h histogram\n# TYPE g gauge\n# TYPE c_total counter\n") == {
        "h_bucket", "h_count", "h_sum", "g", "c_total",
    }  # fmt: skip


def test_every_alerts_runbook_is_a_section_of_the_readme() -> None:
    rule = _one(_render(*ALL), "PrometheusRule")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    app = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    headings = {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", readme, re.M)
    }
    for each in rule["spec"]["groups"][0]["rules"]:
        url, _, anchor = each["annotations"]["runbook_url"].partition("#")
        assert url == f"https://github.com/anchor-news/anchor/blob/v{app}/README.md", "the README of the app's version"
        assert anchor == each["alert"].lower() and anchor in headings, each["alert"]
    assert "monitoring-and-alerts" in headings
