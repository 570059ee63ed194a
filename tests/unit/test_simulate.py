"""genopipe simulate: determinism, the truth set's shape, and the read pairs.

Needs the real tools (dwgsim, bcftools, bgzip, tabix, samtools), which `make test` installs.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
from pathlib import Path

import pytest

from genopipe.cli import main
from genopipe.truth.simulate import MIN_GAP, SimulatedSample, SimulateError, simulate_sample

pytestmark = pytest.mark.tools

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HS37D5 = SHARED_DATA / "human-ref" / "hs37d5.chr20_1-1000000.fasta.gz"
LENGTH = 30_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSample:
    return simulate_sample(tmp_path_factory.mktemp("sim-a"), seed=11, length=LENGTH, depth=10)


def truth_records(vcf: Path) -> list[list[str]]:
    with gzip.open(vcf, "rt") as handle:
        return [line.rstrip("\n").split("\t") for line in handle if not line.startswith("#")]


def fastq_names(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return [line.rstrip("\n") for number, line in enumerate(handle) if number % 4 == 0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_identical_bytes(sample: SimulatedSample, tmp_path: Path) -> None:
    # through the CLI this time, so both entry points are covered
    args = ["simulate", "--out", str(tmp_path), "--seed", "11", "--length", str(LENGTH), "--depth", "10"]
    assert main(args) == 0
    names = sorted(p.name for p in sample.out_dir.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "reference.fa",
        "reference.fa.fai",
        "sim_R1.fastq.gz",
        "sim_R2.fastq.gz",
        "truth.vcf.gz",
        "truth.vcf.gz.tbi",
    ]
    for name in names:
        assert digest(sample.out_dir / name) == digest(tmp_path / name), name


def test_gzip_headers_carry_no_time_or_name(sample: SimulatedSample) -> None:
    for path in (sample.r1, sample.r2, sample.truth_vcf):
        header = path.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b"
        assert header[4:8] == b"\x00\x00\x00\x00", f"{path.name}: gzip mtime is set"
        assert not header[3] & 0x08, f"{path.name}: gzip header carries a file name"


def test_other_seed_gives_other_truth(sample: SimulatedSample, tmp_path: Path) -> None:
    other = simulate_sample(tmp_path, seed=12, length=LENGTH, depth=2)
    assert truth_records(other.truth_vcf) != truth_records(sample.truth_vcf)


def test_truth_is_diploid_snps_and_indels_well_spaced(sample: SimulatedSample) -> None:
    records = truth_records(sample.truth_vcf)
    snps = [r for r in records if len(r[3]) == 1 and len(r[4]) == 1]
    indels = [r for r in records if len(r[3]) != len(r[4])]
    assert len(snps) + len(indels) == len(records)
    assert (len(snps), len(indels)) == (sample.snps, sample.indels)
    # ~1 variant per kb on 30 kb, some of them indels
    assert 15 <= len(records) <= 45
    assert len(indels) >= 2
    genotypes = {r[9] for r in records}
    assert "1|1" in genotypes
    assert genotypes & {"0|1", "1|0"}
    assert genotypes <= {"0|1", "1|0", "1|1"}
    assert all(r[6] == "PASS" for r in records)
    previous_end = 0
    for record in records:
        pos = int(record[1])
        assert pos - previous_end >= MIN_GAP, f"variant at {pos} too close"
        previous_end = pos + len(record[3]) - 1


def test_truth_matches_reference_and_is_normalised(sample: SimulatedSample) -> None:
    sequence = "".join(sample.reference.read_text().split("\n")[1:])
    assert len(sequence) == LENGTH == sample.genome_length
    for record in truth_records(sample.truth_vcf):
        pos, ref, alt = int(record[1]), record[3], record[4]
        assert sequence[pos - 1 : pos - 1 + len(ref)] == ref
        assert ref[0] == alt[0] or len(ref) == len(alt) == 1
    # bcftools agrees nothing needs left-aligning or fixing
    norm = ["bcftools", "norm", "-f", str(sample.reference), "-c", "e", "-Ov", "-o", "/dev/null"]
    result = subprocess.run(
        [*norm, str(sample.truth_vcf)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "total/split/realigned/skipped:\t" in result.stderr
    assert result.stderr.rstrip().endswith("/0/0/0")


def test_pairs_have_equal_counts_and_matching_names(sample: SimulatedSample) -> None:
    r1, r2 = fastq_names(sample.r1), fastq_names(sample.r2)
    assert len(r1) == len(r2) == sample.read_pairs
    assert r1 == r2
    assert len(set(r1)) == len(r1), "read names are not unique"
    assert all(name.startswith("@") and not name.endswith(("/1", "/2")) for name in r1)
    # both haplotypes contribute half the depth: 30 kb x 10 / 300 bp per pair = 1000 pairs
    assert sum(name.startswith("@h1_") for name in r1) == sum(name.startswith("@h2_") for name in r1) == 500


@pytest.mark.realdata
def test_real_reference_is_cut_and_variants_avoid_n(tmp_path: Path) -> None:
    if not HS37D5.is_file():
        pytest.skip(f"{HS37D5} absent (real data lives in ../shared/data)")
    result = simulate_sample(tmp_path, seed=5, reference=HS37D5, length=120_000, depth=2, sample="hs")
    assert result.r1.name == "hs_R1.fastq.gz"
    lines = result.reference.read_text().split("\n")
    assert lines[0] == ">20"
    sequence = "".join(lines[1:])
    assert len(sequence) == 120_000
    assert sequence[:60_000] == "N" * 60_000  # chr20 starts with a 60 kb gap
    positions = [int(r[1]) for r in truth_records(result.truth_vcf)]
    assert positions and min(positions) > 60_000
    assert all("N" not in sequence[p - 100 : p + 100] for p in positions)


def test_bad_inputs_fail_with_the_file_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.fa"
    with pytest.raises(SimulateError, match=r"nope\.fa: no such file"):
        simulate_sample(tmp_path / "out", seed=1, reference=missing)
    not_fasta = tmp_path / "reads.txt"
    not_fasta.write_text("hello\n")
    with pytest.raises(SimulateError, match=r"reads\.txt: not a FASTA file"):
        simulate_sample(tmp_path / "out", seed=1, reference=not_fasta)
    with pytest.raises(SimulateError, match="sample name"):
        simulate_sample(tmp_path / "out", seed=1, sample="a/b")
    assert not (tmp_path / "out").exists()


def test_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--out", str(tmp_path), "--seed", "1", "--reference", str(tmp_path / "x.fa")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("genopipe simulate: ") and "x.fa: no such file" in err
