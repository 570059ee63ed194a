"""validate: check every FASTQ pair before any heavy work.

Per lane, one streaming pass with no Python per record: `pigz -dc R1 | fold -b -w <cap + 1> | awk
'<FASTQ_PAIR_CHECK>'`, where awk reads R2 in lockstep from its own `pigz -dc R2 | fold ...` pipe and
stops at the first bad record, reporting its number. `fold` caps the line length (MAX_LINE_BYTES)
so that a file that is one huge line (a gzip bomb) fails on its first MiB. pigz checks gzip
integrity (CRC and length of every member, so a truncated or corrupt file fails even when its
records look fine).

Checked: gzip integrity; 4-line records (`@` header with a name, a non-empty sequence of IUPAC
letters or `.`/`-`, a `+` line that is bare or repeats the header, quality as long as the sequence,
printable qualities `!`..`~`); equal record counts; matching read names in
R1 and R2 (the first word of the header, with a trailing `/1` or `/2` removed); at least one record.

Policy, documented in the README:
- A line longer than MAX_LINE_BYTES (1 MiB) is rejected, and a header that does not start with `@`
  is rejected before the rest of its line is read.
- CRLF (Windows) line endings are rejected with "convert with dos2unix": the aligners would keep
  the `\\r` in names and qualities, so accepting them silently would corrupt the outputs.
- Wrapped (multi-line) FASTQ records are rejected: the pipeline's tools read 4-line records; such
  files show up as "record N: line 3 does not start with '+' ..." or a length mismatch.

Reads exactly the bytes the intake admitted (each lane's ETags; a hand-run step without them pins
what is there when it starts), one lane at a time: a lane's files leave scratch once checked.
Writes `validate.json`: `{"lanes": [{"r1", "r2", "records"}],
"read_pairs": total, "inputs": [{"uri", "etag", "size"}]}` (the objects read, for the manifest).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from genopipe.aws import s3
from genopipe.contracts import Lane
from genopipe.layout import VALIDATE_JSON
from genopipe.steps.runner import Step
from genopipe.steps.tools import StepError, Tool

# The longest FASTQ line validate reads (header, sequence or quality): 1 MiB. Paired short reads
# are at most a few hundred bases and long reads mostly well under 1 Mb, so no real FASTQ comes
# near it, while a line this long still costs awk only a few MiB. What it stops is a file that is
# one endless line (a gzip bomb: 9 MB of gzip holding 2 GiB of zeros): awk would read all of it
# before it could look at the first byte; capped, it fails within the first MiB.
MAX_LINE_BYTES = 1024 * 1024

# Prints "ok <records>" and exits 0, or "<1|2> <record> <problem>" and exits 3. `r2` is the
# command that decompresses R2; its exit status is checked so a corrupt R2 is named as such: read
# from the file `r2_status` when set (the command is a pipe, whose own status is fold's), else
# close()'s. `cap`: lines longer than this many bytes fail (the input comes through `line_cap()`,
# which cuts a longer line after cap + 1 bytes, so awk never holds more).
FASTQ_PAIR_CHECK = r"""
function r2_exit(    status, saved) {
    r2_closed = 1
    status = close(r2)
    if (r2_status != "" && (getline saved < r2_status) > 0) status = saved + 0
    return status
}
function fail(side, problem,    status) {
    # a corrupt R2 stream explains whatever looked wrong in its records: name that instead
    # (SIGPIPE, 141 in mawk and sh, 269 in gawk: pigz stopped because we did, no verdict on its gzip)
    if (side == 2 && !r2_closed) {
        status = r2_exit()
        if (status != 0 && status != 141 && status != 269) {
            rec = 0
            problem = "not a valid gzip file (pigz exit " status ")"
        }
    }
    printf "%s %d %s\n", side, rec, problem
    bad = 1
    exit 3
}
function r2_ended(    status) {
    status = r2_exit()
    if (status != 0) { rec = 0; fail(2, "not a valid gzip file (pigz exit " status ")") }
}
function check(side, line, k) {
    # the first byte, then the length, before anything that looks at the whole line
    if (k == 1 && substr(line, 1, 1) != "@")
        fail(side, "header line does not start with '@' (not a 4-line FASTQ record?)")
    if (cap > 0 && length(line) > cap)
        fail(side, "line " k " is longer than " cap " bytes, the limit for a FASTQ line (not FASTQ?)")
    if (line ~ /\r$/) fail(side, "CRLF (Windows) line ending; convert the file with dos2unix")
    if (k == 1) {
        if (length(line) < 2) fail(side, "empty read name")
        header[side] = line
    } else if (k == 2) {
        if (line == "") fail(side, "empty sequence")
        if (match(line, /[^ACGTUNRYSWKMBDHVacgtunryswkmbdhv.-]/))
            fail(side, "sequence holds '" substr(line, RSTART, 1) "', not an IUPAC base")
    } else if (k == 3) {
        if (substr(line, 1, 1) != "+")
            fail(side, "line 3 does not start with '+' (wrapped multi-line records are not supported)")
        # `+` alone, or `+` repeating the header (the old Sanger style)
        if (length(line) > 1 && substr(line, 2) != substr(header[side], 2))
            fail(side, "'+' line '" substr(line, 2) "' differs from the header '" substr(header[side], 2) "'")
    } else {
        if (line ~ /[^!-~]/) fail(side, "quality line holds characters outside '!'..'~'")
    }
}
function read_name(header,    name) {
    name = substr(header, 2)
    sub(/[ \t].*/, "", name)
    sub(/\/[12]$/, "", name)
    return name
}
{
    k = (NR - 1) % 4 + 1
    rec = int((NR - 1) / 4) + 1
    got = (r2 | getline mate)
    if (got <= 0) { r2_ended(); fail(2, "ends early: R2 has fewer records than R1") }
    check(1, $0, k); check(2, mate, k)
    if (k == 1) {
        if (read_name($0) != read_name(mate))
            fail(2, "read name '" read_name(mate) "' does not match R1's '" read_name($0) "'")
    } else if (k == 2) {
        len1 = length($0); len2 = length(mate)
    } else if (k == 4) {
        if (length($0) != len1)
            fail(1, "quality length " length($0) " differs from sequence length " len1)
        if (length(mate) != len2)
            fail(2, "quality length " length(mate) " differs from sequence length " len2)
    }
}
END {
    if (bad) exit 3
    rec = int(NR / 4) + 1
    if (NR % 4 != 0) fail(1, "truncated: the last record has " NR % 4 " of 4 lines")
    if ((r2 | getline mate) > 0) fail(1, "ends early: R1 has fewer records than R2")
    r2_ended()
    if (NR == 0) { rec = 0; fail(1, "no reads") }
    printf "ok %d\n", NR / 4
}
"""


def line_cap() -> list[str]:
    """A filter that cuts every line longer than MAX_LINE_BYTES after MAX_LINE_BYTES + 1 bytes, as
    it streams (`fold -b` counts bytes and never holds a line): the check then fails such a line
    on its first piece, and the rest of the stream is never read."""
    return ["fold", "-b", "-w", str(MAX_LINE_BYTES + 1)]


def pair_check(r2: Path, r2_status: Path) -> list[str]:
    """The awk command that reads R1 (capped) on stdin and R2 through its own capped pipe; sh has
    no pipefail, so pigz's exit status for R2 goes to `r2_status`."""
    r2_command = f"(pigz -dc '{r2}'; echo $? > '{r2_status}') | {' '.join(line_cap())}"
    variables = [f"cap={MAX_LINE_BYTES}", f"r2={r2_command}", f"r2_status={r2_status}"]
    return ["awk", *(arg for variable in variables for arg in ("-v", variable)), FASTQ_PAIR_CHECK]


