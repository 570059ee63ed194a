"""The common command line of every job step (docs/internals.md, "Job steps"), as a model."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genopipe.contracts import (
    ARRAY_SIZE_MAX,
    DEFAULT_ALIGN_SHARD_READ_PAIRS,
    DEFAULT_CALL_SHARD_BASES,
    DEFAULT_MAX_SHARDS,
    NO_INTERVALS,
    SAMPLE_NAME_MAX,
    SAMPLE_PATTERN,
    Lane,
)
from genopipe.s3uri import S3Uri, S3UriField


class StepParams(BaseModel):
    """The common command line of every step (docs/internals.md, "Job steps")."""

    model_config = ConfigDict(frozen=True)
    sample: str = Field(pattern=SAMPLE_PATTERN, max_length=SAMPLE_NAME_MAX)
    # the lanes; the job parameter is the s3:// URI of `reads.json` (genopipe.steps.cli reads it),
    # or the JSON list itself when a step is run by hand
    reads: list[Lane] = Field(min_length=1)
    reference: S3UriField
    staging: S3UriField
    aligner: Literal["minimap2", "bwa"] = "minimap2"
    ploidy: Literal[1, 2] = 2
    caller: Literal["bcftools", "freebayes"] = "bcftools"
    align_shard_read_pairs: int = Field(default=DEFAULT_ALIGN_SHARD_READ_PAIRS, ge=1)
    call_shard_bases: int = Field(default=DEFAULT_CALL_SHARD_BASES, ge=1)
    max_shards: int = Field(default=DEFAULT_MAX_SHARDS, ge=1, le=ARRAY_SIZE_MAX)
    intervals: S3UriField | None = None  # a BED of targets; None: the whole genome

    @field_validator("reads", mode="before")
    @classmethod
    def _reads_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("intervals", mode="before")
    @classmethod
    def _no_intervals(cls, value: object) -> object:
        return None if value in ("", NO_INTERVALS, None) else value

    @field_validator("staging", mode="after")
    @classmethod
    def _staging_is_a_folder(cls, value: S3Uri) -> S3Uri:
        return value.as_prefix()
