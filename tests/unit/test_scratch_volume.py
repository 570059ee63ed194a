"""The Batch instances' scratch: a gp3 data volume from the launch template, sized by
`ScratchVolumeGiB`, formatted and mounted at /scratch by the user data, which the job definitions
mount for the jobs (held to the table in tests/unit/test_step_table.py).

Why the default is what it is: the table's largest scratch per GB of gzipped input (align: the
trimmed reads, sort's temporary files and the BAM) x a 100 GB input (a 30x human genome) x 2 such
jobs at once on one instance."""

from __future__ import annotations

import email
import math
import shutil
import subprocess
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from genopipe.local.template import load
from genopipe.pipeline import STEPS

ROOT = Path(__file__).resolve().parents[2]
INPUT_GB = 100  # a 30x WGS: ~400M read pairs, ~100 GB of gzipped FASTQ
JOBS_PER_INSTANCE = 2  # e.g. two 8-vCPU align jobs on a 16-vCPU instance


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(ROOT / "template.yaml")


def launch_data(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"]["BatchLaunchTemplate"]["Properties"]["LaunchTemplateData"])


def user_data(template: dict[str, Any]) -> Message:
    text = launch_data(template)["UserData"]["Fn::Base64"]
    assert isinstance(text, str), "the user data is literal text (no !Sub)"
    return email.message_from_string(text)


def parts(message: Message) -> list[Message]:
    payload = message.get_payload()
    assert isinstance(payload, list)
    return [part for part in payload if isinstance(part, Message)]


def test_the_default_size_is_the_tables_peak_for_a_100gb_input_twice(template: dict[str, Any]) -> None:
    peak = max(spec.scratch_gb_per_input_gb for spec in STEPS)
    default = int(template["Parameters"]["ScratchVolumeGiB"]["Default"])

    assert default == math.ceil(peak * INPUT_GB * JOBS_PER_INSTANCE) == 500


def test_the_launch_template_adds_a_gp3_volume_of_that_size(template: dict[str, Any]) -> None:
    (mapping,) = launch_data(template)["BlockDeviceMappings"]
    ebs = mapping["Ebs"]

    assert ebs["VolumeSize"] == {"Ref": "ScratchVolumeGiB"}
    assert (ebs["VolumeType"], ebs["Encrypted"], ebs["DeleteOnTermination"]) == ("gp3", True, True)
    # gp3: throughput up to 0.25 MiB/s per provisioned IOPS
    assert 125 < ebs["Throughput"] <= ebs["Iops"] / 4
    assert mapping["DeviceName"] == "/dev/xvdb"


def test_the_user_data_is_mime_multipart_and_mounts_that_device_at_scratch(template: dict[str, Any]) -> None:
    message = user_data(template)
    assert message.is_multipart() and message.get_content_type() == "multipart/mixed"
    (part,) = parts(message)
    assert isinstance(part, Message) and part.get_content_type() == "text/x-shellscript"
    script = str(part.get_payload())
    device = launch_data(template)["BlockDeviceMappings"][0]["DeviceName"]

    assert script.startswith("#!/bin/bash\nset -euo pipefail\n")
    assert f"device={device}\n" in script and 'mount -o noatime "$device" /scratch' in script
    # the unmounted mount point takes no files; the mounted one any job's (user 1000)
    assert script.index("chmod 000 /scratch") < script.index("mount ") < script.index("chmod 1777 /scratch")


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_user_data_script_parses(template: dict[str, Any], tmp_path: Path) -> None:
    (part,) = parts(user_data(template))
    script = tmp_path / "user-data.sh"
    script.write_text(str(part.get_payload()))

    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