def check_lane(step: Step, number: int, lane: Lane) -> tuple[int, list[dict[str, str | int | None]]]:
    """Validate one FASTQ pair; returns its record count and the objects read (URI, ETag, size),
    or raises StepError. The lane's copy leaves scratch once checked, so validate's scratch peak
    is its largest lane, not the sample (a 100 GB genome in 8 lanes: ~12.5 GB, not 100 GB)."""
    if lane.r1_etag is None or lane.r2_etag is None:  # a hand-run step: pin what is there now
        lane = lane.pinned({str(uri): s3.head(uri).etag for uri in (lane.r1, lane.r2)})
    r1, r2 = step.fetch_lane(number, lane)
    try:
        return _check_pair(step, number, lane, r1, r2)
    finally:
        shutil.rmtree(r1.parent, ignore_errors=True)  # in/L<n>/: the pair, its verdict, pigz's status


def _check_pair(
    step: Step, number: int, lane: Lane, r1: Path, r2: Path
) -> tuple[int, list[dict[str, str | int | None]]]:
    read = [
        {"uri": str(uri), "etag": etag, "size": path.stat().st_size}
        for uri, etag, path in ((lane.r1, lane.r1_etag, r1), (lane.r2, lane.r2_etag, r2))
    ]
    for uri, path in ((lane.r1, r1), (lane.r2, r2)):
        if path.stat().st_size == 0:
            raise StepError(uri, "empty file (0 bytes)")
    verdict = step.path("in", f"L{number}", "verdict.txt")
    r2_status = step.path("in", f"L{number}", "r2-pigz-status.txt")
    step.programs.setdefault("pigz", "pigz")
    try:
        step.pipe(
            Tool(["pigz", "-dc", str(r1)], lane.r1),
            Tool(line_cap(), lane.r1),
            Tool(pair_check(r2, r2_status), lane.r1),
            stdout=verdict,
        )
    except StepError as error:
        # a broken R1 gzip stream explains whatever awk saw after it, so it is reported first
        if error.problem.startswith("pigz"):
            raise StepError(lane.r1, f"not a valid gzip file: {error.problem}") from None
        words = verdict.read_text().split(maxsplit=2)
        if len(words) == 3 and words[0] in {"1", "2"}:
            side, record, problem = words
            subject = lane.r1 if side == "1" else lane.r2
            raise StepError(subject, problem if record == "0" else f"record {record}: {problem}") from None
        raise
    words = verdict.read_text().split()
    if len(words) != 2 or words[0] != "ok":
        raise StepError(lane.r1, f"FASTQ check gave no verdict: {' '.join(words)!r}")
    return int(words[1]), read


def run(step: Step) -> None:
    lanes: list[dict[str, object]] = []
    inputs: list[dict[str, str | int | None]] = []
    for number, lane in enumerate(step.params.reads, start=1):
        if lane.r1 == lane.r2:
            raise StepError(lane.r1, "R1 and R2 are the same file")
        records, read = check_lane(step, number, lane)
        lanes.append({"r1": str(lane.r1), "r2": str(lane.r2), "records": records})
        inputs.extend(read)
    total = sum(int(str(lane["records"])) for lane in lanes)
    s3.write_json(step.staged(VALIDATE_JSON), {"lanes": lanes, "read_pairs": total, "inputs": inputs})
