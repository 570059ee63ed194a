"""Real data: the Ebola virus sample G5012.3 through the step chain, haploid."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import boto3
import pytest

from genopipe.aws import s3
from genopipe.cli import main
from genopipe.s3uri import S3Uri
from genopipe.steps.call import CALLERS

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ebov"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.tools,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not present: {DATA}"),
]


@pytest.fixture
def bucket(moto: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GENOPIPE_THREADS", str(min(2, len(os.sched_getaffinity(0)))))
    boto3.client("s3").create_bucket(Bucket="ebov")
    return "ebov"


def variants(path: Path, pass_only: bool) -> set[tuple[int, str, str]]:
    found = set()
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            _chrom, pos, _id, ref, alt, _qual, filt = line.split("\t")[:7]
            if not pass_only or filt in {"PASS", "."}:
                found.add((int(pos), ref, alt))
    return found


def test_ebov_all_truth_variants_called_and_no_false_pass(bucket: str, tmp_path: Path) -> None:
    r1, r2 = S3Uri(bucket, "reads/G5012.3_R1.fastq.gz"), S3Uri(bucket, "reads/G5012.3_R2.fastq.gz")
    reference = S3Uri(bucket, "refs/KJ660346.2.fasta")
    s3.upload(DATA / "G5012.3_R1.fastq.gz", r1)
    s3.upload(DATA / "G5012.3_R2.fastq.gz", r2)
    s3.upload(DATA / "KJ660346.2.fasta", reference)
    staging = S3Uri(bucket, ".staging/ebov/")
    common = ["--sample", "G5012.3", "--reads", json.dumps([{"r1": str(r1), "r2": str(r2)}])]
    common += ["--reference", str(reference), "--staging", str(staging), "--ploidy", "1"]
    for step in ("validate", "reference", "qc", "align", "markdup"):
        assert main(["job", step, *common]) == 0, step

    truth = variants(DATA / "EBOV_G5012.3_vs_KJ660346.2.vcf.gz", pass_only=False)
    assert len(truth) == 15
    for caller in CALLERS:  # the last one's VCF stays in staging for the report
        assert main(["job", "call", *common, "--caller", caller]) == 0, caller
        assert main(["job", "concat", *common, "--caller", caller]) == 0, caller
        called = s3.download(staging.join("G5012.3.vcf.gz"), tmp_path / f"{caller}.vcf.gz")
        passed = variants(called, pass_only=True)
        assert truth - passed == set(), f"{caller}: truth variants not called (PASS)"
        assert passed - truth == set(), f"{caller}: false positives that pass the filter"
        with gzip.open(called, "rt") as handle:
            records = [line.rstrip("\n").split("\t") for line in handle if not line.startswith("#")]
        genotypes = {fields[9].split(":")[0] for fields in records}
        assert genotypes == {"1"}, f"{caller}: ploidy 1 gives haploid genotypes"
    assert main(["job", "report", *common]) == 0

    summary = s3.read_json(staging.join("summary.json"))
    assert summary["read_pairs"] == 9355
    assert summary["snps"] == 13 and summary["indels"] == 2
    assert summary["percent_mapped"] > 95 and summary["mean_depth"] > 50
