"""The shared step runner: parameters, threads, pipelines with pipefail semantics, tool versions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from genopipe.s3uri import S3Uri
from genopipe.steps.params import StepParams
from genopipe.steps.runner import Step, execute, threads_available
from genopipe.steps.tools import Pipeline, StepError, Tool, tool_version

READS = [{"r1": "s3://in/a b/x_R1.fastq.gz", "r2": "s3://in/a b/x_R2.fastq.gz"}]


def params(**overrides: object) -> StepParams:
    fields: dict[str, object] = {
        "sample": "NA12878.lib-1_a",
        "reads": json.dumps(READS),
        "reference": "s3://refs/genome.fa.gz",
        "staging": "s3://out/.staging/exec",
    }
    return StepParams.model_validate(fields | overrides)


def test_params_parse_the_common_command_line() -> None:
    p = params()
    assert p.reads[0].r1 == S3Uri("in", "a b/x_R1.fastq.gz")
    assert p.staging == S3Uri("out", ".staging/exec/")  # always a folder
    assert (p.aligner, p.ploidy, p.caller) == ("minimap2", 2, "bcftools")
    assert params(aligner="bwa", ploidy=1).ploidy == 1
    assert params(caller="freebayes").caller == "freebayes"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sample": "a/b"},
        {"sample": ""},
        {"reads": "[]"},
        {"reads": "not json"},
        {"reads": json.dumps([{"r1": "/local/x.fq.gz", "r2": "s3://b/y"}])},
        {"reference": "s3://bucket-only/"},
        {"aligner": "bowtie2"},
        {"ploidy": 3},
        {"caller": "gatk"},
    ],
)
def test_params_reject_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        params(**overrides)


def test_threads_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENOPIPE_THREADS", "3")
    assert threads_available() == 3
    monkeypatch.delenv("GENOPIPE_THREADS")
    assert threads_available() >= 1
    monkeypatch.setenv("GENOPIPE_THREADS", "many")
    with pytest.raises(StepError, match="GENOPIPE_THREADS"):
        threads_available()


def run(tmp_path: Path, *commands: Tool | list[str], stdout: Path | None = None) -> None:
    pipeline = Pipeline(commands, tmp_path / "logs", stdout=stdout).start()
    pipeline.wait()


def test_pipeline_streams_through_real_pipes(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    run(tmp_path, ["seq", "1", "100000"], ["awk", "$1 % 1000 == 0"], ["wc", "-l"], stdout=out)
    assert out.read_text().strip() == "100"


def test_any_failing_tool_fails_the_pipeline_with_its_stderr(tmp_path: Path) -> None:
    failing = Tool(["sh", "-c", "cat >/dev/null; echo 'bad block at 42' >&2; exit 3"], "s3://b/in.bam")
    with pytest.raises(StepError) as caught:
        run(tmp_path, ["seq", "1", "1000"], failing, ["cat"])
    assert caught.value.subject == "s3://b/in.bam"
    assert "sh failed (exit 3): bad block at 42" in caught.value.problem


def test_upstream_sigpipe_alone_is_not_a_failure_to_report_first(tmp_path: Path) -> None:
    # `yes` dies of SIGPIPE when the failing reader stops: the reader's failure is what is reported
    with pytest.raises(StepError, match="exit 4"):
        run(tmp_path, ["yes"], Tool(["sh", "-c", "head -c 10 >/dev/null; exit 4"], "reader"))


def test_missing_program_is_named(tmp_path: Path) -> None:
    with pytest.raises(StepError, match="not installed"):
        run(tmp_path, ["seq", "3"], ["no-such-tool-genopipe"])


def test_tool_version_is_the_exact_version_line() -> None:
    assert tool_version("samtools").startswith("samtools 1.")
    assert tool_version("bwa").startswith("0.7.")
    assert tool_version("awk")[0].isalpha()


def test_sigterm_stops_the_tools_and_removes_scratch(tmp_path: Path) -> None:
    # a step whose tool would run for a minute; Batch's SIGTERM must end it promptly and cleanly
    script = f"""
import os, sys
os.environ["GENOPIPE_SCRATCH"] = {str(tmp_path)!r}
from genopipe.steps.params import StepParams
from genopipe.steps.runner import execute
p = StepParams.model_validate({{"sample": "s", "reads": {json.dumps(json.dumps(READS))},
    "reference": "s3://r/g.fa", "staging": "s3://o/.staging/e/"}})
sys.exit(execute("align", p, lambda step: step.pipe(["sleep", "60"])))
"""
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not any(tmp_path.glob("genopipe-align-*/logs/*sleep*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 1
    assert err.strip() == "genopipe align: s3://o/.staging/e/: interrupted by signal 15"
    assert list(tmp_path.iterdir()) == []


def test_scratch_goes_under_genopipe_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []

    def body(step: Step) -> None:
        seen.append(step.scratch)
        raise StepError("x", "stop here (before recording versions in S3)")

    monkeypatch.setenv("GENOPIPE_SCRATCH", str(tmp_path))
    assert execute("validate", params(), body) == 1
    assert seen and seen[0].parent == tmp_path and seen[0].name.startswith("genopipe-validate-")
    assert list(tmp_path.iterdir()) == []  # removed when the step ends


def test_a_scratch_that_is_not_there_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENOPIPE_SCRATCH", str(tmp_path / "not-mounted"))
    ran: list[Path] = []
    assert execute("qc", params(), lambda step: ran.append(step.scratch)) == 1

    assert ran == []  # nothing started
    assert capsys.readouterr().err.strip() == (
        f"genopipe qc: GENOPIPE_SCRATCH={tmp_path / 'not-mounted'}: "
        "cannot make a scratch directory there: No such file or directory"
    )
