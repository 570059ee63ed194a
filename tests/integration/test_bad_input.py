"""Issue 6, bad input: every malformed FASTQ pair (cases 1-14) and a reference that is not a FASTA
(case 16) fail their step with one line naming the file, the record and the problem.

Run through `genopipe job validate|reference` on moto's in-process S3 with the real pigz/awk
check, the way a Batch job runs them. Case 15 (the sample sheet) is in tests/unit/test_samplesheet_errors.py;
the same failures through the whole local stack are in tests/e2e/test_reliability.py.
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from genopipe.aws import s3
from genopipe.cli import main
from genopipe.s3uri import S3Uri
from genopipe.steps.validate import MAX_LINE_BYTES

pytestmark = pytest.mark.tools

BUCKET = "genopipe-bad-input"
STAGING = S3Uri(BUCKET, ".staging/exec-bad/")


@pytest.fixture
def bucket(moto: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENOPIPE_THREADS", "1")
    boto3.client("s3").create_bucket(Bucket=BUCKET)


def records(n: int, mate: int, seq: str = "ACGTN", qual: str = "IIII#", plus: str = "+") -> str:
    return "".join(f"@read{i}/{mate} 1:N:0\n{seq}\n{plus}\n{qual}\n" for i in range(1, n + 1))


GOOD_R1, GOOD_R2 = records(3, 1), records(3, 2)


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


# (case, R1 bytes, R2 bytes, the file named, the expected problem after "<file>: ")
CASES = [
    ("1 header without @", gz(GOOD_R1.replace("@read2/1", "read2/1")), gz(GOOD_R2), "R1",
     "record 2: header line does not start with '@'"),
    ("2 missing + line", gz("@read1/1\nACGT\nIIII\n@read2/1\nACGT\n+\nIIII\n"), gz(GOOD_R2), "R1",
     "record 1: line 3 does not start with '+'"),
    ("2 wrong + line", gz(GOOD_R1), gz(records(3, 2).replace("\n+\n", "\n-\n")), "R2",
     "record 1: line 3 does not start with '+'"),
    ("3 +ID differs from the header", gz(GOOD_R1),
     gz(records(2, 2) + "@read3/2 1:N:0\nACGTN\n+read9/2 1:N:0\nIIII#\n"), "R2",
     "record 3: '+' line 'read9/2 1:N:0' differs from the header 'read3/2 1:N:0'"),
    ("4 truncated last record", gz(GOOD_R1 + "@read4/1\nACGT\n"), gz(GOOD_R2 + "@read4/2\nACGT\n"), "R1",
     "record 4: truncated: the last record has 2 of 4 lines"),
    ("5 sequence and quality lengths differ", gz(GOOD_R1), gz(records(3, 2, qual="III")), "R2",
     "record 1: quality length 3 differs from sequence length 5"),
    ("6 empty sequence", gz(records(3, 1, seq="", qual="")), gz(GOOD_R2), "R1",
     "record 1: empty sequence"),
    ("7 header that is only @", gz("@\nACGT\n+\nIIII\n"), gz("@\nACGT\n+\nIIII\n"), "R1",
     "record 1: empty read name"),
    ("8 bases outside IUPAC", gz(GOOD_R1), gz(records(3, 2, seq="ACGTX")), "R2",
     "record 1: sequence holds 'X', not an IUPAC base"),
    ("9 quality outside ! to ~", gz(records(3, 1, qual="III I")), gz(GOOD_R2), "R1",
     "record 1: quality line holds characters outside '!'..'~'"),
    ("10 read names differ", gz(GOOD_R1), gz(records(3, 2).replace("read2/2", "other2/2")), "R2",
     "record 2: read name 'other2' does not match R1's 'read2'"),
    ("11 record counts differ", gz(GOOD_R1), gz(records(2, 2)), "R2",
     "record 3: ends early: R2 has fewer records than R1"),
    ("12 truncated gzip", gz(records(200, 1))[:-40], gz(records(200, 2)), "R1", "not a valid gzip file"),
    ("12 corrupt gzip", gz(GOOD_R1), gz(GOOD_R2)[:20] + b"\x00" * 8 + gz(GOOD_R2)[28:], "R2",
     "not a valid gzip file"),
    ("13 not gzip at all", GOOD_R1.encode(), gz(GOOD_R2), "R1", "not a valid gzip file"),
    ("14 empty file", b"", b"", "R1", "empty file (0 bytes)"),
    ("14 gzip of nothing", gz(""), gz(""), "R1", "no reads"),
]  # fmt: skip


def run_validate(r1: bytes, r2: bytes, folder: str = "in") -> tuple[int, dict[str, S3Uri]]:
    uris = {"R1": S3Uri(BUCKET, f"{folder}/s_R1.fastq.gz"), "R2": S3Uri(BUCKET, f"{folder}/s_R2.fastq.gz")}
    s3.write_bytes(uris["R1"], r1)
    s3.write_bytes(uris["R2"], r2)
    reads = json.dumps([{"r1": str(uris["R1"]), "r2": str(uris["R2"])}])
    argv = ["job", "validate", "--sample", "s", "--reads", reads, "--reference", f"s3://{BUCKET}/ref.fa"]
    return main([*argv, "--staging", str(STAGING)]), uris


@pytest.mark.parametrize(("case", "r1", "r2", "named", "problem"), CASES, ids=[c[0] for c in CASES])
def test_bad_fastq_fails_validate_with_one_line(
    bucket: None,
    capsys: pytest.CaptureFixture[str],
    case: str,
    r1: bytes,
    r2: bytes,
    named: str,
    problem: str,
) -> None:
    code, uris = run_validate(r1, r2)
    err = capsys.readouterr().err.strip()

    assert code == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"genopipe validate: {uris[named]}: {problem}"), err
    # nothing is staged for a sample that failed validation
    assert not [item for item in s3.list_prefix(STAGING) if item.uri.name == "validate.json"]


BOMB_BYTES = 200 * 1024 * 1024  # the bomb is 2 GiB; validate must stop at the first MiB either way


def bomb(first: bytes, filler: bytes) -> bytes:
    """`first` followed by filler up to 200 MB with no newline: one line, ~0.2 MB of gzip."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as writer:
        writer.write(first)
        chunk = filler * (1024 * 1024 // len(filler))
        for _ in range(BOMB_BYTES // len(chunk)):
            writer.write(chunk)
    return out.getvalue()


@pytest.mark.parametrize(
    ("r1", "r2", "named", "problem"),
    [
        (lambda: bomb(b"", b"\0"), lambda: gz(GOOD_R2), "R1",
         "record 1: header line does not start with '@'"),
        (lambda: gz(GOOD_R1), lambda: bomb(b"@", b"A"), "R2",
         f"record 1: line 1 is longer than {MAX_LINE_BYTES} bytes"),
        (lambda: gz(GOOD_R1), lambda: bomb(b"@read1/2\n", b"ACGT"), "R2",
         f"record 1: line 2 is longer than {MAX_LINE_BYTES} bytes"),
    ],
    ids=["zeros as R1", "one endless header as R2", "one endless sequence as R2"],
)  # fmt: skip
def test_a_gzip_bomb_fails_validate_within_seconds(
    bucket: None,
    capsys: pytest.CaptureFixture[str],
    r1: Callable[[], bytes],
    r2: Callable[[], bytes],
    named: str,
    problem: str,
) -> None:
    """Issue 15, case 5: awk used to read the whole line before looking at its first byte."""
    started = time.perf_counter()
    code, uris = run_validate(r1(), r2())
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert err.startswith(f"genopipe validate: {uris[named]}: {problem}"), err
    assert seconds < 10, f"{seconds:.1f} s"  # ~1 s here, most of it making the bomb


def test_good_pair_passes_with_keys_holding_spaces_unicode_and_plus(bucket: None) -> None:
    code, _ = run_validate(gz(GOOD_R1), gz(GOOD_R2), folder="run 1+ü")
    assert code == 0
    assert s3.read_json(STAGING.join("validate.json"))["read_pairs"] == 3


def test_plus_line_repeating_the_header_is_accepted(bucket: None) -> None:
    r1 = "".join(f"@read{i}/1 1:N:0\nACGTN\n+read{i}/1 1:N:0\nIIII#\n" for i in range(1, 4))
    code, _ = run_validate(gz(r1), gz(GOOD_R2))
    assert code == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"this is not a FASTA file\nACGT\n", "not a FASTA file"),
        (gz(GOOD_R1), "not a FASTA file"),  # a FASTQ where the reference should be
        (b"", "not a FASTA file"),
    ],
    ids=["text", "fastq", "empty"],
)
def test_reference_that_is_not_a_fasta_is_named(
    bucket: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, problem: str
) -> None:
    reference = S3Uri(BUCKET, "refs/not a genome.fa")
    s3.write_bytes(reference, content)
    reads = json.dumps([{"r1": f"s3://{BUCKET}/a_R1.fastq.gz", "r2": f"s3://{BUCKET}/a_R2.fastq.gz"}])
    argv = ["job", "reference", "--sample", "s", "--reads", reads, "--reference", str(reference)]
    code = main([*argv, "--staging", str(STAGING)])
    err = capsys.readouterr().err.strip()

    assert code == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"genopipe reference: {reference}: "), err
    assert problem in err, err
