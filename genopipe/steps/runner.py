"""The step runner: parameters in, a scratch directory, threads, versions out, the one-line error.

Every step is a function `run(step: Step) -> None` in `genopipe/steps/<name>.py`. `execute()` gives it
a `Step` (parsed parameters, a scratch directory that is removed afterwards, the thread count) and
turns failures into the one-line error of docs/internals.md: `genopipe <step>: <input>: <problem>`,
exit 1. Tools run through `Step.pipe()`: real OS pipes between processes, stderr of each kept in
scratch, and `pipefail` semantics (any failing tool fails the step, with its stderr tail). Every
tool that ran is versioned into `versions/<step>.json` under the staging prefix.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genopipe.aws import s3
from genopipe.aws.s3 import S3Error
from genopipe.contracts import Lane
from genopipe.layout import SampleFiles, versions_key
from genopipe.s3uri import S3Uri
from genopipe.steps.params import StepParams
from genopipe.steps.tools import Command, Pipeline, StepError, tool_version


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


@dataclass
class Step:
    """What a step function gets: its parameters, scratch directory and thread count."""

    name: str
    params: StepParams
    scratch: Path
    threads: int
    programs: dict[str, str] = field(default_factory=dict)  # program name -> path as invoked
    _versions: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> SampleFiles:
        """The names of this sample's staged and published files (genopipe.layout)."""
        return SampleFiles(self.params.sample)

    @property
    def shard_index(self) -> int:
        """Which shard of a scattered step this job is: Batch's array index, 0 outside an array."""
        configured = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX", "").strip()
        if not configured:
            return 0
        if not configured.isdigit():
            raise StepError("AWS_BATCH_JOB_ARRAY_INDEX", f"not a whole number >= 0: {configured!r}")
        return int(configured)

    def staged(self, *parts: str) -> S3Uri:
        """A key under the staging prefix."""
        return self.params.staging.join(*parts)

    def path(self, *parts: str) -> Path:
        """A path in scratch, its folder created."""
        target = self.scratch.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def fetch(self, uri: S3Uri, *parts: str, etag: str | None = None) -> Path:
        """Download an S3 object into scratch (default name: the key's last component); with
        `etag`, exactly that version, or the step fails naming the file (genopipe.aws.s3.download)."""
        return s3.download(uri, self.path(*(parts or ("in", uri.name))), etag=etag)

    def fetch_lane(self, number: int, lane: Lane) -> tuple[Path, Path]:
        """A lane's R1 and R2 into scratch: the bytes the intake admitted (the lane's ETags)."""
        folder = f"L{number}"
        r1 = self.fetch(lane.r1, "in", folder, "R1.fastq.gz", etag=lane.r1_etag)
        r2 = self.fetch(lane.r2, "in", folder, "R2.fastq.gz", etag=lane.r2_etag)
        return r1, r2

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
        s3.write_json(self.staged(versions_key(self.name)), versions)
        return versions


def scratch_root() -> Path | None:
    """`GENOPIPE_SCRATCH`: where steps put their scratch directories. On Batch it is `/scratch`,
    the instance's data volume sized for the input (template.yaml, `ScratchVolumeGiB`), not the
    container's ~30 GiB root; unset, the system's temporary folder."""
    configured = os.environ.get("GENOPIPE_SCRATCH", "").strip()
    return Path(configured) if configured else None


def make_scratch(name: str) -> Path:
    """A scratch directory of its own under `scratch_root()` (jobs on one instance share /scratch).
    A GENOPIPE_SCRATCH that is missing or not writable (e.g. the volume was not mounted) is a
    StepError naming it, before any work starts."""
    root = scratch_root()
    try:
        return Path(tempfile.mkdtemp(prefix=f"genopipe-{name}-", dir=root))
    except OSError as error:
        where = f"GENOPIPE_SCRATCH={root}" if root is not None else tempfile.gettempdir()
        raise StepError(where, f"cannot make a scratch directory there: {error.strerror or error}") from error


def execute(name: str, params: StepParams, body: Callable[[Step], None]) -> int:
    """Run one step; returns the exit code (0, or 1 after printing the one-line error)."""
    try:
        scratch = make_scratch(name)
    except StepError as error:
        _fail(name, error.subject, error.problem)
        return 1
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
