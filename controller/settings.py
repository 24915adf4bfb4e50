"""The operator's settings, from its environment, validated at start-up with errors that name the variable."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from api.cost import RESOURCE_PATTERN, GpuPrice

_CPU = re.compile(r"^\d+(\.\d+)?m?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_PINNED = re.compile(r"^[^\s:@]+(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]{64})$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_QUALIFIED = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_NAME})?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
RESERVED_PREFIXES = ("app.kubernetes.io/", "anchor.news/")
"""Label and annotation prefixes the controller sets on broadcast pods itself; settings may not override them."""

# Environment variable → field. Only these are read; everything has a default but the job image.
VARIABLES = {
    "ANCHOR_JOB_IMAGE": "job_image",
    "ANCHOR_ENGINE_GPU_IMAGE": "engine_gpu_image",
    "ANCHOR_ENGINE_CPU_IMAGE": "engine_cpu_image",
    "ANCHOR_ENGINE_PORT": "engine_port",
    "ANCHOR_ENGINE_USER": "engine_user",
    "ANCHOR_IMAGE_PULL_POLICY": "image_pull_policy",
    "ANCHOR_ENGINE_PULL_POLICY": "engine_pull_policy",
    "ANCHOR_IMAGE_PULL_SECRETS": "image_pull_secrets",
    "ANCHOR_POD_ANNOTATIONS": "pod_annotations",
    "ANCHOR_POD_LABELS": "pod_labels",
    "ANCHOR_QUEUE_NAME": "queue_name",
    "ANCHOR_KUEUE": "kueue",
    "ANCHOR_GPU_ALLOCATION_MODE": "gpu_allocation",
    "ANCHOR_GPU_DEVICE_CLASS": "gpu_device_class",
    "ANCHOR_JOB_MEMORY": "job_memory",
    "ANCHOR_JOB_MEMORY_REQUEST": "job_memory_request",
    "ANCHOR_ENGINE_MEMORY": "engine_memory",
    "ANCHOR_ENGINE_MEMORY_REQUEST": "engine_memory_request",
    "ANCHOR_JOB_CPU": "job_cpu",
    "ANCHOR_ENGINE_CPU": "engine_cpu",
    "ANCHOR_GPU_PRICES": "gpu_prices",
    "ANCHOR_COST_CURRENCY": "cost_currency",
    "ANCHOR_WEBHOOK_ALLOWED_NETWORKS": "webhook_allowed_networks",
    "ANCHOR_WEBHOOK_ATTEMPTS": "webhook_attempts",
    "ANCHOR_WEBHOOK_BACKOFF_SECONDS": "webhook_backoff_seconds",
    "ANCHOR_SWEEP_SECONDS": "sweep_seconds",
    "ANCHOR_QUEUE_POSITION_SECONDS": "queue_position_seconds",
    "ANCHOR_WORKERS": "workers",
}


_RESOURCE = re.compile(RESOURCE_PATTERN)


class SettingsError(ValueError):
    """The operator's environment is wrong; the message names each variable."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job_image: Annotated[str, Field(min_length=1)] = "ghcr.io/anchor-news/anchor-job:0.1.0"
    """Image of the job container (`anchor render`)."""
    engine_gpu_image: str = "voicevox/voicevox_engine:nvidia-0.25.2"
    """VOICEVOX engine image for broadcasts with a GPU."""
    engine_cpu_image: str = "voicevox/voicevox_engine:cpu-0.25.2"
    """VOICEVOX engine image for broadcasts with spec.gpu.count 0."""
    engine_port: Annotated[int, Field(ge=1024, le=65535)] = 50021
    """Port the engine listens on, on 127.0.0.1 inside the pod."""
    engine_user: Annotated[int, Field(ge=1)] = 1000
    """UID of the engine image's unprivileged user (the official images run the engine as `user`, uid 1000)."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of the job container (and of the engine's, unless engine_pull_policy says otherwise)."""
    engine_pull_policy: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    """Secrets (names, comma-separated) every broadcast pod pulls its images with; they live in its namespace."""
    pod_annotations: dict[str, str] = {}
    """Annotations (a JSON object) on every broadcast pod, e.g. for a service mesh or a cost-allocation tool."""
    pod_labels: dict[str, str] = {}
    """Labels (a JSON object) on every broadcast pod; app.kubernetes.io/ and anchor.news/ keys are the controller's."""
    queue_name: Annotated[str | None, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] = None
    """Kueue LocalQueue of every broadcast that names none (spec.scheduling.queueName)."""
    kueue: bool = False
    """Watch Kueue's Workloads (read-only), so a run waiting in a queue shows as Queued with Kueue's words. Their CRD
    must be served when the controller starts (Kueue installed first)."""
    gpu_allocation: Literal["devicePlugin", "dra"] = "devicePlugin"
    """How a run's pod gets its GPU: devicePlugin, an extended resource (nvidia.com/gpu) that only the engine's
    container holds; dra, a ResourceClaim (Dynamic Resource Allocation) that the engine and the job containers share,
    so the job encodes with NVENC and reads the GPU's telemetry in a cluster too."""
    gpu_device_class: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")] = "gpu.nvidia.com"
    """The DeviceClass a run's claim asks for in dra mode (NVIDIA's DRA driver installs gpu.nvidia.com)."""
    job_memory: str = "2Gi"
    """Memory limit of the job container (render and encode)."""
    job_memory_request: str = "1Gi"
    engine_memory: str = "6Gi"
    """Memory limit of the engine container (its voice models)."""
    engine_memory_request: str = "2Gi"
    job_cpu: str = "1"
    """CPU request of the job container (the encode uses what the node has free beyond it)."""
    engine_cpu: str = "1"
    """CPU request of the engine container (synthesis on a GPU node needs little CPU; on a CPU node, more)."""
    gpu_prices: dict[str, GpuPrice] = {}
    """Hourly price per GPU, by resource name (a JSON object such as {"nvidia.com/gpu": {"onDemand": 2.5,
    "spot": 0.9}}): each run's status then carries its estimated cost."""
    cost_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    """The prices' currency (ISO 4217)."""
    webhook_allowed_networks: tuple[str, ...] = ()
    """Networks (CIDR, comma-separated) a webhook may be posted to although they are private, e.g. an in-cluster
    chat server's Service range. Loopback, link-local, metadata and private addresses are refused otherwise."""
    webhook_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    """Tries per webhook delivery (connection failures, timeouts, 408, 429 and 5xx are retried)."""
    webhook_backoff_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0
    """First wait between tries; it doubles each time, up to 60 s."""
    sweep_seconds: Annotated[float, Field(ge=0.5, le=3600)] = 60
    """Period of the sweep that retries reporting finished Jobs an API error left unreported."""
    queue_position_seconds: Annotated[float, Field(ge=0.5, le=3600)] = 15
    """With kueue: how often a Queued run's place in its ClusterQueue (status.activeRun.ahead) is brought up to
    date. One status write per waiting run whose place changed, at most once a period."""
    workers: Annotated[int, Field(ge=1, le=128)] = 16
    """Threads running handlers at once. They mostly wait on the API server, so more than the CPU count pays:
    16 drained a burst of 200 broadcasts with p99 0.45-0.74 s where Python's default (CPUs + 4) took 1.1-1.5 s."""

    @field_validator("job_image", "engine_gpu_image", "engine_cpu_image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        if not _PINNED.match(image) or image.endswith(":latest"):
            raise ValueError(f"{image!r} must name a versioned tag or a digest (repository:1.2.3), never latest")
        return image

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        value = _comma_list(value)
        if isinstance(value, tuple | list):
            for network in value:
                try:
                    ipaddress.ip_network(str(network), strict=False)
                except ValueError:
                    raise ValueError(f"{network!r} is not a network in CIDR form such as 10.96.0.0/12") from None
        return value

    @field_validator("job_cpu", "engine_cpu")
    @classmethod
    def _cpu(cls, quantity: str) -> str:
        if not _CPU.match(quantity) or float(quantity.removesuffix("m")) <= 0:
            raise ValueError(f"{quantity!r} is not a CPU quantity such as 500m or 2")
        return quantity

    @field_validator("job_memory", "engine_memory", "job_memory_request", "engine_memory_request")
    @classmethod
    def _memory(cls, quantity: str) -> str:
        if not _MEMORY.match(quantity):
            raise ValueError(f"{quantity!r} is not a memory quantity such as 512Mi or 2Gi")
        return quantity

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Settings:
        for container in ("job", "engine"):
            request, limit = getattr(self, f"{container}_memory_request"), getattr(self, f"{container}_memory")
            if memory_bytes(request) > memory_bytes(limit):
                raise ValueError(
                    f"the {container} container's memory request {request} is above its limit {limit}"
                    f" (ANCHOR_{container.upper()}_MEMORY_REQUEST <= ANCHOR_{container.upper()}_MEMORY)"
                )
        return self

    @field_validator("image_pull_policy", "engine_pull_policy")
    @classmethod
    def _policy(cls, policy: str | None) -> str | None:
        if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(f"{policy!r} is not one of Always, IfNotPresent, Never")
        return policy

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _secrets(cls, value: object) -> object:
        value = _comma_list(value)
        for name in value if isinstance(value, tuple | list) else ():
            if not _DNS_SUBDOMAIN.match(str(name)):
                raise ValueError(f"{name!r} is not a Secret name (lower-case letters, digits, '-' and '.')")
        return value

    @field_validator("pod_annotations", "pod_labels", mode="before")
    @classmethod
    def _metadata(cls, value: object, info: ValidationInfo) -> object:
        value = _json_object(value, '{"team": "news"}')
        if not all(isinstance(v, str) for v in value.values()):
            raise ValueError('must be a JSON object of strings such as {"team": "news"}')
        for key, item in value.items():
            if not _QUALIFIED.match(key):
                raise ValueError(f"{key!r} is not a label or annotation key (prefix/name, name of 1-63 characters)")
            if key.startswith(RESERVED_PREFIXES):
                raise ValueError(f"{key!r}: keys under {' and '.join(RESERVED_PREFIXES)} are set by the controller")
            if info.field_name == "pod_labels" and not _LABEL_VALUE.match(item):
                raise ValueError(f"label {key}={item!r}: a value has at most 63 letters, digits, '-', '_' or '.'")
        return value

    @field_validator("gpu_prices", mode="before")
    @classmethod
    def _prices(cls, value: object) -> object:
        value = _json_object(value, '{"nvidia.com/gpu": {"onDemand": 2.5}}')
        for name in value:
            if not _RESOURCE.match(str(name)):
                raise ValueError(f"{name!r} is not an extended resource name such as nvidia.com/gpu")
        return value

    @property
    def engine_image_pull_policy(self) -> str:
        return self.engine_pull_policy or self.image_pull_policy

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        values = {field: env[name] for name, field in VARIABLES.items() if env.get(name)}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = {field: name for name, field in VARIABLES.items()}
            problems = [
                f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'resources'}: "
                + e["msg"].removeprefix("Value error, ")
                for e in exc.errors(include_url=False)
            ]
            raise SettingsError("invalid controller settings:\n  " + "\n  ".join(problems)) from None


