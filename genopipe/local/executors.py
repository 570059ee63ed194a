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

from genopipe.local import environment


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


OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"
MEMORY_KILL_EXIT = 137  # what a container killed by SIGKILL exits with


class MemoryLimitExceeded(Exception):
    pass


def process_group_rss_mib(pgid: int) -> float:
    """Resident memory of every process in group `pgid` (the job's pipeline), from /proc."""
    total_kib = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total_kib / 1024


def stream_process(
    argv: list[str],
    env: dict[str, str],
    log: Callable[[str], None],
    cancel: threading.Event,
    memory_limit_mib: int | None = None,
    memory_killed: threading.Event | None = None,
) -> int:
    """Run `argv`, send its merged stdout/stderr to `log` line by line, kill it if `cancel` is set
    or (with `memory_limit_mib`) when its process group's resident memory goes over the limit, as
    the container's cgroup would (then `memory_killed` is set)."""
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
        ticks = 0
        while process.poll() is None:
            ticks += 1
            measure = memory_limit_mib is not None and ticks % 3 == 0  # /proc is walked every 0.3 s
            over = measure and process_group_rss_mib(process.pid) > (memory_limit_mib or 0)
            if over and memory_killed is not None:
                memory_killed.set()
            if over or cancel.wait(0.1):
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
    """Runs `genopipe job` + the command as a local process (the tools come from this machine),
    killed like its container when it goes over the job's memory: it then exits 137 and logs
    AWS's reason."""

    def run(self, launch: JobLaunch, log: Callable[[str], None], cancel: threading.Event) -> int:
        env = {**environment.snapshot(), **launch.environment}
        killed = threading.Event()
        code = stream_process(self.argv(launch), env, log, cancel, launch.memory_mib, killed)
        if killed.is_set():
            log(OUT_OF_MEMORY)
            return MEMORY_KILL_EXIT
        return code

    def argv(self, launch: JobLaunch) -> list[str]:
        return [*_genopipe_command(), "job", *launch.command]
