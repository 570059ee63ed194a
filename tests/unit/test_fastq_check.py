"""validate's FASTQ pair check (pigz | awk) on small local files: the record-level policy."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from genopipe.steps.validate import line_cap, pair_check


def verdict(tmp_path: Path, r1_text: str, r2_text: str) -> str:
    r1, r2 = tmp_path / "r1.fq.gz", tmp_path / "r2.fq.gz"
    r1.write_bytes(gzip.compress(r1_text.encode()))
    r2.write_bytes(gzip.compress(r2_text.encode()))
    pigz = subprocess.Popen(["pigz", "-dc", str(r1)], stdout=subprocess.PIPE)
    capped = subprocess.Popen(line_cap(), stdin=pigz.stdout, stdout=subprocess.PIPE)
    assert pigz.stdout is not None
    pigz.stdout.close()
    check = pair_check(r2, tmp_path / "r2-status.txt")
    done = subprocess.run(check, stdin=capped.stdout, capture_output=True, text=True)
    capped.wait()
    pigz.wait()
    return done.stdout.strip()


def fastq(n: int, mate: int, seq: str = "ACGTN", qual: str = "IIII#") -> str:
    return "".join(f"@read{i}/{mate} extra words\n{seq}\n+\n{qual}\n" for i in range(1, n + 1))


def test_good_pair(tmp_path: Path) -> None:
    assert verdict(tmp_path, fastq(3, 1), fastq(3, 2)) == "ok 3"


def test_names_match_without_mate_suffix_or_comment(tmp_path: Path) -> None:
    r2 = fastq(2, 2).replace("/2 extra words", " 2:N:0:ACGT")
    assert verdict(tmp_path, fastq(2, 1), r2) == "ok 2"


@pytest.mark.parametrize(
    ("r1", "r2", "expected"),
    [
        (fastq(3, 1).replace("\n", "\r\n"), fastq(3, 2), "1 1 CRLF (Windows) line ending"),
        # a wrapped (multi-line) record: sequence over two lines
        ("@a/1\nACG\nT\n+\nIIII\n", "@a/2\nACGT\n+\nIIII\n", "1 1 line 3 does not start with '+'"),
        (fastq(2, 1), fastq(3, 2), "1 3 ends early: R1 has fewer records than R2"),
        (fastq(2, 1), "", "2 1 ends early: R2 has fewer records than R1"),
        (fastq(2, 1, seq="AC1T"), fastq(2, 2), "1 1 sequence holds '1', not an IUPAC base"),
        (fastq(2, 1) + "@read3/1\nAC\n", fastq(3, 2), "1 3 truncated: the last record has 2 of 4 lines"),
        ("", "", "1 0 no reads"),
    ],
)
def test_problems_name_the_file_and_record(tmp_path: Path, r1: str, r2: str, expected: str) -> None:
    assert verdict(tmp_path, r1, r2).startswith(expected)
