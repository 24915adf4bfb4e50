"""The NewsBroadcast's status, typed: what the controller writes (controller/status.py builds these), what the CRD
serves as a structural schema (api/crd.py; `kubectl explain nb.status`), and what tools read back. One model, so the
three cannot drift apart.

Every model dumps with camelCase names and without None values (`dump()`): a merge patch of the status then never
writes null where nothing is known. A field set to None in a patch deletes it (activeRun when a run is over).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

RECENT_RUNS = 10
MESSAGE_LIMIT = 1024
Phase = Literal["Succeeded", "Failed"]


class _Status(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, frozen=True, extra="forbid", use_attribute_docstrings=True
    )

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RunCost(_Status):
    """What a run's GPU time cost at the controller's price table (chart value cost.gpuPrices): an estimate."""

    currency: str
    on_demand: float
    """At on-demand prices."""
    spot: float | None = None
    """At spot prices, when the table has them."""


class RunRecord(_Status):
    """One finished run (lastRun, and each of recentRuns)."""

    job: str
    """The Job that ran it."""
    phase: Phase
    reason: str
    """CamelCase: RunSucceeded, InvalidConfiguration, TransientFailure, InternalError, DeadlineExceeded, ..."""
    message: Annotated[str, Field(max_length=MESSAGE_LIMIT)]
    started_at: str | None = None
    finished_at: str | None = None
    run_id: str | None = None
    """The run's id: its folder in the bucket or output directory."""
    video: str | None = None
    """Where the video was published: s3://bucket/key or a local path."""
    video_url: str | None = None
    """A URL that serves the video (presigned for S3)."""
    page_url: str | None = None
    """The broadcast's page, listing its runs with players and feeds (presigned for S3 without
    spec.output.publicBaseUrl)."""
    duration_seconds: float | None = None
    stories: int | None = None
    engine_device: str | None = None
    """cuda, dml or cpu: where the VOICEVOX engine synthesised."""
    engine_version: str | None = None
    gpu: str | None = None
    """The GPU the job saw through NVML, if any."""
    credits: list[str] | None = None
    """The voices' credit lines shown in the video."""
    warnings: int | None = None
    """How many warnings the run recorded (in its result and manifest)."""
    gpu_seconds: float | None = None
    """What the run cost in GPU time: the GPUs its pod held times the Job's start-to-finish seconds (0 on CPU)."""
    cost: RunCost | None = None
    """The GPU time at the controller's price table, when one is set."""


class ActiveRun(_Status):
    """The run in progress: Queued (its Kueue Workload not admitted yet), its pod Pending or Running, and what holds
    it now (waiting for quota, not scheduled, a container that cannot start or keeps failing, the engine not ready
    yet) with the reason and words."""

    job: str
    pod: str | None = None
    phase: Literal["Queued", "Pending", "Running"]
    reason: str | None = None
    message: Annotated[str | None, Field(max_length=MESSAGE_LIMIT)] = None
    since: str | None = None
    queue: str | None = None
    """The Kueue LocalQueue the run waits in (or waited in, once admitted)."""
    cluster_queue: str | None = None
    """The Kueue ClusterQueue behind it, whose quota the run needs."""
    ahead: Annotated[int | None, Field(ge=0)] = None
    """While Queued: how many Workloads of Jobs in the same ClusterQueue Kueue takes first (higher priority, then
    older), among those the controller sees; refreshed every ANCHOR_QUEUE_POSITION_SECONDS."""


class JobAt(_Status):
    """A Job the controller created, and when."""

    job: str
    at: str


class RunNow(JobAt):
    """The last anchor.news/run-now annotation acted on: its value, and the Job it made."""

    token: str


class Condition(_Status):
    """A condition as the Kubernetes API conventions describe it; types: Ready, LastRunSucceeded."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: Annotated[str, Field(max_length=MESSAGE_LIMIT)]
    last_transition_time: str | None = None
    observed_generation: int | None = None


class BroadcastStatus(_Status):
    """What the controller observed: the last runs and the conditions."""

    observed_generation: int | None = None
    """The spec generation the controller last reconciled."""
    conditions: list[Condition] | None = None
    active_run: ActiveRun | None = None
    last_run: RunRecord | None = None
    recent_runs: Annotated[list[RunRecord] | None, Field(max_length=RECENT_RUNS)] = None
    """The last runs, newest first."""
    last_schedule_time: str | None = None
    last_successful_time: str | None = None
    one_off: JobAt | None = None
    """A broadcast without a schedule: the Job of its single run (never made again)."""
    run_now: RunNow | None = None
    controller: dict[str, Any] | None = None
    """kopf's bookkeeping (the last handled spec, handler progress)."""


PRESERVED = ("controller",)
"""Status fields whose content is another program's (kopf's): the CRD keeps whatever is written there."""
