"""Tool pipelines for the job steps: real OS pipes between processes, stderr of each kept,
`pipefail` semantics, the one-line error a person can act on, and exact tool versions."""

from __future__ import annotations

import importlib.metadata
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_STDERR_TAIL_LINES = 3


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

    def poll(self) -> bool | None:
        """None while any process runs; else whether every one exited 0."""
        codes = [proc.poll() for _, proc, _ in self._procs]
        if any(code is None for code in codes):
            return None if all(code in (None, 0) for code in codes) else False
        return all(code == 0 for code in codes)

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
