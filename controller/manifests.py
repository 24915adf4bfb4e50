"""Pure builders: a NewsBroadcast (and the operator's settings) in, Kubernetes objects as dicts out.

No API calls here. The handlers add owner references (kopf.adopt) and send what these return.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from api.cost import ALLOCATION_VARIABLE, GpuAllocation
from api.result import ExitCode
from api.v1alpha1 import API_VERSION, KIND, NewsBroadcast
from controller.settings import Settings

JOB_CONTAINER = "job"
ENGINE_CONTAINER = "voicevox"
BROADCAST_LABEL = "anchor.news/broadcast"
RUN_NOW_TOKEN = "anchor.news/run-now-token"
JOB_UID = 10001  # the job image's user
ENGINE_DATA = "/var/lib/voicevox"
GPU_CLAIM = "gpu"
"""The pod's ResourceClaim (dra mode), which the engine and the job containers both name."""


def shares_gpu(broadcast: NewsBroadcast, settings: Settings) -> bool:
    """Whether the run's pod gets its GPUs through a ResourceClaim both containers share (dra mode, a GPU asked)."""
    return settings.gpu_allocation == "dra" and broadcast.spec.gpu.count > 0


def claim_template_name(broadcast_name: str) -> str:
    return f"{broadcast_name[: 253 - 4]}-gpu"


def resource_claim_template(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any] | None:
    """The ResourceClaimTemplate each run's pod claims its GPUs from in dra mode (None otherwise): spec.gpu.count
    devices of the configured DeviceClass, one claim per pod, made and freed with the pod by Kubernetes."""
    if not shares_gpu(broadcast, settings):
        return None
    metadata: dict[str, Any] = {"name": claim_template_name(broadcast.name), "labels": labels(broadcast.name)}
    if broadcast.metadata.namespace:
        metadata["namespace"] = broadcast.metadata.namespace
    request = {"deviceClassName": settings.gpu_device_class, "allocationMode": "ExactCount",
               "count": broadcast.spec.gpu.count}  # fmt: skip
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": metadata,
        "spec": {"spec": {"devices": {"requests": [{"name": GPU_CLAIM, "exactly": request}]}}},
    }


def labels(broadcast_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "anchor",
        "app.kubernetes.io/instance": broadcast_name,
        "app.kubernetes.io/component": "broadcast",
        "app.kubernetes.io/managed-by": "anchor-controller",
        BROADCAST_LABEL: broadcast_name,
    }


