"""The shared step runner: parameters, scratch space, threads, tool pipelines, versions, errors.

Every step is a function `run(step: Step) -> None` in `genopipe/steps/<name>.py`. `execute()` gives it
a `Step` (parsed parameters, a scratch directory that is removed afterwards, the thread count) and
turns failures into the one-line error of docs/internals.md: `genopipe <step>: <input>: <problem>`,
exit 1. Tools run through `Step.pipe()`: real OS pipes between processes, stderr of each kept in
scratch, and `pipefail` semantics (any failing tool fails the step, with its stderr tail). Every
tool that ran is versioned into `versions/<step>.json` under the staging prefix.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, field_validator

from genopipe import s3
from genopipe.s3 import S3Error, S3Uri

STEP_NAMES = ("validate", "reference", "qc", "align", "call", "report")
_STDERR_TAIL_LINES = 3


def _parse_s3_uri(value: object) -> S3Uri:
    if isinstance(value, S3Uri):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an s3:// URI string")
    uri = S3Uri.parse(value)
    if not uri.key.strip("/"):
        raise ValueError(f"s3 URI has no key: {value!r}")
    return uri


S3UriField = Annotated[S3Uri, PlainValidator(_parse_s3_uri), PlainSerializer(str, return_type=str)]


class Lane(BaseModel):
    """One sequencing lane: a FASTQ pair."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    r1: S3UriField
    r2: S3UriField


class StepParams(BaseModel):
    """The common command line of every step (docs/internals.md, "Job steps")."""

    model_config = ConfigDict(frozen=True)
    sample: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    reads: list[Lane] = Field(min_length=1)
    reference: S3UriField
    staging: S3UriField
    aligner: Literal["minimap2", "bwa"] = "minimap2"
    ploidy: Literal[1, 2] = 2
    caller: Literal["bcftools", "freebayes"] = "bcftools"

    @field_validator("reads", mode="before")
    @classmethod
    def _reads_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("staging", mode="after")
    @classmethod
    def _staging_is_a_folder(cls, value: S3Uri) -> S3Uri:
        return value.as_prefix()