def _comma_list(value: object) -> object:
    """An environment variable's comma-separated items, as a tuple; other values as they are."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _json_object(value: object, example: str) -> dict[Any, Any]:
    """An environment variable's JSON object (or a mapping given as is); the error shows what is expected."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object such as {example}")
    return value


def memory_bytes(quantity: str) -> float:
    """A memory quantity (validated by _MEMORY) in bytes."""
    for suffix, factor in (*_BINARY.items(), *_DECIMAL.items()):
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity)


@dataclass(frozen=True)
class Scope:
    """What this replica watches and how it shares the work: namespaces (empty: all), its peering object and
    priority (None: standalone)."""

    namespaces: tuple[str, ...] = ()
    peering: str | None = None
    priority: int = 0

    def acts(self, peers: Mapping[str, Any], now: datetime | None = None) -> bool:
        """Whether this replica acts, given its peering object's status: kopf pauses a replica while a live peer
        has a higher priority (or the same: kopf freezes them all)."""
        if self.peering is None:
            return True
        moment = now or datetime.now(UTC)
        rivals = 0
        for info in peers.values():
            if not isinstance(info, Mapping) or not _alive(info, moment):
                continue
            priority = info.get("priority", 0)
            if priority > self.priority:
                return False
            rivals += priority == self.priority
        return rivals <= 1  # itself


def _alive(info: Mapping[str, Any], now: datetime) -> bool:
    try:
        seen = datetime.fromisoformat(str(info["lastseen"]))
        lifetime = float(info.get("lifetime", 60))
    except (KeyError, TypeError, ValueError):
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return seen + timedelta(seconds=lifetime) > now