def broadcast_json(broadcast: NewsBroadcast) -> str:
    """What the job validates: the user's spec as written (no defaults filled in), name and namespace."""
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {k: v for k, v in (("name", broadcast.name), ("namespace", broadcast.metadata.namespace)) if v},
        "spec": broadcast.spec.model_dump(mode="json", by_alias=True, exclude_unset=True),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _job_env(broadcast: NewsBroadcast, settings: Settings) -> list[dict[str, Any]]:
    spec = broadcast.spec
    env: list[dict[str, Any]] = [
        {"name": "ANCHOR_BROADCAST", "value": broadcast_json(broadcast)},
        {"name": "ANCHOR_VOICEVOX_URL", "value": f"http://127.0.0.1:{settings.engine_port}"},
        {
            "name": "ANCHOR_RUN_ID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}},
        },
        {"name": "ANCHOR_ENGINE_USE_GPU", "value": "true" if spec.gpu.count > 0 else "false"},
        {"name": "TMPDIR", "value": "/tmp"},
    ]
    s3 = spec.output.s3
    if s3 is not None and s3.credentials is not None:
        credentials = s3.credentials
        env.append(_secret_env("ANCHOR_S3_ACCESS_KEY_ID", credentials.secret_name, credentials.access_key_id_key))
        env.append(
            _secret_env("ANCHOR_S3_SECRET_ACCESS_KEY", credentials.secret_name, credentials.secret_access_key_key)
        )
    llm = spec.script.llm
    if llm is not None and llm.api_key_secret is not None:
        env.append(_secret_env("ANCHOR_LLM_API_KEY", llm.api_key_secret.name, llm.api_key_secret.key))
    if spec.gpu.count > 0:  # what the pod holds and its price, for the manifest's estimate (api/cost.py)
        allocation = GpuAllocation(
            resource=spec.gpu.resource_name,
            count=spec.gpu.count,
            currency=settings.cost_currency,
            price=settings.gpu_prices.get(spec.gpu.resource_name),
        )
        env.append({"name": ALLOCATION_VARIABLE, "value": allocation.to_env()})
    return env


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _engine(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any]:
    gpu = broadcast.spec.gpu
    port = settings.engine_port
    # The engine listens on 127.0.0.1 only, which a kubelet httpGet probe (from the node) cannot reach: probe
    # from inside the container with bash's /dev/tcp (the official images are Ubuntu-based, without curl).
    probe = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /version HTTP/1.0\\r\\n\\r\\n' >&3 "
        "&& head -n1 <&3 | grep -q ' 200 '"
    )
    args = ["--host", "127.0.0.1", "--port", str(port), "--disable_mutable_api"]
    resources: dict[str, Any] = {
        "requests": {"cpu": settings.engine_cpu, "memory": settings.engine_memory_request},
        "limits": {"memory": settings.engine_memory},
    }
    if gpu.count > 0:
        args.append("--use_gpu")
    if shares_gpu(broadcast, settings):
        resources["claims"] = [{"name": GPU_CLAIM}]
    elif gpu.count > 0:
        resources["limits"][gpu.resource_name] = str(gpu.count)
        resources["requests"][gpu.resource_name] = str(gpu.count)
    return {
        "name": ENGINE_CONTAINER,
        "image": settings.engine_gpu_image if gpu.count > 0 else settings.engine_cpu_image,
        "imagePullPolicy": settings.engine_image_pull_policy,
        # The image's own entrypoint switches user with gosu, which a non-root pod cannot; run the engine directly.
        "command": ["/opt/voicevox_engine/run"],
        "args": args,
        "restartPolicy": "Always",  # a native sidecar: started before the job, stopped after it
        "env": [
            {"name": "XDG_DATA_HOME", "value": ENGINE_DATA},  # presets and the user dictionary land here
            {"name": "HOME", "value": "/tmp"},
        ],
        "startupProbe": {
            "exec": {"command": ["bash", "-c", probe]},
            "periodSeconds": 2,
            "failureThreshold": 150,  # loading the models takes a while on a cold node
            "timeoutSeconds": 2,
        },
        "resources": resources,
        "securityContext": {**_container_security(), "runAsUser": settings.engine_user},
        "volumeMounts": [
            {"name": "engine-data", "mountPath": ENGINE_DATA},
            {"name": "engine-tmp", "mountPath": "/tmp"},
        ],
    }


def _job_container(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "requests": {"cpu": settings.job_cpu, "memory": settings.job_memory_request},
        "limits": {"memory": settings.job_memory},
    }
    if shares_gpu(broadcast, settings):  # the engine's GPU, for NVENC and the telemetry
        resources["claims"] = [{"name": GPU_CLAIM}]
    return {
        "name": JOB_CONTAINER,
        "image": settings.job_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["anchor"],
        "args": ["render"],
        "env": _job_env(broadcast, settings),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": resources,
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
    }


