"""`--executor docker`: each Batch job attempt runs in its step's image, as on AWS Batch.

The job definition names an ECR image (`<account>.dkr.ecr.<region>.amazonaws.com/genopipe/align:0.1.0`);
the local image is the part after the registry host (`genopipe/align:0.1.0`, built by `make images`).
The container gets the job definition's vCPU and memory limits, the host network (so it reaches
the moto server on 127.0.0.1), the launch's environment plus this process's AWS SDK settings, and
runs as the calling user (or, when that is root, as the image's non-root user).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable

from genopipe.local import environment
from genopipe.local.executors import HostVolumes, JobLaunch, stream_process

# exit code `docker run` gives when the container ended by SIGKILL (a reclaim)
KILLED_EXIT_CODE = 137

# the SDK settings a job needs from the local stack's process (endpoint, region, credentials)
_SDK_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


class DockerUnavailable(Exception):
    """No `docker` client, or no daemon answering it."""


def local_image(image: str) -> str:
    """The local name of a job definition's image: drop a registry host if there is one."""
    first, _, rest = image.partition("/")
    is_registry = bool(rest) and ("." in first or ":" in first or first == "localhost")
    return rest if is_registry else image


def daemon_problem() -> str | None:
    """Why Docker cannot run containers here, or None when a daemon answers."""
    if shutil.which("docker") is None:
        return "no docker client on PATH (apt-get install docker.io)"
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 20 s"
    if probe.returncode != 0 or not probe.stdout.strip():
        detail = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker daemon answers ({detail}); scripts/start-dockerd.sh starts one as root"
    return None


def image_present(image: str) -> bool:
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    return probe.returncode == 0


def docker_run_argv(launch: JobLaunch, container_name: str, volumes: HostVolumes | None = None) -> list[str]:
    """The `docker run` command line for one attempt: the job definition's mount points are bind
    mounts of the local directories standing for the instance's host paths (HostVolumes)."""
    current = environment.snapshot()
    variables = {**{name: current[name] for name in _SDK_VARIABLES if name in current}, **launch.environment}
    # docker refuses --cpus above the machine's CPUs; Batch would place the job on a bigger host
    cpus = min(launch.vcpus, os.cpu_count() or 1)
    argv = [
        "docker",
        "run",
        "--rm",
        "--name",
        container_name,
        "--network",
        "host",
        "--cpus",
        str(cpus),
        "--memory",
        f"{launch.memory_mib}m",
        "--label",
        f"genopipe.job-id={launch.job_id}",
    ]
    uid = os.getuid()
    if uid != 0:
        # files a job might write to a mounted path stay the user's; HOME must be writable
        argv += ["--user", f"{uid}:{os.getgid()}", "--env", "HOME=/tmp"]
    for name, value in sorted(variables.items()):
        argv += ["--env", f"{name}={value}"]
    for container, local in sorted((volumes or HostVolumes()).bindings(launch).items()):
        argv += ["--volume", f"{local}:{container}"]
    return [*argv, local_image(launch.image), *launch.command]


class DockerRunner:
    """Runs a job attempt as `docker run` of its image with the job definition's limits."""

    def __init__(self, volumes: HostVolumes | None = None) -> None:
        self.volumes = volumes or HostVolumes()

    def run(self, launch: JobLaunch, log: Callable[[str], None], cancel: threading.Event) -> int:
        image = local_image(launch.image)
        if not image_present(image):
            problem = daemon_problem() or f"image {image} is not built here: run `make images`"
            log(f"genopipe docker executor: {problem}")
            return 125  # what `docker run` returns when it cannot start the container
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"genopipe-{launch.job_name}-{uuid.uuid4().hex[:8]}")
        ended = threading.Event()

        def kill_on_cancel() -> None:
            # killing the `docker run` client would leave the container running: kill the
            # container, again until the attempt ends (a cancel can come before it exists)
            while not ended.is_set():
                if cancel.wait(0.2):
                    subprocess.run(["docker", "kill", name], capture_output=True)
                    ended.wait(0.5)

        watcher = threading.Thread(target=kill_on_cancel, daemon=True)
        watcher.start()
        try:
            return stream_process(
                docker_run_argv(launch, name, self.volumes), environment.snapshot(), log, threading.Event()
            )
        finally:
            ended.set()
            watcher.join()
