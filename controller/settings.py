"""The operator's settings, from its environment, validated at start-up with errors that name the variable."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_CPU = re.compile(r"^\d+(\.\d+)?m?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_PINNED = re.compile(r"^[^\s:@]+(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]{64})$")

# Environment variable → field. Only these are read; everything has a default but the job image.
VARIABLES = {
    "ANCHOR_JOB_IMAGE": "job_image",
    "ANCHOR_ENGINE_GPU_IMAGE": "engine_gpu_image",
    "ANCHOR_ENGINE_CPU_IMAGE": "engine_cpu_image",
    "ANCHOR_ENGINE_PORT": "engine_port",
    "ANCHOR_ENGINE_USER": "engine_user",
    "ANCHOR_IMAGE_PULL_POLICY": "image_pull_policy",
    "ANCHOR_JOB_MEMORY": "job_memory",
    "ANCHOR_ENGINE_MEMORY": "engine_memory",
    "ANCHOR_JOB_CPU": "job_cpu",
    "ANCHOR_ENGINE_CPU": "engine_cpu",
    "ANCHOR_WEBHOOK_ALLOWED_NETWORKS": "webhook_allowed_networks",
    "ANCHOR_WEBHOOK_ATTEMPTS": "webhook_attempts",
    "ANCHOR_WEBHOOK_BACKOFF_SECONDS": "webhook_backoff_seconds",
    "ANCHOR_SWEEP_SECONDS": "sweep_seconds",
    "ANCHOR_WORKERS": "workers",
}


class SettingsError(ValueError):
    """The operator's environment is wrong; the message names each variable."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job_image: Annotated[str, Field(min_length=1)] = "ghcr.io/anchor-news/anchor-job:0.1.0"
    """Image of the job container (`anchor render`)."""
    engine_gpu_image: str = "voicevox/voicevox_engine:nvidia-0.25.0"
    """VOICEVOX engine image for broadcasts with a GPU."""
    engine_cpu_image: str = "voicevox/voicevox_engine:cpu-0.25.0"
    """VOICEVOX engine image for broadcasts with spec.gpu.count 0."""
    engine_port: Annotated[int, Field(ge=1024, le=65535)] = 50021
    """Port the engine listens on, on 127.0.0.1 inside the pod."""
    engine_user: Annotated[int, Field(ge=1)] = 1000
    """UID of the engine image's unprivileged user (the official images run the engine as `user`, uid 1000)."""
    image_pull_policy: str = "IfNotPresent"
    job_memory: str = "2Gi"
    """Memory limit of the job container (render and encode)."""
    engine_memory: str = "6Gi"
    """Memory limit of the engine container (its voice models)."""
    job_cpu: str = "1"
    """CPU request of the job container (the encode uses what the node has free beyond it)."""
    engine_cpu: str = "1"
    """CPU request of the engine container (synthesis on a GPU node needs little CPU; on a CPU node, more)."""
    webhook_allowed_networks: tuple[str, ...] = ()
    """Networks (CIDR, comma-separated) a webhook may be posted to although they are private, e.g. an in-cluster
    chat server's Service range. Loopback, link-local, metadata and private addresses are refused otherwise."""
    webhook_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    """Tries per webhook delivery (connection failures, timeouts, 408, 429 and 5xx are retried)."""
    webhook_backoff_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0
    """First wait between tries; it doubles each time, up to 60 s."""
    sweep_seconds: Annotated[float, Field(ge=0.5, le=3600)] = 60
    """Period of the sweep that retries reporting finished Jobs an API error left unreported."""
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
        if isinstance(value, str):
            value = tuple(item.strip() for item in value.split(",") if item.strip())
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

    @field_validator("job_memory", "engine_memory")
    @classmethod
    def _memory(cls, quantity: str) -> str:
        if not _MEMORY.match(quantity):
            raise ValueError(f"{quantity!r} is not a memory quantity such as 512Mi or 2Gi")
        return quantity

    @field_validator("image_pull_policy")
    @classmethod
    def _policy(cls, policy: str) -> str:
        if policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(f"{policy!r} is not one of Always, IfNotPresent, Never")
        return policy

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        values = {field: env[name] for name, field in VARIABLES.items() if env.get(name)}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = {field: name for name, field in VARIABLES.items()}
            problems = [
                f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False)
            ]
            raise SettingsError("invalid controller settings:\n  " + "\n  ".join(problems)) from None


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