class StepError(Exception):
    """A failure a person can act on: `subject` is the input it concerns (an S3 URI or a file name)."""

    def __init__(self, subject: object, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")
        self.subject = str(subject)
        self.problem = problem


@dataclass(frozen=True)
class Tool:
    """One command of a pipeline; `subject` is the input named if it fails (default: the program)."""

    argv: Sequence[str]
    subject: object = None

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name


Command = Tool | Sequence[str]


def threads_available() -> int:
    """`GENOPIPE_THREADS` (job definitions set it to their vCPUs), else the CPUs we may run on."""
    configured = os.environ.get("GENOPIPE_THREADS", "").strip()
    if configured:
        try:
            count = int(configured)
        except ValueError:
            raise StepError("GENOPIPE_THREADS", f"not a whole number: {configured!r}") from None
        if count < 1:
            raise StepError("GENOPIPE_THREADS", f"must be at least 1, got {count}")
        return count
    return len(os.sched_getaffinity(0))


def _stderr_tail(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return " / ".join(lines[-_STDERR_TAIL_LINES:])


class Pipeline:
    """Processes joined by OS pipes: `a | b | c`, optionally `< stdin` and `> stdout`.

    `start()` launches all of them; `wait()` waits for all and raises StepError for the first tool
    that failed (a tool killed by SIGPIPE only counts when nothing else failed, since it merely
    saw its reader exit), naming the tool's subject and the tail of its stderr.
    """

    def __init__(
        self,
        commands: Sequence[Command],
        log_dir: Path,
        stdin: Path | None = None,
        stdout: Path | None = None,
    ) -> None:
        if not commands:
            raise ValueError("a pipeline needs at least one command")
        self.tools = [c if isinstance(c, Tool) else Tool(list(c)) for c in commands]
        self.log_dir = log_dir
        self.stdin = stdin
        self.stdout = stdout
        self._procs: list[tuple[Tool, subprocess.Popen[bytes], Path]] = []

    def start(self) -> Pipeline:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        first_in = self.stdin.open("rb") if self.stdin is not None else None
        last_out = self.stdout.open("wb") if self.stdout is not None else None
        upstream: IO[bytes] | None = first_in
        try:
            for index, tool in enumerate(self.tools):
                last = index == len(self.tools) - 1
                sink: IO[bytes] | int = subprocess.PIPE
                if last:
                    sink = last_out if last_out is not None else subprocess.DEVNULL
                err_path = self.log_dir / f"{len(list(self.log_dir.iterdir())):03d}-{tool.program}.stderr"
                with err_path.open("wb") as err:
                    try:
                        proc = subprocess.Popen(
                            list(tool.argv),
                            stdin=upstream if upstream is not None else subprocess.DEVNULL,
                            stdout=sink,
                            stderr=err,
                        )
                    except FileNotFoundError:
                        self.kill()
                        raise StepError(tool.subject or tool.program, "not installed") from None
                if upstream is not None:
                    upstream.close()  # the child holds the pipe now; our copy would hide its EOF
                upstream = proc.stdout
                self._procs.append((tool, proc, err_path))
        finally:
            for handle in (first_in, last_out):
                if handle is not None:
                    handle.close()
        return self

    def wait(self) -> None:
        failures = []
        for tool, proc, err_path in self._procs:
            code = proc.wait()
            if code != 0:
                failures.append((tool, code, err_path))
        if not failures:
            return
        real = [f for f in failures if f[1] != -signal.SIGPIPE] or failures
        tool, code, err_path = real[0]
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        tail = _stderr_tail(err_path)
        raise StepError(
            tool.subject or tool.program, f"{tool.program} failed ({how})" + (f": {tail}" if tail else "")
        )

    def kill(self) -> None:
        for _, proc, _ in self._procs:
            if proc.poll() is None:
                proc.kill()
        for _, proc, _ in self._procs:
            proc.wait()


# how to ask each program for its exact version; anything else gets `--version`
_VERSION_ARGS: dict[str, list[str]] = {
    "bwa": [],  # prints its usage (with "Version: ...") and exits 1
    "awk": ["-W", "version"],
    "mawk": ["-W", "version"],
}
_VERSION_LINE = re.compile(r"\d+\.\d+")


def tool_version(program: str) -> str:
    """The first line of the program's version output that holds a version number."""
    if Path(program) == Path(sys.executable).parent / "multiqc":
        # this environment's MultiQC: its package metadata is exact, while `multiqc --version`
        # imports all of MultiQC (~1.3 s, measured by bench/step_chain.py)
        try:
            return f"multiqc, version {importlib.metadata.version('multiqc')}"
        except importlib.metadata.PackageNotFoundError:
            pass
    argv = [program, *_VERSION_ARGS.get(Path(program).name, ["--version"])]
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=60, check=False, encoding="utf-8", errors="replace"
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        if _VERSION_LINE.search(line):
            return line.replace("Version:", "").strip()
    return "unknown"


def multiqc_program() -> str:
    """MultiQC lives in the same environment as genopipe; fall back to PATH."""
    beside = Path(sys.executable).parent / "multiqc"
    return str(beside) if beside.exists() else "multiqc"


@dataclass
class Step:
    """What a step function gets: its parameters, scratch directory and thread count."""

    name: str
    params: StepParams
    scratch: Path
    threads: int
    programs: dict[str, str] = field(default_factory=dict)  # program name -> path as invoked
    _versions: dict[str, str] = field(default_factory=dict)

    def staged(self, *parts: str) -> S3Uri:
        """A key under the staging prefix."""
        return self.params.staging.join(*parts)

    def path(self, *parts: str) -> Path:
        """A path in scratch, its folder created."""
        target = self.scratch.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def fetch(self, uri: S3Uri, *parts: str) -> Path:
        """Download an S3 object into scratch (default name: the key's last component)."""
        return s3.download(uri, self.path(*(parts or ("in", uri.name))))

    def pipeline(self, *commands: Command, stdin: Path | None = None, stdout: Path | None = None) -> Pipeline:
        pipeline = Pipeline(commands, self.scratch / "logs", stdin=stdin, stdout=stdout)
        for tool in pipeline.tools:
            self.programs.setdefault(tool.program, tool.argv[0])
        return pipeline

    def pipe(self, *commands: Command, stdin: Path | None = None, stdout: Path | None = None) -> None:
        """Run `a | b | c` to completion (see Pipeline)."""
        pipeline = self.pipeline(*commands, stdin=stdin, stdout=stdout).start()
        try:
            pipeline.wait()
        finally:
            pipeline.kill()

    def tool_versions(self) -> dict[str, str]:
        """Exact versions of every program this step has run so far (asked once per program)."""
        for name, argv0 in self.programs.items():
            if name not in self._versions:
                self._versions[name] = tool_version(argv0)
        return dict(sorted(self._versions.items()))

    def record_versions(self) -> dict[str, str]:
        versions = self.tool_versions()
        s3.write_json(self.staged("versions", f"{self.name}.json"), versions)
        return versions


def scratch_root() -> Path | None:
    configured = os.environ.get("GENOPIPE_SCRATCH")
    return Path(configured) if configured else None


def execute(name: str, params: StepParams, body: Callable[[Step], None]) -> int:
    """Run one step; returns the exit code (0, or 1 after printing the one-line error)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"genopipe-{name}-", dir=scratch_root()))
    _stop_on_sigterm(params.staging)
    try:
        step = Step(name=name, params=params, scratch=scratch, threads=threads_available())
        body(step)
        step.record_versions()
        return 0
    except StepError as error:
        _fail(name, error.subject, error.problem)
    except S3Error as error:
        _fail(name, error.uri, error.problem)
    except Exception as error:  # a bug: keep the traceback, but end with the one-line contract
        traceback.print_exc(file=sys.stderr)
        _fail(name, str(params.staging), f"internal error: {type(error).__name__}: {error}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1


def _stop_on_sigterm(staging: S3Uri) -> None:
    """Batch sends SIGTERM before killing a job (e.g. a Spot reclaim): stop the tools, clean up."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, _frame: object) -> None:
        raise StepError(staging, f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def _fail(step: str, subject: str, problem: str) -> None:
    one_line = " ".join(f"genopipe {step}: {subject}: {problem}".split())
    print(one_line, file=sys.stderr, flush=True)
