"""What a run cost: the controller tells the job what its pod holds and the price; the manifest and the status agree."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.cost import GpuAllocation, GpuPrice, allocation_from_env, estimate
from api.load import parse_broadcast
from controller import manifests
from controller.settings import Settings
from job import cost
from tests.support.builders import a_broadcast

PRICED = Settings.from_env(
    {"ANCHOR_GPU_PRICES": '{"nvidia.com/gpu": {"onDemand": 2.5, "spot": 0.9}}', "ANCHOR_COST_CURRENCY": "EUR"}
)


def _job_env(gpu: dict[str, Any], settings: Settings) -> dict[str, str]:
    broadcast = parse_broadcast(a_broadcast("priced").set(schedule="@daily", gpu=gpu).dict())
    pod = manifests.cronjob(broadcast, settings)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (job,) = pod["containers"]
    return {e["name"]: e["value"] for e in job["env"] if "value" in e}


def test_the_job_learns_what_its_pod_holds_and_the_price_of_it() -> None:
    env = _job_env({"count": 2}, PRICED)
    held = allocation_from_env(env)
    assert held == GpuAllocation(
        resource="nvidia.com/gpu", count=2, currency="EUR", price=GpuPrice(on_demand=2.5, spot=0.9)
    )
    # 90 s of a run on 2 GPUs: 180 GPU-seconds = 0.05 h at 2.5 and 0.9 an hour.
    section = cost.gpu_time(held, 90.04)
    assert section is not None
    assert (section["gpus"], section["gpuSeconds"]) == (2, 180.1)
    assert section["cost"] == {"currency": "EUR", "onDemand": 0.1251, "spot": 0.045}


def test_an_unpriced_resource_gets_gpu_time_without_a_cost_and_a_cpu_run_nothing() -> None:
    env = _job_env({"count": 1, "resourceName": "amd.com/gpu"}, PRICED)
    section = cost.gpu_time(allocation_from_env(env), 60)
    assert section is not None and "cost" not in section and section["gpuSeconds"] == 60.0
    assert "ANCHOR_GPU_ALLOCATION" not in _job_env({"count": 0}, PRICED)
    assert cost.allocation({}) == (None, None) and cost.gpu_time(None, 60) is None


def test_the_manifest_and_the_status_estimate_alike() -> None:
    price = PRICED.gpu_prices["nvidia.com/gpu"]
    assert estimate(3600, price, "EUR").dump() == {"currency": "EUR", "onDemand": 2.5, "spot": 0.9}
    assert estimate(7200, GpuPrice(on_demand=1.2), "USD").dump() == {"currency": "USD", "onDemand": 2.4}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{", "not JSON"),
        (json.dumps({"resource": "gpu", "count": 1}), "resource"),
        (json.dumps({"resource": "nvidia.com/gpu", "count": -1}), "count"),
        (json.dumps({"resource": "nvidia.com/gpu", "count": 1, "price": {"onDemand": -2}}), "price.onDemand"),
        (json.dumps({"resource": "nvidia.com/gpu", "count": 1, "currency": "euro"}), "currency"),
    ],
)
def test_a_bad_allocation_is_a_warning_naming_the_variable_and_field_not_a_failed_run(value: str, words: str) -> None:
    held, problem = cost.allocation({"ANCHOR_GPU_ALLOCATION": value})
    assert held is None and problem is not None
    assert problem.startswith("ANCHOR_GPU_ALLOCATION is invalid") and words in problem and "expected e.g." in problem
    assert problem.endswith("the manifest says nothing of the run's GPU time")


def test_fields_a_newer_controller_adds_are_ignored_by_an_older_job() -> None:
    newer = {"resource": "nvidia.com/gpu", "count": 1, "price": {"onDemand": 1.0}, "region": "eu-west-1"}
    held, problem = cost.allocation({"ANCHOR_GPU_ALLOCATION": json.dumps(newer)})
    assert problem is None and held is not None and held.count == 1
