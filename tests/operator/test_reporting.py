"""What the controller tells the outside world about runs: the webhook, Prometheus metrics and its health."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import requests
import yaml

from api.result import RunResult
from tests.operator.runs import run_to_the_end
from tests.support.builders import a_broadcast
from tests.support.controller import Controller
from tests.support.http import Reply, scripted_server
from tests.support.kwok import Cluster, wait_for
from tests.support.promql import dashboard_queries, exported, metric_names, rule_expressions
from tests.support.tools import REPO, tool

pytestmark = pytest.mark.cluster


def _secret(cluster: Cluster, namespace: str, name: str, url: str) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"url": base64.b64encode(url.encode()).decode()},
        }
    )


def _warnings(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    events = cluster.get("events", "-n", namespace)["items"]
    return [e for e in events if e["type"] == "Warning" and e["reason"] == reason]


def test_a_finished_run_is_posted_to_the_webhook_retrying_until_it_is_accepted(
    cluster: Cluster, namespace: str
) -> None:
    answers = iter([Reply(503), Reply(200, b"ok", "text/plain")])
    with scripted_server(lambda method, path, body: next(answers, Reply(200))) as receiver:
        _secret(cluster, namespace, "chat", f"{receiver.url}/hooks/T000/B000/XXXXSECRET")
        broadcast = a_broadcast("hourly").set(
            schedule="0 * * * *", notify={"webhookSecret": {"name": "chat", "key": "url"}}
        )
        cluster.apply(broadcast.in_namespace(namespace).dict())
        wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
        result = RunResult(
            status="Succeeded", broadcast="hourly", run_id="r", video="s3://news/hourly/v.mp4",
            video_url="https://minio.test/v.mp4", duration_seconds=64.0, stories=3,
        )  # fmt: skip
        run_to_the_end(cluster, namespace, "hourly", 0, result)
        posts = wait_for(lambda: len(receiver.requests) >= 2 and receiver.requests, "two webhook posts", timeout=60)
    assert [p.path for p in posts] == ["/hooks/T000/B000/XXXXSECRET"] * 2
    message = json.loads(posts[-1].body)
    assert message["text"].startswith(f"✅ {namespace}/hourly: run hourly-") and "succeeded" in message["text"]
    fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
    assert fields["Video"] == "https://minio.test/v.mp4" and fields["Stories"] == "3"
    events = cluster.get("events", "-n", namespace)["items"]
    assert not any("XXXXSECRET" in e["message"] for e in events)


def test_a_missing_webhook_secret_is_a_warning_naming_the_secret(cluster: Cluster, namespace: str) -> None:
    broadcast = a_broadcast("quiet").set(
        schedule="0 * * * *", notify={"webhookSecret": {"name": "nowhere", "key": "url"}, "onSuccess": False}
    )
    cluster.apply(broadcast.in_namespace(namespace).dict())
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    failed = RunResult(status="Failed", broadcast="quiet", run_id="r", exit_code=2, reason="ConfigError", message="x")
    run_to_the_end(cluster, namespace, "quiet", 2, failed)
    (warning, *_) = wait_for(lambda: _warnings(cluster, namespace, "WebhookFailed"), "a WebhookFailed event", 60)
    assert "spec.notify.webhookSecret (nowhere/url)" in warning["message"]
    assert "does not exist" in warning["message"]


def test_metrics_count_runs_and_broadcasts_and_the_health_endpoint_answers(
    cluster: Cluster, namespace: str, controller: Controller
) -> None:
    cluster.apply(a_broadcast("counted").set(schedule="0 6 * * *").in_namespace(namespace).dict())
    wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")
    result = RunResult(status="Succeeded", broadcast="counted", run_id="r", video="/v.mp4", stories=1)
    run_to_the_end(cluster, namespace, "counted", 0, result)
    line = f'anchor_runs_total{{broadcast="counted",namespace="{namespace}",reason="RunSucceeded",result="Succeeded"}}'
    ours = f'{{broadcast="counted",namespace="{namespace}"}}'

    def scraped() -> str | None:  # the run counted, and the broadcast's event with its lastSuccessfulTime seen
        text = requests.get(str(controller.metrics_url), timeout=5).text
        return text if line in text and f"anchor_broadcast_last_success_timestamp_seconds{ours}" in text else None

    text = wait_for(scraped, "the run and the broadcast's last success in the metrics", timeout=60)
    assert f"{line} 1.0" in text
    managed = next(v for v in text.splitlines() if v.startswith("anchor_broadcasts_managed "))
    assert float(managed.split()[1]) >= 1
    assert "anchor_run_duration_seconds_bucket" in text and "anchor_reconcile_duration_seconds_count" in text
    health = requests.get(str(controller.health_url), timeout=5)
    assert health.status_code == 200

    # The broadcast's clock: its last success, and the run it now waits on, the next 06:00 UTC after that success.
    succeeded = datetime.fromisoformat(cluster.get("nb", "counted", "-n", namespace)["status"]["lastSuccessfulTime"])
    due = datetime.combine(succeeded.date(), time(6), UTC) + timedelta(days=succeeded.hour >= 6)
    samples = dict(v.rsplit(" ", 1) for v in text.splitlines() if v and not v.startswith("#"))
    assert float(samples[f"anchor_broadcast_last_success_timestamp_seconds{ours}"]) == succeeded.timestamp()
    assert float(samples[f"anchor_broadcast_next_schedule_timestamp_seconds{ours}"]) == due.timestamp()
    failed = f'anchor_broadcast_last_run_failed{{broadcast="counted",namespace="{namespace}",reason="RunSucceeded"}}'
    assert float(samples[failed]) == 0
    # The chart's dashboard and alert rules name only metrics this controller serves (each family has # TYPE even
    # before its first sample).
    offered = exported(text)
    dashboard = json.loads((REPO / "charts" / "anchor" / "files" / "dashboard.json").read_text())
    named = {name for query in dashboard_queries(dashboard) for name in metric_names(query)}
    assert named <= offered, sorted(named - offered)
    rule = subprocess.run(
        [str(tool("helm")), "template", "news", str(REPO / "charts" / "anchor"), "--show-only",
         "templates/prometheusrule.yaml", "--set", "monitoring.prometheusRule.enabled=true",
         "--set", "monitoring.prometheusRule.cost.dailyBudget=1"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    named = {name for expression in rule_expressions(yaml.safe_load(rule)) for name in metric_names(expression)}
    assert named <= offered, sorted(named - offered)
