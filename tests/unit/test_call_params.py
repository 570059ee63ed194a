"""The scatter-gather parameters of `genopipe job` and the array index of a call job."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from genopipe.s3uri import S3Uri
from genopipe.steps import cli
from genopipe.steps.runner import Step
from genopipe.steps.tools import StepError

COMMON = ["call", "--sample", "S1", "--reads", '[{"r1": "s3://b/a_R1.fq.gz", "r2": "s3://b/a_R2.fq.gz"}]',
          "--reference", "s3://b/ref.fa", "--staging", "s3://b/.staging/x/"]  # fmt: skip


def parse(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([*COMMON, *extra])


def test_defaults_plan_the_whole_genome_in_100_mb_groups_up_to_100() -> None:
    params = cli.parse_params(parse())
    assert (params.call_shard_bases, params.max_shards, params.intervals) == (100_000_000, 100, None)
    # a job definition always passes the parameter: "" means no intervals
    assert cli.parse_params(parse("--intervals", "")).intervals is None


def test_options_are_read_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    params = cli.parse_params(
        parse("--call-shard-bases", "5000", "--max-shards", "4", "--intervals", "s3://b/t.bed")
    )
    assert (params.call_shard_bases, params.max_shards, params.intervals) == (5000, 4, S3Uri("b", "t.bed"))
    assert cli.run(parse("--call-shard-bases", "0")) == 2
    assert capsys.readouterr().err.startswith("genopipe call: --call-shard-bases: ")


def test_shard_index_is_the_batch_array_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    step = Step(name="call", params=cli.parse_params(parse()), scratch=tmp_path, threads=1)
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX", raising=False)
    assert step.shard_index == 0
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "7")
    assert step.shard_index == 7
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "x")
    with pytest.raises(StepError, match="not a whole number"):
        _ = step.shard_index
