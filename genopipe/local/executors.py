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
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

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
    # the job definition's mount points: container path -> the instance's host path it binds
    # (`volumes[].host.sourcePath`), e.g. {"/scratch": "/scratch"}, the instance's data volume
    mounts: dict[str, str] = {}


def mounts_of(container_properties: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> host path, from a job definition's `volumes` and `mountPoints` (as ECS
    pairs them, by the volume's name)."""
    hosts = {
        volume["name"]: str(volume["host"]["sourcePath"])
        for volume in container_properties.get("volumes", [])
        if (volume.get("host") or {}).get("sourcePath")
    }
    return {
        str(point["containerPath"]): hosts[point["sourceVolume"]]
        for point in container_properties.get("mountPoints", [])
        if point.get("sourceVolume") in hosts
    }


class HostVolumes:
    """The Batch instance's host paths on this machine: `/scratch` is `<root>/scratch`, one
    directory shared by every job (as the instance's data volume is), created on first use and
    writable by any user (mode 1777, like the instance's user data makes it) so a container
    running as another uid can write there. `root` is under the local stack's work directory; a
    runner made without one gets a temporary directory of its own."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="genopipe-host-volumes-"))
        return self._root

    def path(self, host_path: str) -> Path:
        local = self.root / host_path.strip("/")
        local.mkdir(parents=True, exist_ok=True)
        local.chmod(0o1777)
        return local

    def bindings(self, launch: JobLaunch) -> dict[str, Path]:
        """Container path -> the local directory standing for its host path."""
        return {container: self.path(host) for container, host in launch.mounts.items()}


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
    AWS's reason. A process sees no mounts, so the job's mount points become paths: an
    environment value naming a container path (`GENOPIPE_SCRATCH=/scratch`) names the local
    directory standing for its host path instead (HostVolumes)."""

    def __init__(self, volumes: HostVolumes | None = None) -> None:
        self.volumes = volumes or HostVolumes()

    def run(self, launch: JobLaunch, log: Callable[[str], None], cancel: threading.Event) -> int:
        env = {**environment.snapshot(), **self.mounted(launch)}
        killed = threading.Event()
        code = stream_process(self.argv(launch), env, log, cancel, launch.memory_mib, killed)
        if killed.is_set():
            log(OUT_OF_MEMORY)
            return MEMORY_KILL_EXIT
        return code

    def argv(self, launch: JobLaunch) -> list[str]:
        return [*_genopipe_command(), "job", *launch.command]

    def mounted(self, launch: JobLaunch) -> dict[str, str]:
        """The launch's environment with container paths replaced by their local directories."""
        bindings = self.volumes.bindings(launch)
        result = dict(launch.environment)
        for name, value in launch.environment.items():
            for container, local in bindings.items():
                if value == container or value.startswith(container.rstrip("/") + "/"):
                    result[name] = str(local) + value[len(container.rstrip("/")) :]
        return result
