"""How one attempt of one Batch job runs on this machine.

The local Batch executor (`genopipe.local.batch`) decides *when* an attempt runs; a `JobRunner`
decides *how*: `NativeRunner` runs `genopipe job` + the job definition's command as a process,
`DockerRunner` (`genopipe.local.docker`) runs the job definition's image.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel


class JobLaunch(BaseModel):
    """One attempt of one Batch job."""

    job_id: str
    job_name: str
    image: str
    command: list[str]  # the job definition's Command, Ref:: already substituted
    environment: dict[str, str]  # job definition + overrides + AWS_ENDPOINT_URL, GENOPIPE_THREADS
    vcpus: int
    memory_mib: int


class JobRunner(Protocol):
    def run(self, launch: JobLaunch, log: Callable[[str], None], cancel: threading.Event) -> int:
        """Block until the attempt ends; stream output lines to `log`; kill it when `cancel` is set."""
        ...


def _genopipe_command() -> list[str]:
    """`genopipe` from the same environment as this process (a venv need not be on PATH)."""
    script = Path(sys.executable).with_name("genopipe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "genopipe.cli"]


def stream_process(
    argv: list[str], env: dict[str, str], log: Callable[[str], None], cancel: threading.Event
) -> int:
    """Run `argv`, send its merged stdout/stderr to `log` line by line, kill it if `cancel` is set."""
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group, so a reclaim kills the whole pipeline
    )

    def watch_cancel() -> None:
        while process.poll() is None:
            if cancel.wait(0.1):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                return

    watcher = threading.Thread(target=watch_cancel, daemon=True)
    watcher.start()
    assert process.stdout is not None
    for line in process.stdout:
        log(line.rstrip("\n"))
    code = process.wait()
    watcher.join()
    return code


class NativeRunner:
    """Runs `genopipe job` + the command as a local process (the tools come from this machine)."""

    def run(self, launch: JobLaunch, log: Callable[[str], None], cancel: threading.Event) -> int:
        env = {**os.environ, **launch.environment}
        return stream_process([*_genopipe_command(), "job", *launch.command], env, log, cancel)
