"""How the docker executor turns a Batch job attempt into `docker run` (no daemon needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genopipe.local.docker import docker_run_argv, local_image
from genopipe.local.executors import HostVolumes, JobLaunch, NativeRunner, mounts_of


@pytest.mark.parametrize(
    ("image", "local"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/genopipe/align:0.1.0", "genopipe/align:0.1.0"),
        ("localhost:5000/genopipe/qc:1.2.3", "genopipe/qc:1.2.3"),
        ("genopipe/call:0.1.0", "genopipe/call:0.1.0"),
    ],
)
def test_local_image_drops_the_registry_host(image: str, local: str) -> None:
    assert local_image(image) == local


def launch(vcpus: int = 2) -> JobLaunch:
    return JobLaunch(
        job_id="j-1",
        job_name="genopipe-align",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/genopipe/align:0.1.0",
        command=["align", "--sample", "s1", "--ploidy", "2"],
        environment={"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "GENOPIPE_THREADS": str(vcpus)},
        vcpus=vcpus,
        memory_mib=4096,
    )


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_docker_run_has_the_job_definitions_limits_host_network_and_environment() -> None:
    argv = docker_run_argv(launch(), "c1")
    assert argv[:3] == ["docker", "run", "--rm"]
    assert option(argv, "--network") == "host"  # the moto server is on the host's 127.0.0.1
    assert option(argv, "--memory") == "4096m"
    assert float(option(argv, "--cpus")) == min(2, os.cpu_count() or 1)
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:4566" in argv
    assert "GENOPIPE_THREADS=2" in argv
    # the image's entrypoint is `genopipe job`: the command follows the local image name
    image_at = argv.index("genopipe/align:0.1.0")
    assert argv[image_at + 1 :] == ["align", "--sample", "s1", "--ploidy", "2"]


def test_docker_run_caps_cpus_at_this_machine() -> None:
    argv = docker_run_argv(launch(vcpus=512), "c1")
    assert float(option(argv, "--cpus")) == (os.cpu_count() or 1)


def test_docker_run_never_runs_as_root() -> None:
    argv = docker_run_argv(launch(), "c1")
    if os.getuid() == 0:
        assert "--user" not in argv  # the image's own non-root USER applies
    else:
        assert option(argv, "--user") == f"{os.getuid()}:{os.getgid()}"


def test_the_job_definitions_mount_points_are_bind_mounts_of_the_stacks_host_paths(tmp_path: Path) -> None:
    volumes = HostVolumes(tmp_path / "host")
    scratch = launch().model_copy(
        update={"mounts": {"/scratch": "/scratch"}, "environment": {"GENOPIPE_SCRATCH": "/scratch"}}
    )
    argv = docker_run_argv(scratch, "c1", volumes)

    assert option(argv, "--volume") == f"{tmp_path / 'host' / 'scratch'}:/scratch"
    assert "GENOPIPE_SCRATCH=/scratch" in argv  # inside the container the path is the same
    assert (tmp_path / "host" / "scratch").stat().st_mode & 0o7777 == 0o1777  # any uid may write


def test_the_native_runner_names_the_local_directory_instead(tmp_path: Path) -> None:
    """A process sees no mounts: GENOPIPE_SCRATCH=/scratch becomes the stack's directory for it."""
    runner = NativeRunner(HostVolumes(tmp_path / "host"))
    scratch = launch().model_copy(
        update={
            "mounts": {"/scratch": "/scratch"},
            "environment": {"GENOPIPE_SCRATCH": "/scratch", "OTHER": "/scratchy", "DEEP": "/scratch/a"},
        }
    )
    env = runner.mounted(scratch)

    local = tmp_path / "host" / "scratch"
    assert env == {"GENOPIPE_SCRATCH": str(local), "OTHER": "/scratchy", "DEEP": f"{local}/a"}
    assert local.is_dir()


def test_mount_points_pair_with_volumes_by_name() -> None:
    properties = {
        "volumes": [{"name": "scratch", "host": {"sourcePath": "/scratch"}}, {"name": "efs"}],
        "mountPoints": [
            {"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": False},
            {"sourceVolume": "efs", "containerPath": "/efs"},  # not a host path: not ours to map
        ],
    }
    assert mounts_of(properties) == {"/scratch": "/scratch"}
    assert mounts_of({}) == {}
