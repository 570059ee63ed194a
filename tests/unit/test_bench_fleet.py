"""bench/fleet.py's arithmetic on tiny fleets whose answers can be worked out by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import fleet
import pytest

from genopipe.jobs.backoff import PollingPolicy, detection_delay_seconds

# a fleet with no latencies, no Spot rework, no idle keep, no billing minimum: only the packing left
BARE = fleet.Fleet(
    max_instance_vcpus=16,
    memory_mib_per_vcpu=4000,
    max_vcpus=32,
    spot_usd_per_vcpu_hour=0.01,
    batch_scheduling_s=0.0,
    instance_start_s=0.0,
    image_pull_s=0.0,
    idle_instance_kept_s=0.0,
    s3_mb_per_s=100.0,
    spot_reclaims_per_instance_hour=0.0,
    poll_max_seconds=0,
    billing_minimum_s=0.0,
)


def job(name: str, stage: str, vcpus: int, cpu_s: float, image: str = "", **kwargs: float) -> fleet.Job:
    return fleet.Job(name, stage, vcpus, 1000, cpu_s, usable_cores=vcpus, image=image or stage, **kwargs)


def test_run_seconds_adds_transfers_set_up_and_compute() -> None:
    one = job("a", "align", 8, 800.0, input_bytes=1e9, output_bytes=1e9, fixed_s=5.0)
    # 2 GB at 100 MB/s = 20 s, + 5 s, + 800 CPU s on 8 cores = 100 s
    assert one.run_seconds(BARE) == pytest.approx(125.0)


def test_cores_a_tool_cannot_use_are_not_counted() -> None:
    single = fleet.Job("c", "call", 4, 1000, 400.0, usable_cores=1.0)
    assert single.run_seconds(BARE) == pytest.approx(400.0)


def test_spot_rework_is_half_the_job_times_the_chance_of_a_reclaim() -> None:
    assert fleet.expected_rework_fraction(3600, 0.05) == pytest.approx(0.025)
    assert fleet.expected_rework_fraction(1800, 0.1) == pytest.approx(0.025)
    assert fleet.expected_rework_fraction(10 * 3600, 0.5) == pytest.approx(0.5)  # capped: it happens


def test_two_jobs_share_an_instance_and_a_third_launches_another() -> None:
    two = fleet.simulate([[job("a", "align", 8, 800.0), job("b", "align", 8, 800.0)]], BARE)
    assert two.instances == 1
    assert two.wall_s == pytest.approx(100.0)
    assert two.usd == pytest.approx(100 * 16 / 3600 * 0.01)
    assert two.idle_share == pytest.approx(0.0)
    # 24 vCPUs waiting: a 16-vCPU instance, then an 8-vCPU one for the third (sized to what waits)
    three = fleet.simulate([[job(n, "align", 8, 800.0) for n in "abc"]], BARE)
    assert three.instances == 2
    assert three.idle_share == pytest.approx(0.0)
    assert three.usd == pytest.approx(100 * 24 / 3600 * 0.01)
    # a 1-vCPU job still gets the smallest instance, 2 vCPUs: half of it is billed idle
    alone = fleet.simulate([[job("v", "validate", 1, 100.0)]], BARE)
    assert alone.idle_share == pytest.approx(0.5)


def test_a_full_fleet_queues_the_job_until_room_frees() -> None:
    capped = fleet.Fleet(**{**BARE.__dict__, "max_vcpus": 16})
    outcome = fleet.simulate([[job(n, "align", 8, 800.0) for n in "abc"]], capped)
    assert outcome.instances == 1
    assert outcome.wall_s == pytest.approx(200.0)  # the third starts when the first ends


def test_stages_follow_each_other_and_each_waits_for_its_poll() -> None:
    polled = fleet.Fleet(**{**BARE.__dict__, "poll_max_seconds": 5120})
    outcome = fleet.simulate([[job("v", "validate", 1, 100.0)], [job("q", "qc", 4, 400.0)]], polled)
    delay = detection_delay_seconds(100.0, PollingPolicy(max_seconds=5120))
    assert delay == 50  # seen at 10 + 20 + 40 + 80 = 150 s
    assert outcome.stages["validate"]["seen_s"] == pytest.approx(150.0)
    assert outcome.stages["qc"]["start_s"] == pytest.approx(150.0)
    assert outcome.wall_s == pytest.approx(150.0 + 100.0 + 50.0)


def test_instance_start_and_image_pull_come_once_per_instance() -> None:
    slow = fleet.Fleet(**{**BARE.__dict__, "instance_start_s": 100.0, "image_pull_s": 30.0})
    first, second = job("a", "align", 8, 800.0), job("b", "markdup", 8, 800.0, image="align")
    outcome = fleet.simulate([[first], [second]], slow)
    # the first job starts at 100 + 30 and ends at 230; the second stage reuses the instance (it
    # never went idle before that stage began) and its image
    assert outcome.instances == 1
    assert outcome.wall_s == pytest.approx(330.0)


def test_instances_are_sized_to_the_waiting_jobs_and_their_memory() -> None:
    small = fleet.Job("v", "validate", 1, 2048, 1.0, 1.0)
    assert fleet.instance_size(small, 1, BARE) == 2
    assert fleet.instance_size(small, 5, BARE) == 8
    assert fleet.instance_size(small, 100, BARE) == 16
    hungry = fleet.Job("a", "align", 2, 30_000, 1.0, 2.0)
    assert fleet.instance_size(hungry, 2, BARE) == 8  # 30 GB needs 8 x 4000 MiB


def test_shard_counts_follow_the_input_and_the_cap() -> None:
    assert fleet.shard_count(400e6, 10e6, 100) == 40
    assert fleet.shard_count(400e6, 1e6, 100) == 100
    assert fleet.shard_count(1000, 10e6, 100) == 1


def test_the_projection_renders_from_the_recorded_measurements(tmp_path: Path) -> None:
    """fleet.py's whole path (rates, scenarios, curves, knee, page, plot) on the committed figures."""
    measured = Path(fleet.RESULTS) / "scale-measured.json"
    out = tmp_path / "scale.json"
    with mock.patch.object(sys, "argv", ["fleet.py", "--measured", str(measured), "--out", str(out)]):
        assert fleet.main() == 0
    result = json.loads(out.read_text())
    wgs = result["wgs30x"]
    assert wgs["projected_wall_hours"] == wgs["as_built"]["wall_hours"] > 0
    assert wgs["projected_usd"] == wgs["as_built"]["usd"] > 0
    # every fix shortens the critical path of the 30x WGS
    assert wgs[result["with_fixes"]]["wall_hours"] < wgs["as_built"]["wall_hours"]
    assert [p["shards"] for p in wgs["curves"]["align_shards"]] == list(fleet.ALIGN_SHARD_COUNTS)
    page = out.with_suffix(".md").read_text()
    for heading in (
        "### Measured pieces",
        "### Reference preparation",
        "### The fastp decision",
        "### Projection",
    ):
        assert heading in page
    assert out.with_suffix(".png").stat().st_size > 0
