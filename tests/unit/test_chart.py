"""The Helm chart: lints, renders valid objects for both watch modes, and its schema refuses bad values."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from api.crd import crd
from controller import manifests
from controller.selftest import DRA, KUEUE, PERMISSIONS, SECRETS
from controller.settings import Settings
from tests.support.builders import a_broadcast
from tests.support.tools import REPO, tool

CHART = REPO / "charts" / "anchor"


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, timeout=120)


def _render(*sets: str, files: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", "news", str(CHART), "--namespace", "anchor-system", "--include-crds"]
    for value in sets:
        args += ["--set", value]
    for path in files:
        args += ["--values", path]
    done = _helm(*args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


MONITORING = (
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.prometheusRule.cost.dailyBudget=5",
    "monitoring.dashboard.enabled=true",
)


@pytest.mark.parametrize("sets", [(), MONITORING])
def test_chart_lints(sets: tuple[str, ...]) -> None:
    done = _helm("lint", str(CHART), "--strict", *(a for s in sets for a in ("--set", s)))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "sets", [(), ("controller.namespaces={news,sports}", "controller.replicas=2"), MONITORING], ids=str
)
def test_rendered_objects_are_valid_kubernetes_objects(sets: tuple[str, ...]) -> None:
    objects = _render(*sets)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith(("kopf.dev/", "monitoring.coreos.com/")):
            continue  # kopf's peering kinds, the Prometheus Operator's (see test_monitoring.py): no official schema
        kubernetes_validate.validate(obj, "1.36", strict=True)


def test_the_chart_ships_the_generated_crd_unchanged_and_keeps_it_on_uninstall() -> None:
    (rendered,) = [o for o in _render() if o["metadata"]["name"] == "newsbroadcasts.anchor.news"]
    generated = crd()
    assert rendered["spec"] == generated["spec"]
    assert generated["metadata"]["labels"].items() <= rendered["metadata"]["labels"].items()
    assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    (dropped,) = [o for o in _render("crds.keep=false") if o["metadata"]["name"] == rendered["metadata"]["name"]]
    assert "annotations" not in dropped["metadata"]
    names = {o["metadata"]["name"] for o in _render("crds.enabled=false")}
    assert "newsbroadcasts.anchor.news" not in names and "kopfpeerings.kopf.dev" in names  # kopf's stay in crds/


def test_controller_pod_is_restricted_and_least_privileged() -> None:
    objects = _render()
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert not env["ANCHOR_ENGINE_GPU_IMAGE"].endswith(":latest")
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    verbs = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert verbs[(("",), ("secrets",))] == {"get"}
    deleting = {pair for pair, allowed in verbs.items() if "delete" in allowed}
    assert deleting == {(("batch",), ("cronjobs",))}, "delete only retires a CronJob whose schedule was removed"
    assert ("*",) not in {r for pair in verbs for r in pair}


def test_without_webhooks_the_controller_reads_no_secret() -> None:
    for kind in ("ClusterRole", "Role"):
        sets = ("webhook.readSecrets=false",) + (("controller.namespaces={news}",) if kind == "Role" else ())
        (role,) = [o for o in _render(*sets) if o["kind"] == kind and not o["metadata"]["name"].endswith("-test")]
        assert "secrets" not in {r for rule in role["rules"] for r in rule["resources"]}


def test_namespaced_mode_uses_roles_only() -> None:
    kinds = [o["kind"] for o in _render("controller.namespaces={news}")]
    assert "Role" in kinds and "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("controler.replicas=2", "additional properties 'controler' not allowed"),
        ("controller.replicas=many", "want integer"),
        ("engine.gpuImage=voicevox/voicevox_engine:latest", "gpuImage"),
        ("job.image.tag=latest", "tag"),
        ("webhook.allowedNetworks={intranet}", "allowedNetworks"),
        ("job.resources.limits.cpu=2", "additional properties 'cpu' not allowed"),
        ("job.resources.requests.memory=lots", "memory"),
        ("engine.pullPolicy=Sometimes", "pullPolicy"),
        ("imagePullSecrets={regcred}", "imagePullSecrets"),
        ("s3store.image=chrislusf/seaweedfs:latest", "image"),
    ],
)
def test_values_schema_refuses_typos_and_latest(value: str, words: str) -> None:
    done = _helm("template", "news", str(CHART), "--set", value)
    assert done.returncode != 0 and words in done.stderr


def test_metrics_are_served_and_scrapable_and_webhook_networks_reach_the_controller() -> None:
    objects = _render("webhook.allowedNetworks={10.96.0.0/12,192.168.5.0/24}")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--metrics=0.0.0.0:9090" in container["args"]
    assert {"name": "metrics", "containerPort": 9090} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ANCHOR_WEBHOOK_ALLOWED_NETWORKS"] == "10.96.0.0/12,192.168.5.0/24"
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["health", "metrics"]
    off = _render("metrics.enabled=false")
    (service,) = [o for o in off if o["kind"] == "Service"]
    assert "annotations" not in service["metadata"] and [p["name"] for p in service["spec"]["ports"]] == ["health"]
    (container,) = next(o for o in off if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--metrics=" in container["args"]


def _controller_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "news-anchor"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_run_values_reach_every_broadcast_pod_through_the_controllers_settings() -> None:
    objects = _render(
        "imagePullSecrets[0].name=regcred",
        "job.image.pullPolicy=Always",
        "engine.pullPolicy=Never",
        "job.resources.requests.cpu=250m",
        "job.resources.requests.memory=768Mi",
        "job.resources.limits.memory=3Gi",
        "engine.resources.requests.cpu=2",
        "engine.resources.limits.memory=8Gi",
        "job.podAnnotations.cost-center=news",
        "job.podLabels.team=newsroom",
        "job.queueName=gpu-queue",
        "controller.podAnnotations.scrape=yes",
    )
    settings = Settings.from_env(_controller_env(objects))
    template = manifests.cronjob(a_broadcast("daily").set(schedule="0 7 * * *").model(), settings)
    pod = template["spec"]["jobTemplate"]["spec"]["template"]
    (job,), (engine,) = pod["spec"]["containers"], pod["spec"]["initContainers"]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert (job["imagePullPolicy"], engine["imagePullPolicy"]) == ("Always", "Never")
    assert job["resources"] == {"requests": {"cpu": "250m", "memory": "768Mi"}, "limits": {"memory": "3Gi"}}
    assert engine["resources"]["requests"]["cpu"] == "2" and engine["resources"]["limits"]["memory"] == "8Gi"
    assert pod["metadata"]["annotations"] == {"cost-center": "news"}
    assert pod["metadata"]["labels"]["team"] == "newsroom"
    assert template["spec"]["jobTemplate"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"scrape": "yes"}
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_the_defaults_are_the_controllers_own() -> None:
    assert Settings.from_env(_controller_env(_render())) == Settings(
        job_image="ghcr.io/anchor-news/anchor-job:0.1.0", engine_pull_policy="IfNotPresent"
    )


@pytest.mark.parametrize("preset", ["gpu", "cpu", "dev"])
def test_presets_render_valid_objects_and_settings_the_controller_accepts(preset: str) -> None:
    objects = _render(files=(str(CHART / "presets" / f"{preset}.yaml"),))
    for obj in objects:
        if not obj["apiVersion"].startswith("kopf.dev/"):
            kubernetes_validate.validate(obj, "1.36", strict=True)
    settings = Settings.from_env(_controller_env(objects))
    stores = [o for o in objects if o["metadata"]["name"] == "news-anchor-s3"]
    if preset == "dev":
        assert settings.engine_cpu_image == settings.engine_gpu_image and "voicevox-mock" in settings.engine_cpu_image
        assert {o["kind"] for o in stores} == {"Deployment", "Service", "NetworkPolicy"}
        secret = next(o for o in objects if o["kind"] == "Secret")
        assert set(secret["data"]) == {"accessKeyId", "secretAccessKey"}
    else:
        assert not stores and "voicevox_engine" in settings.engine_gpu_image


def test_helm_test_checks_exactly_the_permissions_the_chart_grants() -> None:
    variants = ((), ("controller.namespaces={news}",), ("webhook.readSecrets=false",), ("kueue.enabled=true",),
                ("gpu.allocation=dra",))  # fmt: skip
    for sets in variants:
        objects = _render(*sets)
        role = next(
            o for o in objects if o["kind"] in ("ClusterRole", "Role") and not o["metadata"]["name"].endswith("-test")
        )
        granted = {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
            if group != "kopf.dev"
        }
        checked = PERMISSIONS + ((SECRETS,) if "webhook.readSecrets=false" not in sets else ())
        checked += KUEUE if "kueue.enabled=true" in sets else ()
        checked += (DRA,) if "gpu.allocation=dra" in sets else ()
        assert granted == {(p.group, p.resource, verb) for p in checked for verb in p.verbs}
        (pod,) = [o for o in objects if o["kind"] == "Pod"]
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert pod["spec"]["serviceAccountName"] == "news-anchor"
        assert pod["spec"]["containers"][0]["command"] == ["anchor", "selftest"]
        assert ("--watch=news" in pod["spec"]["containers"][0]["args"]) == bool(sets and "namespaces" in sets[0])
        assert ("--kueue" in pod["spec"]["containers"][0]["args"]) == ("kueue.enabled=true" in sets)
        assert ("--dra" in pod["spec"]["containers"][0]["args"]) == ("gpu.allocation=dra" in sets)


def test_queueing_reads_kueues_workloads_only_when_asked_and_read_only() -> None:
    for sets, on in (((), False), (("kueue.enabled=true",), True), (("job.queueName=gpu",), True)):
        objects = _render(*sets)
        (role,) = [o for o in objects if o["kind"] == "ClusterRole" and not o["metadata"]["name"].endswith("-test")]
        kueue = {(r, v) for rule in role["rules"] if "kueue.x-k8s.io" in rule["apiGroups"]
                 for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip
        expected = {("workloads", "get"), ("workloads", "list"), ("workloads", "watch"), ("localqueues", "get")}
        assert kueue == (expected if on else set())
        assert (_controller_env(objects).get("ANCHOR_KUEUE") == "true") == on
        assert Settings.from_env(_controller_env(objects)).kueue is on


def test_notes_tell_the_next_commands_and_where_the_video_appears() -> None:
    done = _helm("install", "news", str(CHART), "--dry-run=client", "--namespace", "anchor-system")
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert "helm test news -n anchor-system" in notes and "kubectl annotate -n news nb/daily-ja" in notes
    assert "k8s/samples/daily-ja-gpu-s3.yaml" in notes and "status.lastRun.video" in notes and "CHANGE" in notes
    dev = _helm("install", "news", str(CHART), "--dry-run=client", "-f", str(CHART / "presets" / "dev.yaml"))
    assert "news-anchor-s3.default.svc:8333" in dev.stdout.split("NOTES:", 1)[1]
    assert (REPO / "k8s" / "samples" / "daily-ja-gpu-s3.yaml").is_file()


def test_the_chart_readme_is_generated_from_the_values_comments() -> None:
    helm_docs = tool("helm-docs", version_of="helm_docs")
    done = subprocess.run(
        [str(helm_docs), "--dry-run", "--chart-search-root", "charts", "--template-files", "README.md.gotmpl",
         "--log-level", "warning"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (CHART / "README.md").read_text(encoding="utf-8"), "run `make manifests` and commit"
    assert "| job.resources |" in done.stdout and "--take-ownership" in done.stdout


def test_a_price_table_reaches_the_controller_and_bad_prices_are_refused(tmp_path: Path) -> None:
    values = tmp_path / "cost.yaml"
    values.write_text("cost:\n  currency: EUR\n  gpuPrices:\n    nvidia.com/gpu: {onDemand: 2.5, spot: 0.9}\n")
    settings = Settings.from_env(_controller_env(_render(files=(str(values),))))
    (price,) = settings.gpu_prices.values()
    assert (settings.cost_currency, price.on_demand, price.spot) == ("EUR", 2.5, 0.9)
    assert "ANCHOR_GPU_PRICES" not in _controller_env(_render()), "no table: no cost"
    done = _helm("template", "news", str(CHART), "--set", "cost.gpuPrices.gpu.onDemand=1")
    assert done.returncode != 0 and "'gpu' does not match pattern" in done.stderr  # not a resource name


def test_dra_mode_reaches_the_controller_and_every_run_shares_one_claim_between_engine_and_job() -> None:
    objects = _render("gpu.allocation=dra", "gpu.deviceClassName=gpu.example.com")
    settings = Settings.from_env(_controller_env(objects))
    assert (settings.gpu_allocation, settings.gpu_device_class) == ("dra", "gpu.example.com")
    broadcast = a_broadcast("daily").set(schedule="0 7 * * *", gpu={"count": 2}).in_namespace("news").model()
    pod = manifests.cronjob(broadcast, settings)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (job,), (engine,) = pod["containers"], pod["initContainers"]
    assert pod["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": "daily-gpu"}]
    assert job["resources"]["claims"] == engine["resources"]["claims"] == [{"name": "gpu"}]
    assert "nvidia.com/gpu" not in {**engine["resources"]["limits"], **engine["resources"]["requests"]}
    template = manifests.resource_claim_template(broadcast, settings)
    assert template is not None and template["metadata"]["name"] == "daily-gpu"
    (request,) = template["spec"]["spec"]["devices"]["requests"]
    assert request == {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com", "allocationMode": "ExactCount",
                                                  "count": 2}}  # fmt: skip
    cpu = a_broadcast("cpu").set(gpu={"count": 0}).in_namespace("news").model()
    assert manifests.resource_claim_template(cpu, settings) is None
    assert "resourceClaims" not in manifests.pod_spec(cpu, settings)
    plugin = manifests.pod_spec(broadcast, Settings.from_env(_controller_env(_render())))
    assert (
        "resourceClaims" not in plugin and plugin["initContainers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    )
