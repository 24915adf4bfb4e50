"""The manifest's account of the GPU time a run held and what it cost (api/cost.py has the prices' model).

In a cluster the controller says what the run's pod holds (ANCHOR_GPU_ALLOCATION); the job counts from its own
start to the upload of its files. The NewsBroadcast's status.lastRun counts the Job's start to finish, which also covers
scheduling, the engine's start-up and the pod's end, so it is the larger and the authoritative figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.cost import GpuAllocation, allocation_from_env, estimate

MEASURED = "from the job's start to the upload of its files (status.lastRun counts the whole Job)"


def allocation(env: Mapping[str, str]) -> tuple[GpuAllocation | None, str | None]:
    """What the run's pod holds, from the environment, or why that cannot be read: the account is information,
    so a bad value is a warning (the manifest then has no gpuTime), never a failed broadcast."""
    try:
        return allocation_from_env(env), None
    except ValueError as exc:
        return None, f"{exc}; the manifest says nothing of the run's GPU time"


def gpu_time(held: GpuAllocation | None, seconds: float) -> dict[str, Any] | None:
    """The manifest's gpuTime section for `seconds` of the run, or None when nobody said what the pod holds."""
    if held is None:
        return None
    gpu_seconds = round(held.count * max(seconds, 0.0), 1)
    section: dict[str, Any] = {
        "resource": held.resource,
        "gpus": held.count,
        "gpuSeconds": gpu_seconds,
        "measured": MEASURED,
    }
    if held.price is not None:
        section["cost"] = estimate(gpu_seconds, held.price, held.currency).dump()
    return section
