"""Scatter-gather calling: call jobs per region group + the gather give the records of an unsharded
call on the same BAM, with both callers (moto's in-process S3, real tools)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from itertools import pairwise
from pathlib import Path

import boto3
import pytest

from genopipe import bai, shards
from genopipe.aws import s3
from genopipe.cli import main
from genopipe.layout import SampleFiles
from genopipe.s3uri import S3Uri
from genopipe.steps import concat
from genopipe.steps.call import CALLERS
from genopipe.steps.cli import add_arguments, parse_params
from genopipe.steps.runner import execute
from genopipe.truth.simulate import SimulatedSample, simulate_sample

EBOV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ebov"
BUCKET = "shards"

pytestmark = pytest.mark.tools


@pytest.fixture
def bucket(moto: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GENOPIPE_THREADS", str(min(2, len(os.sched_getaffinity(0)))))
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX", raising=False)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def common_args(
    sample: str, r1: S3Uri, r2: S3Uri, reference: S3Uri, staging: S3Uri, ploidy: int
) -> list[str]:
    reads = json.dumps([{"r1": str(r1), "r2": str(r2)}])
    return [
        "--sample", sample, "--reads", reads, "--reference", str(reference), "--staging", str(staging),
        "--ploidy", str(ploidy),
    ]  # fmt: skip


def prepare(sample: str, r1: Path, r2: Path, fasta: Path, ploidy: int) -> list[str]:
    """The sample through validate, reference, qc and align: its BAM in staging."""
    reads = S3Uri(BUCKET, f"reads/{sample}_R1.fastq.gz"), S3Uri(BUCKET, f"reads/{sample}_R2.fastq.gz")
    reference = S3Uri(BUCKET, f"refs/{fasta.name}")
    s3.upload(r1, reads[0])
    s3.upload(r2, reads[1])
    s3.upload(fasta, reference)
    args = common_args(sample, *reads, reference, S3Uri(BUCKET, ".staging/one/"), ploidy)
    for step in ("validate", "reference", "qc", "align", "markdup"):
        assert main(["job", step, *args]) == 0, step
    return args


def records(vcf: Path) -> list[str]:
    """Every record line, every field (the header's command lines name scratch paths)."""
    done = subprocess.run(["bcftools", "view", "-H", str(vcf)], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def call_sharded(
    args: list[str], staging: S3Uri, caller: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[str]:
    """Every call job of the plan in `staging` (as Batch's array would run them), then the gather."""
    argv = [*args, "--staging", str(staging), "--caller", caller]
    sample = argv[argv.index("--sample") + 1]
    plan = shards.read_plan(s3.read_bytes(staging.join(SampleFiles(sample).shard_plan("call"))))
    for shard in range(len(plan)):
        monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", str(shard))
        assert main(["job", "call", *argv]) == 0, f"{caller} shard {shard}"
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX")

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert execute("concat", parse_params(parser.parse_args(["call", *argv])), concat.run) == 0
    vcf = s3.download(staging.join(f"{sample}.vcf.gz"), tmp_path / f"{staging.name}-{caller}.vcf.gz")
    return records(vcf)


def restage(args: list[str], name: str, extra: list[str]) -> S3Uri:
    """A second staging prefix with the same BAM, planned anew by the reference step (a cache hit)."""
    source = S3Uri.parse(args[args.index("--staging") + 1])
    staging = S3Uri(BUCKET, f".staging/{name}/")
    sample = args[args.index("--sample") + 1]
    files = SampleFiles(sample)
    for key in (files.bam, files.bai):
        s3.copy(source.join(key), staging.join(key))
    assert main(["job", "reference", *args, "--staging", str(staging), *extra]) == 0
    return staging


def plan_of(staging: S3Uri, sample: str) -> list[shards.Group]:
    return shards.read_plan(s3.read_bytes(staging.join(SampleFiles(sample).shard_plan("call"))))


@pytest.mark.realdata
@pytest.mark.skipif(not EBOV.is_dir(), reason=f"real data not present: {EBOV}")
def test_ebov_in_four_regions_equals_the_unsharded_call(
    bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fasta = EBOV / "KJ660346.2.fasta"
    args = prepare("G5012.3", EBOV / "G5012.3_R1.fastq.gz", EBOV / "G5012.3_R2.fastq.gz", fasta, ploidy=1)
    whole = restage(args, "whole", [])
    assert len(plan_of(whole, "G5012.3")) == 1, "19 kb stays one group with the default CallShardBases"
    sharded = restage(args, "sharded", ["--call-shard-bases", "5000"])
    plan = plan_of(sharded, "G5012.3")
    assert len(plan) == 4
    assert [(r.start, r.end) for group in plan for r in group] == [
        (0, 4739), (4739, 9479), (9479, 14219), (14219, 18959)
    ]  # fmt: skip
    for caller in CALLERS:
        expected = call_sharded(args, whole, caller, monkeypatch, tmp_path)
        assert len(expected) >= 15, caller
        assert call_sharded(args, sharded, caller, monkeypatch, tmp_path) == expected, caller


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSample:
    return simulate_sample(tmp_path_factory.mktemp("sim"), seed=11, length=60_000, depth=30.0)


def test_simulated_diploid_sharded_at_every_indel_equals_the_unsharded_call(
    bucket: str, simulated: SimulatedSample, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = prepare("sim", simulated.r1, simulated.r2, simulated.reference, ploidy=2)
    whole = restage(args, "whole", [])
    planned = restage(args, "planned", ["--call-shard-bases", "15000"])
    assert len(plan_of(planned, "sim")) == 4
    # a harder plan, written by hand: cuts at every true indel's first base and either side, where a region
    # edge meets a haplotype window and left-normalisation may move a record across the cut
    truth = subprocess.run(
        ["bcftools", "query", "-i", 'TYPE="indel"', "-f", "%POS\\n", str(simulated.truth_vcf)],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(truth) >= 5
    cuts = sorted({cut for pos in map(int, truth) for cut in (pos - 1, pos, pos + 1)})
    length = simulated.genome_length
    edges = [0, *cuts, length]
    contig = shards.read_fai(Path(f"{simulated.reference}.fai"))[0][0]
    regions = [shards.Region(contig=contig, start=a, end=b, bases=b - a) for a, b in pairwise(edges)]
    hand = restage(args, "hand", [])
    groups = [regions[index : index + 2] for index in range(0, len(regions), 2)]
    s3.write_json(hand.join(SampleFiles("sim").shard_plan("call")), shards.plan_json(groups))
    for caller in CALLERS:
        expected = call_sharded(args, whole, caller, monkeypatch, tmp_path)
        assert len(expected) >= 50, caller
        assert call_sharded(args, planned, caller, monkeypatch, tmp_path) == expected, caller
        assert call_sharded(args, hand, caller, monkeypatch, tmp_path) == expected, caller


def test_simulated_targets_sharded_equal_the_unsharded_targets_call(
    bucket: str,
    simulated: SimulatedSample,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # freebayes runs a tile's targets together (so the planner keeps them in one group): tiles
    # of 5 kb here, so that this 60 kb sample's panel splits
    monkeypatch.setattr(shards, "TILE_BASES", 5000)
    args = prepare("sim", simulated.r1, simulated.r2, simulated.reference, ploidy=2)
    contig = shards.read_fai(Path(f"{simulated.reference}.fai"))[0][0]
    # a panel: 2 kb targets every 5 kb, two of them overlapping (merged) and two 100 bp apart
    lines = [f"{contig}\t{start}\t{start + 2000}\n" for start in range(1000, 50_000, 5000)]
    lines += [f"{contig}\t2500\t3500\n", f"{contig}\t48100\t50000\n"]
    targets = tmp_path / "panel.bed"
    targets.write_text("".join(lines))
    panel = S3Uri(BUCKET, "panels/panel.bed")
    s3.upload(targets, panel)
    whole = restage(args, "targets-whole", ["--intervals", str(panel)])
    sharded = restage(args, "targets-sharded", ["--intervals", str(panel), "--call-shard-bases", "5000"])
    plan = plan_of(sharded, "sim")
    assert len(plan) == 4 and len(plan_of(whole, "sim")) == 1  # 22.4 kb of targets / 5000
    assert sum(len(group) for group in plan) == 11, "the overlapping pair merged, the close pair kept apart"
    for caller in CALLERS:
        whole_args = [*args, "--intervals", str(panel)]
        expected = call_sharded(whole_args, whole, caller, monkeypatch, tmp_path)
        assert len(expected) >= 10, caller
        positions = [int(line.split("\t")[1]) for line in expected]
        inside = [(int(f[1]), int(f[2])) for f in (line.split("\t") for line in lines)]
        assert all(any(s < p <= e for s, e in inside) for p in positions), "only calls inside the targets"
        assert call_sharded(whole_args, sharded, caller, monkeypatch, tmp_path) == expected, caller

    # a bad line in the BED: the reference step fails with one line naming the file and the line
    bad = S3Uri(BUCKET, "panels/bad.bed")
    s3.write_bytes(bad, f"{contig}\t10\t20\n{contig}\t500\t400\n".encode())
    capsys.readouterr()
    assert main(["job", "reference", *args, "--intervals", str(bad)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"genopipe reference: {bad}: line 2: start 500 is not before end 400"
    )


def test_a_call_job_fetches_only_its_slice_of_the_bam_and_fails_on_bytes_it_lacks(
    bucket: str,
    simulated: SimulatedSample,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = prepare("sim", simulated.r1, simulated.r2, simulated.reference, ploidy=2)
    staging = restage(args, "slice", ["--call-shard-bases", "5000"])
    group = plan_of(staging, "sim")[5]
    bam = s3.download(staging.join("sim.bam"), tmp_path / "whole" / "sim.bam")
    index = s3.download(staging.join("sim.bam.bai"), tmp_path / "whole" / "sim.bam.bai")
    size = bam.stat().st_size
    ranges = bai.byte_ranges(bai.read_bai(index), [(0, r.start, r.end) for r in group], size)
    # a twelfth of a 60 kb genome: 40% of its 1.5 MB BAM, as every range ends a whole BGZF block
    # (64 KiB) after its reads and the reads across 16 kb bins sit in chunks over the whole file;
    # bench/call_utilisation.py measures a 3 Mb sample
    assert sum(end - start for start, end in ranges) < size / 2
    sliced = tmp_path / "slice" / "sim.bam"
    s3.download_ranges(staging.join("sim.bam"), sliced, ranges)
    (tmp_path / "slice" / "sim.bam.bai").write_bytes(index.read_bytes())
    region = f"{group[0].contig}:{group[0].start + 1}-{group[-1].end}"
    reads = [subprocess.run(["samtools", "view", str(b), region], capture_output=True, check=True).stdout
             for b in (bam, sliced)]  # fmt: skip
    assert reads[0] and reads[0] == reads[1]

    # a slice without the group's reads: bcftools would read nothing and exit 0; the job fails
    monkeypatch.setattr(bai, "byte_ranges", lambda _index, _queries, size: [(0, 4096), (size - 28, size)])
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "5")
    capsys.readouterr()
    assert main(["job", "call", *args, "--staging", str(staging)]) == 1
    assert "bcftools could not read it: [E::" in capsys.readouterr().err


@pytest.fixture(scope="module")
def gapped(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSample:
    """Two contigs, the first with a 2 kb N gap in its middle (a genome's shape, small)."""
    import random

    rng = random.Random(5)
    folder = tmp_path_factory.mktemp("gapped")
    fasta = folder / "two.fa"
    first = "".join(rng.choices("ACGT", k=24_000)) + "N" * 2000 + "".join(rng.choices("ACGT", k=24_000))
    second = "".join(rng.choices("ACGT", k=20_000))
    fasta.write_text(f">ctgA\n{first}\n>ctgB\n{second}\n")
    return simulate_sample(folder / "sample", seed=13, reference=fasta, depth=30.0)


def test_two_contigs_cut_in_an_n_gap_equal_the_unsharded_call(
    bucket: str, gapped: SimulatedSample, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = prepare("sim", gapped.r1, gapped.r2, gapped.reference, ploidy=2)
    whole = restage(args, "whole", [])
    sharded = restage(args, "sharded", ["--call-shard-bases", "16000"])
    plan = plan_of(sharded, "sim")
    assert len(plan) == 4  # 68 kb real / 16 kb
    edges = [(r.contig, r.start, r.end) for group in plan for r in group]
    assert ("ctgA", 25_000) in {(contig, end) for contig, _, end in edges}, "a cut in the middle of the gap"
    assert {contig for contig, _, _ in edges} == {"ctgA", "ctgB"}
    for caller in CALLERS:
        expected = call_sharded(args, whole, caller, monkeypatch, tmp_path)
        assert {line.split("\t")[0] for line in expected} == {"ctgA", "ctgB"}, caller
        assert call_sharded(args, sharded, caller, monkeypatch, tmp_path) == expected, caller
