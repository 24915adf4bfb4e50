"""The controller's pure builders: valid objects per the official schemas, restricted Pod Security, GPU sidecar."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest

from api.load import parse_broadcast
from controller import manifests
from controller.settings import Settings, SettingsError
from tests.support.builders import BroadcastBuilder, a_broadcast

SETTINGS = Settings()
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _broadcast(builder: BroadcastBuilder | None = None) -> Any:
    builder = builder or a_broadcast("morning-news").set(schedule="0 7 * * *", timeZone="Asia/Tokyo")
    document = builder.dict()
    document["metadata"]["namespace"] = "news"
    return parse_broadcast(document)


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The restricted Pod Security Standard's checks that apply to these pods."""
    problems = []
    security = pod.get("securityContext", {})
    if security.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("pod seccompProfile")
    for container in pod.get("initContainers", []) + pod["containers"]:
        context = container.get("securityContext", {})
        name = container["name"]
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        if context.get("capabilities", {}).get("drop") != ["ALL"] or set(
            context.get("capabilities", {}).get("add", [])
        ) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities")
        if context.get("runAsNonRoot", security.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot")
        if context.get("runAsUser", security.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
    for volume in pod.get("volumes", []):
        allowed = {
            "name",
            "emptyDir",
            "configMap",
            "secret",
            "projected",
            "downwardAPI",
            "persistentVolumeClaim",
            "ephemeral",
            "csi",
        }
        if set(volume) - allowed:
            problems.append(f"volume {volume['name']}: type")
    return problems


@pytest.mark.parametrize("gpus", [0, 1, 2])
def test_cronjob_is_a_valid_restricted_object(gpus: int) -> None:
    builder = a_broadcast("morning-news").set(schedule="0 7 * * *", timeZone="Asia/Tokyo", gpu={"count": gpus})
    cron = manifests.cronjob(_broadcast(builder), SETTINGS)
    kubernetes_validate.validate(cron, "1.36", strict=True)
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert cron["spec"]["schedule"] == "0 7 * * *" and cron["spec"]["timeZone"] == "Asia/Tokyo"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_gpu_goes_to_the_engine_sidecar_with_the_gpu_image_and_toleration() -> None:
    builder = a_broadcast("gpu").set(schedule="@hourly", gpu={"count": 2, "resourceName": "nvidia.com/mig-1g.10gb"})
    pod = manifests.cronjob(_broadcast(builder), SETTINGS)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (engine,) = pod["initContainers"]
    (job,) = pod["containers"]
    assert engine["restartPolicy"] == "Always"
    assert engine["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "2"
    assert "--use_gpu" in engine["args"] and engine["image"] == SETTINGS.engine_gpu_image
    assert engine["args"][:2] == ["--host", "127.0.0.1"]
    assert "exec" in engine["startupProbe"] and "/version" in engine["startupProbe"]["exec"]["command"][-1]
    assert not any("nvidia" in k for k in job["resources"].get("limits", {}))
    assert {"key": "nvidia.com/mig-1g.10gb", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_cpu_broadcast_uses_the_cpu_image_without_gpu_or_toleration() -> None:
    builder = a_broadcast("cpu").set(schedule="@daily", gpu={"count": 0})
    pod = manifests.cronjob(_broadcast(builder), SETTINGS)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (engine,) = pod["initContainers"]
    assert engine["image"] == SETTINGS.engine_cpu_image and "--use_gpu" not in engine["args"]
    assert "tolerations" not in pod
    assert not any("gpu" in k for k in engine["resources"]["limits"])


def test_pod_failure_policy_fails_fast_on_bad_configuration_and_ignores_disruptions() -> None:
    job = manifests.cronjob(_broadcast(), SETTINGS)["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules
    assert {"action": "FailJob", "onExitCodes": {"containerName": "job", "operator": "In", "values": [2]}} in rules
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert (job["backoffLimit"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) == (2, 3600, 86400)


def test_secrets_only_by_reference_and_the_broadcast_parses_back() -> None:
    builder = (
        a_broadcast("s3-news")
        .set(schedule="@daily")
        .s3(endpoint="minio.minio:9000", bucket="news", credentials={"secretName": "minio-creds"})
        .script(llm={"endpoint": "http://vllm:8000/v1", "model": "m", "apiKeySecret": {"name": "llm", "key": "token"}})
    )
    broadcast = _broadcast(builder)
    pod = manifests.cronjob(broadcast, SETTINGS)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["ANCHOR_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "minio-creds",
        "key": "secretAccessKey",
    }
    assert env["ANCHOR_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "minio-creds", "key": "accessKeyId"}
    assert env["ANCHOR_LLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "llm", "key": "token"}
    assert all("value" not in e for name, e in env.items() if "KEY" in name)
    assert env["ANCHOR_RUN_ID"]["valueFrom"]["fieldRef"]["fieldPath"].endswith("['batch.kubernetes.io/job-name']")
    assert parse_broadcast(json.loads(env["ANCHOR_BROADCAST"]["value"])).spec == broadcast.spec


def test_scheduling_fields_pass_through() -> None:
    builder = a_broadcast("placed").set(
        schedule="@daily",
        scheduling={
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"},
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
            "runtimeClassName": "nvidia",
            "priorityClassName": "batch-low",
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        },
    )
    cron = manifests.cronjob(_broadcast(builder), SETTINGS)
    kubernetes_validate.validate(cron, "1.36", strict=True)
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert pod["runtimeClassName"] == "nvidia" and pod["priorityClassName"] == "batch-low"
    assert {"key": "spot", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "nodeAffinity" in pod["affinity"]


def test_one_off_and_run_now_jobs() -> None:
    once = manifests.one_off_job(_broadcast(a_broadcast("once-only")), SETTINGS)
    kubernetes_validate.validate(once, "1.36", strict=True)
    assert once["metadata"]["name"] == "once-only-once"
    cron = manifests.cronjob(_broadcast(a_broadcast("x" * 52).set(schedule="@daily")), SETTINGS)
    first, again, other = (manifests.job_from_cronjob(cron, t) for t in ("tok-1", "tok-1", "tok-2"))
    kubernetes_validate.validate(first, "1.36", strict=True)
    assert first["metadata"]["name"] == again["metadata"]["name"] != other["metadata"]["name"]
    for job in (first, other):
        assert len(job["metadata"]["name"]) <= 63 and DNS_1123.match(job["metadata"]["name"])
        assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert first["spec"] == cron["spec"]["jobTemplate"]["spec"]


def test_labels_everywhere() -> None:
    cron = manifests.cronjob(_broadcast(), SETTINGS)
    for metadata in (
        cron["metadata"],
        cron["spec"]["jobTemplate"]["metadata"],
        cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
    ):
        assert metadata["labels"]["anchor.news/broadcast"] == "morning-news"
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "anchor-controller"


def test_settings_from_env_name_the_variable() -> None:
    assert Settings.from_env({"ANCHOR_JOB_IMAGE": "registry.example/anchor-job:1.2.3"}).job_image.endswith(":1.2.3")
    with pytest.raises(SettingsError, match=r"ANCHOR_ENGINE_GPU_IMAGE: .*never latest"):
        Settings.from_env({"ANCHOR_ENGINE_GPU_IMAGE": "voicevox/voicevox_engine:latest"})
    with pytest.raises(SettingsError, match=r"ANCHOR_ENGINE_PORT: "):
        Settings.from_env({"ANCHOR_ENGINE_PORT": "eighty"})
    assert (Settings.from_env({}).workers, Settings.from_env({"ANCHOR_WORKERS": "4"}).workers) == (16, 4)
    with pytest.raises(SettingsError, match=r"ANCHOR_WORKERS: .*greater than or equal to 1"):
        Settings.from_env({"ANCHOR_WORKERS": "0"})


def test_cpu_requests_come_from_the_settings_and_bad_quantities_name_the_variable() -> None:
    broadcast = a_broadcast().feed("https://news.example/feed.xml").model()
    pod = manifests.pod_spec(broadcast, Settings.from_env({"ANCHOR_JOB_CPU": "250m", "ANCHOR_ENGINE_CPU": "0.5"}))
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == "250m"
    assert pod["initContainers"][0]["resources"]["requests"]["cpu"] == "0.5"
    with pytest.raises(SettingsError, match=r"ANCHOR_JOB_CPU: '1 core' is not a CPU quantity such as 500m or 2"):
        Settings.from_env({"ANCHOR_JOB_CPU": "1 core"})
    with pytest.raises(SettingsError, match=r"ANCHOR_ENGINE_CPU: '0m' is not a CPU quantity"):
        Settings.from_env({"ANCHOR_ENGINE_CPU": "0m"})
    with pytest.raises(SettingsError, match=r"ANCHOR_JOB_MEMORY: '2GB' is not a memory quantity"):
        Settings.from_env({"ANCHOR_JOB_MEMORY": "2GB"})


def test_pull_secrets_pod_metadata_memory_and_engine_pull_policy_come_from_the_settings() -> None:
    settings = Settings.from_env(
        {
            "ANCHOR_IMAGE_PULL_SECRETS": "regcred, mirror.creds",
            "ANCHOR_POD_ANNOTATIONS": '{"cost-center": "news-42"}',
            "ANCHOR_POD_LABELS": '{"team": "newsroom"}',
            "ANCHOR_JOB_MEMORY_REQUEST": "1536Mi",
            "ANCHOR_ENGINE_MEMORY_REQUEST": "3Gi",
            "ANCHOR_IMAGE_PULL_POLICY": "Always",
            "ANCHOR_ENGINE_PULL_POLICY": "IfNotPresent",
        }
    )
    template = manifests.cronjob(_broadcast(), settings)["spec"]["jobTemplate"]["spec"]["template"]
    pod = template["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror.creds"}]
    assert template["metadata"]["annotations"] == {"cost-center": "news-42"}
    assert template["metadata"]["labels"]["team"] == "newsroom"
    assert template["metadata"]["labels"]["anchor.news/broadcast"] == "morning-news"
    (job,), (engine,) = pod["containers"], pod["initContainers"]
    assert (job["resources"]["requests"]["memory"], engine["resources"]["requests"]["memory"]) == ("1536Mi", "3Gi")
    assert (job["imagePullPolicy"], engine["imagePullPolicy"]) == ("Always", "IfNotPresent")
    assert "imagePullSecrets" not in manifests.pod_spec(_broadcast(), SETTINGS)
    kubernetes_validate.validate(manifests.cronjob(_broadcast(), settings), "1.36", strict=True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ANCHOR_POD_LABELS": '{"anchor.news/broadcast": "x"}'}, r"ANCHOR_POD_LABELS: .*set by the controller"),
        ({"ANCHOR_POD_LABELS": '{"team": "news room"}'}, r"ANCHOR_POD_LABELS: label team='news room'"),
        ({"ANCHOR_POD_ANNOTATIONS": "team=news"}, r"ANCHOR_POD_ANNOTATIONS: must be a JSON object"),
        ({"ANCHOR_POD_ANNOTATIONS": '{"a b": "x"}'}, r"ANCHOR_POD_ANNOTATIONS: 'a b' is not a label or annotation"),
        ({"ANCHOR_IMAGE_PULL_SECRETS": "RegCred"}, r"ANCHOR_IMAGE_PULL_SECRETS: 'RegCred' is not a Secret name"),
        ({"ANCHOR_ENGINE_PULL_POLICY": "Sometimes"}, r"ANCHOR_ENGINE_PULL_POLICY: 'Sometimes' is not one of"),
        ({"ANCHOR_ENGINE_MEMORY_REQUEST": "8Gi"}, r"engine container's memory request 8Gi is above its limit 6Gi"),
    ],
)
def test_bad_pod_settings_name_the_variable_and_what_is_allowed(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_a_replica_acts_only_when_no_live_peer_outranks_it() -> None:
    from datetime import UTC, datetime

    from controller.settings import Scope

    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def peer(priority: int, seen: str = "2026-11-25T11:59:30+00:00") -> dict[str, object]:
        return {"priority": priority, "lifetime": 60, "lastseen": seen}

    me = Scope(peering="anchor", priority=10)
    assert me.acts({"me": peer(10), "low": peer(3)}, now)
    assert not me.acts({"me": peer(10), "high": peer(11)}, now)
    assert not me.acts({"me": peer(10), "twin": peer(10)}, now), "kopf freezes replicas of equal priority"
    assert me.acts({"me": peer(10), "gone": peer(99, "2026-11-25T11:58:00+00:00")}, now), "an expired peer"
    assert me.acts({"me": peer(10), "odd": {"priority": 50}}, now), "an entry without lastseen is not alive"
    assert Scope().acts({"x": peer(99)}, now), "standalone always acts"


def test_a_queue_puts_every_run_in_kueue_and_none_leaves_kueue_out() -> None:
    """Kueue takes a Job by its kueue.x-k8s.io/queue-name label (its webhook suspends it until admitted): on the
    CronJob's jobTemplate, so each Job it makes has it, and on one-off and run-now Jobs."""
    queued = a_broadcast("queued").set(
        schedule="@daily", scheduling={"queueName": "gpu-queue", "workloadPriorityClassName": "morning-news"}
    )
    cron = manifests.cronjob(_broadcast(queued), SETTINGS)
    kubernetes_validate.validate(cron, "1.36", strict=True)
    expected = {"kueue.x-k8s.io/queue-name": "gpu-queue", "kueue.x-k8s.io/priority-class": "morning-news"}
    assert expected.items() <= cron["spec"]["jobTemplate"]["metadata"]["labels"].items()
    assert expected.items() <= manifests.job_from_cronjob(cron, "tok")["metadata"]["labels"].items()
    assert "kueue.x-k8s.io/queue-name" not in cron["metadata"]["labels"], "the CronJob itself is not Kueue's"
    once = manifests.one_off_job(_broadcast(a_broadcast("once").set(scheduling={"queueName": "q"})), SETTINGS)
    assert once["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"
    # The chart's default queue, unless the broadcast names its own; no queue at all: no Kueue label at all.
    default = Settings(queue_name="team-gpus")
    assert manifests.queue_labels(_broadcast(), default) == {"kueue.x-k8s.io/queue-name": "team-gpus"}
    assert manifests.queue_labels(_broadcast(queued), default)["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    lone_priority = a_broadcast().set(scheduling={"workloadPriorityClassName": "high"})
    assert manifests.queue_labels(_broadcast(lone_priority), SETTINGS) == {}
    assert not any(
        k.startswith("kueue.x-k8s.io/")
        for k in manifests.cronjob(_broadcast(), SETTINGS)["spec"]["jobTemplate"]["metadata"]["labels"]
    )
