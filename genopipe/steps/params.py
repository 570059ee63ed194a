"""The common command line of every job step (docs/internals.md, "Job steps"), as a model."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genopipe.contracts import SAMPLE_NAME_MAX, SAMPLE_PATTERN, Lane
from genopipe.s3uri import S3Uri, S3UriField


class StepParams(BaseModel):
    """The common command line of every step (docs/internals.md, "Job steps")."""

    model_config = ConfigDict(frozen=True)
    sample: str = Field(pattern=SAMPLE_PATTERN, max_length=SAMPLE_NAME_MAX)
    reads: list[Lane] = Field(min_length=1)
    reference: S3UriField
    staging: S3UriField
    aligner: Literal["minimap2", "bwa"] = "minimap2"
    ploidy: Literal[1, 2] = 2
    caller: Literal["bcftools", "freebayes"] = "bcftools"
    call_shard_bases: int = Field(default=100_000_000, ge=1)  # real bases per call job (genopipe.shards)
    max_shards: int = Field(default=100, ge=1)  # at most this many call jobs; beyond it groups grow
    intervals: S3UriField | None = None  # a BED of targets (exomes, panels): call only there

    @field_validator("intervals", mode="before")
    @classmethod
    def _no_intervals(cls, value: object) -> object:
        # a job definition's parameter cannot be absent: "" (or "none") means the whole genome
        return None if isinstance(value, str) and value.strip().lower() in {"", "none"} else value

    @field_validator("reads", mode="before")
    @classmethod
    def _reads_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("staging", mode="after")
    @classmethod
    def _staging_is_a_folder(cls, value: S3Uri) -> S3Uri:
        return value.as_prefix()
