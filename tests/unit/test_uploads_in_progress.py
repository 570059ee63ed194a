"""Big uploads: a file still uploading is an unfinished multipart upload that listing does not show.
The admission rules for it, on the in-memory ports (tests/fakes.py) with a clock the tests move.
The S3 side (ListMultipartUploads, ListParts) is tested against moto in
tests/integration/test_s3_adapter.py.

The figures: a 50 GB FASTQ at 100 Mbps is 50e9 x 8 / 100e6 = 4,000 s (~67 min); two mates uploaded
one after the other keep the first one waiting for the whole second upload, longer than the
3,600 s mate timeout."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from genopipe.intake.admission import Admission, AdmissionSettings
from genopipe.intake.plan import IntakeSettings
from tests.fakes import Clock, MemoryBus, MemoryExecutions, MemoryInputStore, MemoryLedger

INPUT, OUTPUT = "in-bucket", "out-bucket"
SETTINGS = IntakeSettings(OUTPUT, "s3://ref/genome.fa", "minimap2", "0.1.0")
UPLOAD_50GB_AT_100MBPS_S = 50e9 * 8 / 100e6  # 4,000 s
SWEEP_EVERY_S = 300  # the template's SweepSchedule default, rate(5 minutes)
PART_EVERY_S = 64  # 8 MiB parts, 10 at a time, at 100 Mbps: one part every ~0.7 s; far slower is fine


@dataclass
class World:
    lane_settle_s: float = 300
    store: MemoryInputStore = field(default_factory=MemoryInputStore)
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    started: MemoryExecutions = field(default_factory=MemoryExecutions)
    bus: MemoryBus = field(default_factory=MemoryBus)
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        limits = AdmissionSettings(mate_timeout_s=3600, lane_settle_s=self.lane_settle_s)
        self.admission = Admission(
            self.store, self.ledger, self.started, self.bus, SETTINGS, limits, self.clock
        )
        self.rejected: list[str] = []

    def upload(self, key: str, seconds: float, body: bytes = b"reads") -> list[str]:
        """A multipart upload of `key` taking `seconds`, parts arriving every PART_EVERY_S, the sweep
        running on its schedule meanwhile; then the object and its S3 event. What the intake started."""
        upload_id = self.store.start_upload(INPUT, key, self.clock.now)
        end = self.clock.now + seconds
        self.wait_until(end, parts_of=upload_id)
        self.store.complete_upload(upload_id, body)
        return self.admission.on_object(INPUT, key).started

    def wait_until(self, end: float, parts_of: str | None = None) -> None:
        next_part, next_sweep = self.clock.now + PART_EVERY_S, self._next_sweep()
        while min(next_part, next_sweep) <= end:
            if next_part <= next_sweep:
                self.clock.now = next_part
                if parts_of is not None:
                    self.store.upload_part(parts_of, self.clock.now)
                next_part += PART_EVERY_S
            else:
                self.clock.now = next_sweep
                self.rejected += self.admission.sweep().rejected
                next_sweep += SWEEP_EVERY_S
        self.clock.now = end

    def _next_sweep(self) -> float:
        return (self.clock.now // SWEEP_EVERY_S + 1) * SWEEP_EVERY_S

    def put(self, key: str, body: bytes = b"reads") -> list[str]:
        self.store.put(INPUT, key, body)
        return self.admission.on_object(INPUT, key).started

    def lanes_of(self, name: str) -> list[tuple[str, str]]:
        reads = json.loads(self.started.started[name])["reads"]
        return [(lane["r1"].rsplit("/", 1)[-1], lane["r2"].rsplit("/", 1)[-1]) for lane in reads]


@pytest.fixture
def world() -> World:
    return World()


def test_two_50gb_mates_uploaded_one_after_the_other_start_once_without_mate_missing(world: World) -> None:
    assert world.upload("big/S_R1.fastq.gz", UPLOAD_50GB_AT_100MBPS_S) == []  # waits for R2 ...
    waiting_since = world.clock.now
    (name,) = world.upload("big/S_R2.fastq.gz", UPLOAD_50GB_AT_100MBPS_S)  # ... for 4,000 s

    assert world.clock.now - waiting_since == 4000 > 3600  # past the mate timeout, yet:
    assert world.rejected == [] and world.bus == [] and world.ledger.waiting() == []
    assert list(world.started.started) == [name]


def test_without_the_upload_in_view_the_same_wait_is_mate_missing(world: World) -> None:
    """The control: the same R1, its mate not uploading at all, fails at the timeout."""
    world.upload("big/S_R1.fastq.gz", UPLOAD_50GB_AT_100MBPS_S)
    world.wait_until(world.clock.now + UPLOAD_50GB_AT_100MBPS_S)
    (message,) = world.rejected
    assert "mate missing after 3" in message and "uploading" not in message


def test_a_lane_still_uploading_holds_the_sample_past_the_settle_period(world: World) -> None:
    world.put("lanes/L_S1_L001_R1_001.fastq.gz")
    assert world.put("lanes/L_S1_L001_R2_001.fastq.gz") == []  # settles 300 s ...
    # ... while lane 2 uploads for 4,000 s (R1), then 4,000 s (R2): lane 1 alone never starts
    assert world.upload("lanes/L_S1_L002_R1_001.fastq.gz", UPLOAD_50GB_AT_100MBPS_S) == []
    assert world.upload("lanes/L_S1_L002_R2_001.fastq.gz", UPLOAD_50GB_AT_100MBPS_S) == []
    assert world.started.started == {}
    world.wait_until(world.clock.now + 600)  # settles, then the sweep starts both lanes

    (name,) = world.started.started
    assert world.lanes_of(name) == [
        ("L_S1_L001_R1_001.fastq.gz", "L_S1_L001_R2_001.fastq.gz"),
        ("L_S1_L002_R1_001.fastq.gz", "L_S1_L002_R2_001.fastq.gz"),
    ]
    assert world.rejected == []


def test_without_settling_a_complete_sample_waits_for_its_lane_still_uploading() -> None:
    world = World(lane_settle_s=0)
    upload_id = world.store.start_upload(INPUT, "now/L_S1_L002_R1_001.fastq.gz", world.clock.now)
    world.put("now/L_S1_L001_R1_001.fastq.gz")
    world.store.put(INPUT, "now/L_S1_L001_R2_001.fastq.gz", b"r2")
    outcome = world.admission.on_object(INPUT, "now/L_S1_L001_R2_001.fastq.gz")

    assert outcome.started == []
    assert outcome.waiting == [
        f"s3://{INPUT}/now/L_S1_L001_R2_001.fastq.gz: sample 'L' waits for "
        f"s3://{INPUT}/now/L_S1_L002_R1_001.fastq.gz (still uploading)"
    ]
    world.store.complete_upload(upload_id, b"r1 lane 2")
    assert world.admission.on_object(INPUT, "now/L_S1_L002_R1_001.fastq.gz").started == []  # its R2
    assert world.put("now/L_S1_L002_R2_001.fastq.gz") != []


def test_an_abandoned_upload_fails_the_sample_a_mate_timeout_after_its_last_part(world: World) -> None:
    world.put("gone/G_R1.fastq.gz")
    seen = world.clock.now
    upload_id = world.store.start_upload(INPUT, "gone/G_R2.fastq.gz", seen)
    world.store.upload_part(upload_id, seen + 600)  # the client dies after 10 minutes
    world.wait_until(seen + 600 + 3600 - 1)
    assert world.rejected == []
    world.wait_until(seen + 600 + 3600 + SWEEP_EVERY_S)

    (message,) = world.rejected
    assert "mate missing after 4" in message
    assert f"s3://{INPUT}/gone/G_R2.fastq.gz is stalled (no new part for 3" in message


def test_an_upload_in_progress_holds_a_sample_at_most_the_cap(world: World) -> None:
    world.put("slow/T_R1.fastq.gz")
    seen = world.clock.now
    upload_id = world.store.start_upload(INPUT, "slow/T_R2.fastq.gz", seen)
    world.wait_until(seen + 86400 - 1, parts_of=upload_id)  # a trickle for a whole day
    assert world.rejected == []
    world.wait_until(seen + 86400 + SWEEP_EVERY_S, parts_of=upload_id)

    (message,) = world.rejected
    assert "is still uploading" in message and "uploads hold a sample at most 86400 s" in message


def test_a_samplesheet_file_still_uploading_is_not_missing(world: World) -> None:
    sheet = "sample,fastq_1,fastq_2\nA,a/A_1.fq.gz,a/A_2.fq.gz\n"
    world.put("sheet/a/A_1.fq.gz")
    assert world.put("sheet/samplesheet.csv", sheet.encode()) == []
    (name,) = world.upload("sheet/a/A_2.fq.gz", UPLOAD_50GB_AT_100MBPS_S)
    assert world.rejected == [] and list(world.started.started) == [name]


def test_a_samplesheet_file_whose_upload_stalled_is_reported_with_it(world: World) -> None:
    sheet = "sample,fastq_1,fastq_2\nA,A_1.fq.gz,A_2.fq.gz\n"
    world.put("sheet2/samplesheet.csv", sheet.encode())
    world.store.start_upload(INPUT, "sheet2/A_1.fq.gz", world.clock.now)  # no part ever
    world.store.start_upload(INPUT, "sheet2/B_1.fq.gz", world.clock.now)  # not the sheet's
    world.wait_until(world.clock.now + 3600 + SWEEP_EVERY_S)

    (message,) = world.rejected
    assert f"waits for s3://{INPUT}/sheet2/A_1.fq.gz, s3://{INPUT}/sheet2/A_2.fq.gz" in message
    assert f"s3://{INPUT}/sheet2/A_1.fq.gz is stalled" in message and "B_1" not in message


def test_a_stalled_upload_does_not_hold_a_complete_sample(world: World) -> None:
    """An upload left behind by an earlier, failed attempt (the lifecycle rule aborts it only after
    7 days) delays a complete pair by at most a sweep once it shows no progress."""
    stale = world.clock.now - 7200
    world.store.start_upload(INPUT, "old/P_R1.fastq.gz", stale)
    world.put("old/P_R1.fastq.gz")
    assert world.put("old/P_R2.fastq.gz") == []  # an upload of it exists: the sweep decides
    world.wait_until(world.clock.now + SWEEP_EVERY_S)

    assert len(world.started.started) == 1 and world.rejected == []


def test_list_parts_only_for_uploads_older_than_the_stall_limit(world: World) -> None:
    world.put("cost/C_R1.fastq.gz")
    world.store.start_upload(INPUT, "cost/C_R2.fastq.gz", world.clock.now)
    world.clock.now += 3600  # the timeout: the upload is as old as the stall limit
    world.store.requests.clear()
    world.admission.sweep()

    assert world.store.requests["uploading"] == 1 and world.store.requests["last_part_at"] == 1
    # the intake never asks for parts (it has no s3:ListMultipartUploadParts): it holds a complete
    # sample with any upload of it in progress, and the sweep decides whether that shows progress
    world.store.requests.clear()
    world.store.start_upload(INPUT, "cost/D_R1.fastq.gz", world.clock.now - 7200)
    world.put("cost/D_R1.fastq.gz")
    assert world.put("cost/D_R2.fastq.gz") == []
    assert world.store.requests["uploading"] == 1 and world.store.requests["last_part_at"] == 0
