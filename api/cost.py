"""What GPU time costs: one price per GPU resource name, shared by the controller (each run's status) and the job
(each run's manifest), so both estimate a run's cost the same way.

The controller holds the price table (chart value cost.gpuPrices, ANCHOR_GPU_PRICES). It tells each run's job
what its pod holds and what that costs in one variable, ANCHOR_GPU_ALLOCATION, e.g.
``{"resource": "nvidia.com/gpu", "count": 1, "currency": "USD", "price": {"onDemand": 2.5, "spot": 0.9}}``;
outside a cluster a user may set it the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.status import RunCost

ALLOCATION_VARIABLE = "ANCHOR_GPU_ALLOCATION"
RESOURCE_PATTERN = r"^[a-z0-9.\-]+/[a-z0-9.\-_]+$"


class GpuPrice(BaseModel):
    """What one GPU of a resource costs per hour, on demand and (when known) on spot capacity."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    on_demand: Annotated[float, Field(ge=0, le=10000, alias="onDemand")]
    spot: Annotated[float | None, Field(ge=0, le=10000)] = None


class GpuAllocation(BaseModel):
    """The GPUs a run's pod holds, and their hourly price when the controller has one. Fields a newer controller
    adds are ignored: the job image may be older than the controller (the chart sets them apart)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    resource: Annotated[str, Field(pattern=RESOURCE_PATTERN, max_length=253)]
    count: Annotated[int, Field(ge=0, le=8)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    price: GpuPrice | None = None

    def to_env(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def estimate(gpu_seconds: float, price: GpuPrice, currency: str) -> RunCost:
    """`gpu_seconds` of GPU time at `price` (per GPU-hour), rounded to 1/10000 of the currency."""
    hours = gpu_seconds / 3600
    spot = None if price.spot is None else round(hours * price.spot, 4)
    return RunCost(currency=currency, on_demand=round(hours * price.on_demand, 4), spot=spot)


def allocation_from_env(env: Mapping[str, str]) -> GpuAllocation | None:
    """ANCHOR_GPU_ALLOCATION, or None when unset. Raises ValueError naming the variable and what is wrong."""
    text = env.get(ALLOCATION_VARIABLE, "").strip()
    if not text:
        return None
    example = '{"resource": "nvidia.com/gpu", "count": 1, "currency": "USD", "price": {"onDemand": 2.5}}'
    try:
        return GpuAllocation.model_validate(json.loads(text))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors(include_url=False)
            )
        else:
            problems = f"not JSON ({exc})"
        raise ValueError(f"{ALLOCATION_VARIABLE} is invalid: {problems}; expected e.g. {example}") from None