def pod_spec(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any]:
    spec = broadcast.spec
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.scheduling.tolerations]
    if spec.gpu.count > 0:
        tolerations.insert(0, {"key": spec.gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"})
    pod: dict[str, Any] = {
        "restartPolicy": "Never",  # a podFailurePolicy needs it; retries are new pods
        "automountServiceAccountToken": False,  # the job never talks to the API server
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": JOB_UID,
            "runAsGroup": JOB_UID,
            "fsGroup": JOB_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [_engine(broadcast, settings)],
        "containers": [_job_container(broadcast, settings)],
        "volumes": [
            {"name": "scratch", "emptyDir": {"sizeLimit": "4Gi"}},
            {"name": "engine-data", "emptyDir": {"sizeLimit": "256Mi"}},
            {"name": "engine-tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if shares_gpu(broadcast, settings):
        pod["resourceClaims"] = [{"name": GPU_CLAIM, "resourceClaimTemplateName": claim_template_name(broadcast.name)}]
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if tolerations:
        pod["tolerations"] = tolerations
    scheduling = spec.scheduling
    if scheduling.node_selector:
        pod["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.affinity:
        pod["affinity"] = copy.deepcopy(scheduling.affinity)
    if scheduling.runtime_class_name:
        pod["runtimeClassName"] = scheduling.runtime_class_name
    if scheduling.priority_class_name:
        pod["priorityClassName"] = scheduling.priority_class_name
    return pod


def _pod_metadata(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any]:
    """The pod template's labels (the operator's settings add theirs; they cannot override ours) and annotations."""
    metadata: dict[str, Any] = {"labels": {**settings.pod_labels, **labels(broadcast.name)}}
    if settings.pod_annotations:
        metadata["annotations"] = dict(settings.pod_annotations)
    return metadata


def job_template(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any]:
    """The JobTemplateSpec shared by the CronJob, one-off runs and run-now."""
    run = broadcast.spec.run
    job_spec: dict[str, Any] = {
        "backoffLimit": run.backoff_limit,
        "activeDeadlineSeconds": run.active_deadline_seconds,
        "podFailurePolicy": {
            "rules": [
                # Node drain, spot preemption, eviction: not the run's fault, never counted.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                # Bad configuration: retrying cannot help.
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": JOB_CONTAINER,
                        "operator": "In",
                        "values": [int(ExitCode.CONFIG_ERROR)],
                    },
                },
            ]
        },
        "template": {"metadata": _pod_metadata(broadcast, settings), "spec": pod_spec(broadcast, settings)},
    }
    if run.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = run.ttl_seconds_after_finished
    return {"metadata": {"labels": {**labels(broadcast.name), **queue_labels(broadcast, settings)}}, "spec": job_spec}


QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


def queue_labels(broadcast: NewsBroadcast, settings: Settings) -> dict[str, str]:
    """Kueue's labels for each run's Job (the CronJob's jobTemplate and one-off Jobs alike): the LocalQueue it waits
    in and its WorkloadPriorityClass. Kueue's webhook suspends a labelled Job until its Workload is admitted; with
    no queue named, none (a priority class alone means nothing to Kueue)."""
    scheduling = broadcast.spec.scheduling
    queue = scheduling.queue_name or settings.queue_name
    if not queue:
        return {}
    found = {QUEUE_LABEL: queue}
    if scheduling.workload_priority_class_name:
        found[PRIORITY_LABEL] = scheduling.workload_priority_class_name
    return found


def cronjob(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any]:
    spec = broadcast.spec
    if spec.schedule is None:
        raise ValueError("a CronJob needs spec.schedule")
    cron: dict[str, Any] = {
        "schedule": spec.schedule,
        "timeZone": spec.time_zone,
        "suspend": spec.suspend,
        "concurrencyPolicy": spec.run.concurrency_policy,
        "successfulJobsHistoryLimit": spec.run.successful_runs_history_limit,
        "failedJobsHistoryLimit": spec.run.failed_runs_history_limit,
        "jobTemplate": job_template(broadcast, settings),
    }
    if spec.run.starting_deadline_seconds is not None:
        cron["startingDeadlineSeconds"] = spec.run.starting_deadline_seconds
    metadata: dict[str, Any] = {"name": broadcast.name, "labels": labels(broadcast.name)}
    if broadcast.metadata.namespace:
        metadata["namespace"] = broadcast.metadata.namespace
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata, "spec": cron}


def _job(name: str, template: Mapping[str, Any], namespace: str | None, annotations: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": dict(template.get("metadata", {}).get("labels", {}))}
    if annotations:
        metadata["annotations"] = annotations
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": copy.deepcopy(template["spec"])}


def one_off_job(broadcast: NewsBroadcast, settings: Settings) -> dict[str, Any]:
    """The single run of a broadcast without a schedule; its fixed name makes creating it idempotent."""
    return _job(f"{broadcast.name}-once", job_template(broadcast, settings), broadcast.metadata.namespace, {})


def job_from_cronjob(cronjob: Mapping[str, Any], token: str) -> dict[str, Any]:
    """A run now, as `kubectl create job --from=cronjob/NAME` makes it; one name per token."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:10]
    name = f"{cronjob['metadata']['name'][: 63 - 15]}-now-{digest}"
    annotations = {"cronjob.kubernetes.io/instantiate": "manual", RUN_NOW_TOKEN: token[:253]}
    return _job(name, cronjob["spec"]["jobTemplate"], cronjob["metadata"].get("namespace"), annotations)
