"""What a run reports back: its exit code and the result JSON. The controller reads both.

Exit codes (the controller's podFailurePolicy keys on them):

=====  ==================  ==================================================================================
code   name                meaning
=====  ==================  ==================================================================================
0      OK                  published; the result's status is "Succeeded"
2      CONFIG_ERROR        bad configuration: invalid spec, unknown voice style, unwritable output, wrong S3
                           credentials, missing bucket, no font. Retrying cannot help: fail the Job at once.
75     TRANSIENT_ERROR     worth retrying: engine not ready or failing, every feed unreachable or empty, S3 down.
70     INTERNAL_ERROR      a bug in anchor (an unexpected exception); retried like a transient failure.
=====  ==================  ==================================================================================

The result JSON is printed as the last line of standard output and, when the Kubernetes termination-message
file exists (``/dev/termination-log``, or ``ANCHOR_TERMINATION_MESSAGE_PATH``), written there too. It is kept
under 4 KiB (the kubelet's limit) by dropping warnings first and shortening long strings.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TERMINATION_MESSAGE_LIMIT = 4096
NOTHING_NEW = "NothingNew"
"""The reason of a run that succeeded without a video: every story it found was aired by an earlier run."""


class ExitCode(IntEnum):
    OK = 0
    CONFIG_ERROR = 2
    INTERNAL_ERROR = 70
    TRANSIENT_ERROR = 75


class Engine(BaseModel):
    """The VOICEVOX engine that spoke the broadcast."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, frozen=True)

    version: str
    device: Literal["cuda", "dml", "cpu", "unknown"] = "unknown"


class RunResult(BaseModel):
    """The result of one run (schema version 1)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, frozen=True)

    schema_version: Literal[1] = 1
    status: Literal["Succeeded", "Failed"]
    broadcast: str
    run_id: str
    exit_code: int = 0
    reason: str | None = None
    """CamelCase reason when failed (ConfigError, TransientError, InternalError), or NothingNew for a run that
    found no story earlier runs had not aired (it succeeds, without a video)."""
    message: str | None = None
    """What went wrong, for a human."""
    video: str | None = None
    """Where the video was published: a local path or s3://bucket/key."""
    video_url: str | None = None
    """A URL that serves the video: presigned for S3, file:// locally."""
    manifest: str | None = None
    page_url: str | None = None
    """The broadcast's page (index.html, every listed run): under spec.output.publicBaseUrl when set, presigned
    for S3 without it, file:// locally. Absent when the listing is off or could not be written."""
    duration_seconds: float | None = None
    stories: int | None = None
    engine: Engine | None = None
    gpu: str | None = None
    """Name of the GPU the run saw through NVML, if any."""
    credits: list[str] = []
    script_writer: str | None = None
    """Who wrote the script: "templates", or "llm:<model>"."""
    synthesized_sentences: int | None = None
    """Sentences the engine was asked to speak (those not in the audio cache)."""
    warnings: Annotated[list[str], Field(max_length=50)] = []

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def compact_json(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """The result as JSON in at most `limit` bytes: warnings go first, then long strings are shortened."""
        result = self
        text = result.to_json()
        while len(text.encode()) > limit and result.warnings:
            result = result.model_copy(update={"warnings": result.warnings[:-1]})
            text = result.to_json()
        budget = 512
        while len(text.encode()) > limit and budget >= 32:
            result = result.model_copy(
                update={
                    "message": _shorten(result.message, budget),
                    "video_url": _shorten(result.video_url, budget * 4),
                    "page_url": _shorten(result.page_url, budget * 4),
                    "credits": [_shorten(c, budget) or "" for c in result.credits],
                }
            )
            text = result.to_json()
            budget //= 2
        return text

    @classmethod
    def parse(cls, text: str) -> RunResult:
        return cls.model_validate(json.loads(text))


def _shorten(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
