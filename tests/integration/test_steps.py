"""The job steps end to end, through `genopipe job <step>`, on moto's in-process S3 and real tools."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from genopipe.aws import s3
from genopipe.cli import main
from genopipe.pipeline import STEP_NAMES
from genopipe.s3uri import S3Uri
from genopipe.truth.evaluate import evaluate
from genopipe.truth.simulate import SimulatedSample, simulate_sample

pytestmark = pytest.mark.tools

INPUT, OUTPUT = "genopipe-input", "genopipe-output"
CHAIN = STEP_NAMES


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSample:
    return simulate_sample(tmp_path_factory.mktemp("sim"), seed=3, length=150_000, depth=30.0)


@pytest.fixture
def buckets(moto: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENOPIPE_THREADS", str(min(2, len(os.sched_getaffinity(0)))))
    client = boto3.client("s3")
    for bucket in (INPUT, OUTPUT):
        client.create_bucket(Bucket=bucket)


def job(
    step: str, sample: str, reads: list[dict[str, str]], reference: S3Uri, staging: S3Uri, **extra: str
) -> int:
    argv = ["job", step, "--sample", sample, "--reads", json.dumps(reads)]
    argv += ["--reference", str(reference), "--staging", str(staging)]
    for name, value in extra.items():
        argv += [f"--{name}", value]
    return main(argv)


def upload_sample(simulated: SimulatedSample) -> tuple[list[dict[str, str]], S3Uri]:
    # keys with a space, `+` and unicode: URIs carry keys verbatim
    r1, r2 = S3Uri(INPUT, "runs/run 1+ü/sim_R1.fastq.gz"), S3Uri(INPUT, "runs/run 1+ü/sim_R2.fastq.gz")
    reference = S3Uri(INPUT, "refs/sim genome.fa")
    s3.upload(simulated.r1, r1)
    s3.upload(simulated.r2, r2)
    s3.upload(simulated.reference, reference)
    return [{"r1": str(r1), "r2": str(r2)}], reference


def test_step_chain_recovers_the_truth(
    buckets: None, simulated: SimulatedSample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reads, reference = upload_sample(simulated)
    staging = S3Uri(OUTPUT, ".staging/exec-1/")
    seconds = {}
    for step in CHAIN:
        started = time.perf_counter()
        code = job(step, "sim", reads, reference, staging)
        seconds[step] = round(time.perf_counter() - started, 2)
        assert code == 0, f"{step}: {capsys.readouterr().err}"
    with capsys.disabled():
        print(f"\nstep seconds: {seconds}, chain total {sum(seconds.values()):.1f}s")

    vcf = s3.download(staging.join("sim.vcf.gz"), tmp_path / "sim.vcf.gz")
    result = evaluate(vcf, simulated.truth_vcf, simulated.reference)
    assert result.snp.truth >= 50 and result.indel.truth >= 10, "the simulated truth is too small to judge"
    assert result.snp.recall is not None and result.snp.recall >= 0.98, result.summary()
    assert result.indel.recall is not None and result.indel.recall >= 0.90, result.summary()
    assert result.snp.precision is not None and result.snp.precision >= 0.98, result.summary()
    assert result.indel.precision is not None and result.indel.precision >= 0.98, result.summary()

    # the staging layout of docs/internals.md
    keys = {item.uri.relative_to(staging) for item in s3.list_prefix(staging)}
    expected = {
        "validate.json", "reference.json", "sim.bam", "sim.bam.bai", "sim.vcf.gz", "sim.vcf.gz.tbi",
        "trimmed/sim_L1_R1.fastq.gz", "trimmed/sim_L1_R2.fastq.gz", "qc/sim.fastp.json", "qc/sim.fastp.html",
        "qc/sim.samtools.stats", "qc/sim.flagstat.txt", "qc/sim.bcftools.stats", "qc/multiqc_report.html",
        "summary.json", "manifest.json", *(f"versions/{step}.json" for step in CHAIN),
        "shards/call.json", "call/part-0.vcf.gz",
    }  # fmt: skip
    assert expected <= keys, sorted(expected - keys)
    assert s3.read_json(staging.join("validate.json"))["read_pairs"] == simulated.read_pairs

    summary = s3.read_json(staging.join("summary.json"))
    assert summary["read_pairs"] == simulated.read_pairs
    assert summary["percent_mapped"] > 95
    assert 20 < summary["mean_depth"] < 40
    assert abs(summary["snps"] - simulated.snps) <= 3 and abs(summary["indels"] - simulated.indels) <= 3
    assert summary["titv"] is not None and summary["titv"] > 0

    manifest = s3.read_json(staging.join("manifest.json"))
    assert manifest["reference"]["sha256"] == s3.read_json(staging.join("reference.json"))["sha256"]
    assert {i["uri"] for i in manifest["inputs"]} == {reads[0]["r1"], reads[0]["r2"], str(reference)}
    assert all(i["etag"] for i in manifest["inputs"])
    assert manifest["tool_versions"]["align"]["minimap2"].startswith("2.")
    assert set(manifest["tool_versions"]) == set(CHAIN)
    import hashlib

    assert manifest["outputs"]["sim.vcf.gz"]["sha256"] == hashlib.sha256(vcf.read_bytes()).hexdigest()
    html = s3.read_bytes(staging.join("qc", "multiqc_report.html"))
    assert b"fastp" in html and b"samtools" in html.lower() and b"bcftools" in html.lower()
    assert manifest["tool_versions"]["call"]["bcftools"].startswith("bcftools 1."), "the default caller"
    with gzip.open(vcf, "rt") as handle:
        header = [line for line in handle if line.startswith("##FILTER")]
    for name in ("LowQual", "LowDepth", "LowAltFrac", "SnpGap"):
        assert any(f"<ID={name}," in line for line in header), name

    # the other caller on the same BAM: as good on this 30x sample, with its own filters
    assert job("call", "sim", reads, reference, staging, caller="freebayes") == 0
    other = s3.download(staging.join("sim.vcf.gz"), tmp_path / "sim.freebayes.vcf.gz")
    by_freebayes = evaluate(other, simulated.truth_vcf, simulated.reference)
    for kind in ("snp", "indel"):
        m = getattr(by_freebayes, kind)
        assert m.recall is not None and m.recall >= (0.98 if kind == "snp" else 0.90), by_freebayes.summary()
        assert m.precision is not None and m.precision >= 0.98, by_freebayes.summary()
    assert abs(by_freebayes.snp.tp - result.snp.tp) <= 0.02 * result.snp.truth
    with gzip.open(other, "rt") as handle:
        header = [line for line in handle if line.startswith("##FILTER")]
    for name in ("StrandBias", "PlacementBias"):
        assert any(f"<ID={name}," in line for line in header), name

    # a second sample on the same reference rebuilds nothing
    cache = S3Uri(OUTPUT, ".references/")  # the stack's bucket: the reference's own is only read
    assert [item.uri.key for item in s3.list_prefix(S3Uri(INPUT, "refs/"))] == ["refs/sim genome.fa"]
    before = {item.uri: item.etag for item in s3.list_prefix(cache)}
    assert job("reference", "other", reads, reference, S3Uri(OUTPUT, ".staging/exec-2/")) == 0
    again = s3.read_json(S3Uri(OUTPUT, ".staging/exec-2/reference.json"))
    assert again["built"] == []
    assert {item.uri: item.etag for item in s3.list_prefix(cache)} == before

    # the cache keeps the reference BGZF-compressed (.fai + .gzi), never the plain FASTA
    checksum_folder = S3Uri.parse(again["cache"])
    names = {item.uri.relative_to(checksum_folder) for item in s3.list_prefix(checksum_folder)}
    assert names == {"sim genome.fa.gz", "sim genome.fa.gz.fai", "sim genome.fa.gz.gzi", "sim genome.fa.mmi",
                     "gaps.bed", "cache.json"}  # fmt: skip
    bgzf = s3.download(S3Uri.parse(again["bgzf"]), tmp_path / "cached.fa.gz")
    assert subprocess.run(["bgzip", "-t", str(bgzf)], check=False).returncode == 0
    assert gzip.decompress(bgzf.read_bytes()) == simulated.reference.read_bytes()

    # a cache folder of the old layout (plain FASTA, no "layout" in cache.json) is rebuilt, not misread
    s3.write_json(checksum_folder.join("cache.json"), {"fasta": str(reference), "files": ["sim genome.fa"]})
    assert job("reference", "other", reads, reference, S3Uri(OUTPUT, ".staging/exec-3/")) == 0
    rebuilt = s3.read_json(S3Uri(OUTPUT, ".staging/exec-3/reference.json"))
    assert set(rebuilt["built"]) == names - {"cache.json"}
    assert s3.read_json(checksum_folder.join("cache.json"))["layout"] == 2


def write_fastq_gz(path: Path, records: list[tuple[str, str, str]]) -> Path:
    with gzip.open(path, "wt") as handle:
        for name, seq, qual in records:
            handle.write(f"@{name}\n{seq}\n+\n{qual}\n")
    return path


@pytest.mark.parametrize(
    ("damage", "culprit", "problem"),
    [
        ("short quality", "R2", "record 3: quality length 3 differs from sequence length 4"),
        ("name mismatch", "R2", "record 2: read name 'rX' does not match R1's 'r2'"),
        ("missing record", "R2", "record 5: ends early: R2 has fewer records than R1"),
        ("truncated gzip", "R1", "not a valid gzip file"),
    ],
)
def test_malformed_fastq_fails_validate_naming_file_and_record(
    buckets: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, culprit: str, problem: str
) -> None:
    good = [(f"r{i}/1", "ACGT", "IIII") for i in range(1, 6)]
    mate = [(f"r{i}/2", "TTGA", "IIII") for i in range(1, 6)]
    if damage == "short quality":
        mate[2] = ("r3/2", "TTGA", "III")
    elif damage == "name mismatch":
        mate[1] = ("rX/2", "TTGA", "IIII")
    elif damage == "missing record":
        mate = mate[:4]
    r1 = write_fastq_gz(tmp_path / "a_R1.fastq.gz", good)
    r2 = write_fastq_gz(tmp_path / "a_R2.fastq.gz", mate)
    if damage == "truncated gzip":
        r1.write_bytes(r1.read_bytes()[:-12])
    uris = {"R1": S3Uri(INPUT, "x/a_R1.fastq.gz"), "R2": S3Uri(INPUT, "x/a_R2.fastq.gz")}
    s3.upload(r1, uris["R1"])
    s3.upload(r2, uris["R2"])
    reads = [{"r1": str(uris["R1"]), "r2": str(uris["R2"])}]
    code = job("validate", "a", reads, S3Uri(INPUT, "ref.fa"), S3Uri(OUTPUT, ".staging/bad/"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith(f"genopipe validate: {uris[culprit]}: "), err[0]
    assert problem in err[0]
    assert not s3.exists(S3Uri(OUTPUT, ".staging/bad/validate.json"))


def test_bad_arguments_exit_2(buckets: None, capsys: pytest.CaptureFixture[str]) -> None:
    reads = [{"r1": "s3://b/a_R1.fq.gz", "r2": "s3://b/a_R2.fq.gz"}]
    assert job("qc", "bad name!", reads, S3Uri(INPUT, "r.fa"), S3Uri(OUTPUT, ".staging/x/")) == 2
    assert "--sample" in capsys.readouterr().err
    assert job("qc", "s", reads, S3Uri(INPUT, "r.fa"), S3Uri(OUTPUT, ".staging/x/"), ploidy="3") == 2
    assert "--ploidy" in capsys.readouterr().err


def split_lanes(fastq_gz: Path, out_dir: Path, mate: int) -> list[Path]:
    """Two lanes from one file: alternate records (so both lanes cover the whole genome)."""
    lanes = [out_dir / f"L{n}_R{mate}.fastq.gz" for n in (1, 2)]
    with (
        gzip.open(fastq_gz, "rt") as source,
        gzip.open(lanes[0], "wt", compresslevel=1) as first,
        gzip.open(lanes[1], "wt", compresslevel=1) as second,
    ):
        for index, line in enumerate(source):
            (first if (index // 4) % 2 == 0 else second).write(line)
    return lanes


def test_two_lanes_with_bwa_are_merged_into_one_bam(
    buckets: None, simulated: SimulatedSample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r1s, r2s = split_lanes(simulated.r1, tmp_path, 1), split_lanes(simulated.r2, tmp_path, 2)
    reads = []
    for lane, (r1, r2) in enumerate(zip(r1s, r2s, strict=True), start=1):
        uris = S3Uri(INPUT, f"lanes/s_L{lane}_R1.fastq.gz"), S3Uri(INPUT, f"lanes/s_L{lane}_R2.fastq.gz")
        s3.upload(r1, uris[0])
        s3.upload(r2, uris[1])
        reads.append({"r1": str(uris[0]), "r2": str(uris[1])})
    reference = S3Uri(INPUT, "refs/sim.fa")
    s3.upload(simulated.reference, reference)
    staging = S3Uri(OUTPUT, ".staging/lanes/")
    for step in CHAIN:
        code = job(step, "s", reads, reference, staging, aligner="bwa")
        assert code == 0, f"{step}: {capsys.readouterr().err}"

    reference_json = s3.read_json(staging.join("reference.json"))
    assert reference_json["bwa"] and any(name.endswith(".bwt") for name in reference_json["built"])
    keys = {item.uri.relative_to(staging) for item in s3.list_prefix(staging)}
    assert {"qc/s_L1.fastp.json", "qc/s_L2.fastp.html", "trimmed/s_L2_R1.fastq.gz"} <= keys
    bam = s3.download(staging.join("s.bam"), tmp_path / "s.bam")
    header = subprocess.run(["samtools", "view", "-H", str(bam)], capture_output=True, text=True, check=True)
    groups = [line for line in header.stdout.splitlines() if line.startswith("@RG")]
    assert len(groups) == 2 and all("SM:s" in line for line in groups)
    assert any(line.startswith("@PG\tID:bwa") for line in header.stdout.splitlines())
    assert s3.read_json(staging.join("summary.json"))["read_pairs"] == simulated.read_pairs
    vcf = s3.download(staging.join("s.vcf.gz"), tmp_path / "s.vcf.gz")
    result = evaluate(vcf, simulated.truth_vcf, simulated.reference)
    assert result.snp.recall is not None and result.snp.recall >= 0.98, result.summary()
    assert result.snp.precision is not None and result.snp.precision >= 0.98, result.summary()
    assert s3.read_json(staging.join("versions/align.json"))["bwa"].startswith("0.7.")


def test_reference_problems_name_the_fasta(
    buckets: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reads = [{"r1": "s3://genopipe-input/a_R1.fq.gz", "r2": "s3://genopipe-input/a_R2.fq.gz"}]
    staging = S3Uri(OUTPUT, ".staging/ref/")
    missing = S3Uri(INPUT, "refs/missing.fa")
    assert job("reference", "a", reads, missing, staging) == 1
    assert capsys.readouterr().err.strip() == f"genopipe reference: {missing}: no such object"

    broken = tmp_path / "broken.fa"
    broken.write_text(">c1\nACGTACGT\nACG\nACGTACGT\n")  # a short line inside a sequence
    s3.upload(broken, S3Uri(INPUT, "refs/broken.fa"))
    assert job("reference", "a", reads, S3Uri(INPUT, "refs/broken.fa"), staging) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"genopipe reference: s3://{INPUT}/refs/broken.fa: samtools failed")
    assert not s3.exists(staging.join("reference.json"))
