"""Exactly once, nothing forgotten: the intake's admission rules on in-memory ports (tests/fakes.py),
with a clock the tests move. The conditional writes that make "exactly once" hold under racing
invocations are tested against moto in tests/integration/test_admission.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from genopipe.intake.admission import Admission, AdmissionSettings
from genopipe.intake.plan import IntakeSettings
from tests.fakes import Clock, MemoryBus, MemoryExecutions, MemoryInputStore, MemoryLedger

INPUT, OUTPUT = "in-bucket", "out-bucket"
SETTINGS = IntakeSettings(OUTPUT, "s3://ref/genome.fa", "minimap2", "0.1.0")


@dataclass
class World:
    store: MemoryInputStore = field(default_factory=MemoryInputStore)
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    started: MemoryExecutions = field(default_factory=MemoryExecutions)
    bus: MemoryBus = field(default_factory=MemoryBus)
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        settings = AdmissionSettings(mate_timeout_s=3600, lane_settle_s=300)
        self.admission = Admission(
            self.store, self.ledger, self.started, self.bus, SETTINGS, settings, self.clock
        )

    def put(self, key: str, body: bytes) -> None:
        self.store.put(INPUT, key, body)

    def executions(self) -> list[str]:
        return list(self.started.started)

    def execution_input(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.started.started[name]))


@pytest.fixture
def world() -> World:
    return World()


def test_identical_reupload_is_a_duplicate_and_new_content_is_a_new_run(world: World) -> None:
    world.put("re/B_1.fq.gz", b"r1")
    world.put("re/B_2.fq.gz", b"r2")
    (first,) = world.admission.on_object(INPUT, "re/B_2.fq.gz").started
    world.put("re/B_2.fq.gz", b"r2")  # the same bytes again: the same ETag
    assert world.admission.on_object(INPUT, "re/B_2.fq.gz").duplicates == [first]
    world.put("re/B_1.fq.gz", b"r1, corrected")  # a whole new pair: a new run at once
    world.put("re/B_2.fq.gz", b"r2, corrected")
    (second,) = world.admission.on_object(INPUT, "re/B_2.fq.gz").started

    assert second != first and sorted(world.executions()) == sorted([first, second])


def test_a_reupload_of_one_mate_waits_for_the_other(world: World) -> None:
    world.put("re/C_R1.fastq.gz", b"old r1")
    world.put("re/C_R2.fastq.gz", b"old r2")
    (first,) = world.admission.on_object(INPUT, "re/C_R2.fastq.gz").started
    world.clock.now += 3600
    world.put("re/C_R1.fastq.gz", b"new r1")  # new data: R1 first ...
    outcome = world.admission.on_object(INPUT, "re/C_R1.fastq.gz")
    assert outcome.started == [] and "is being re-uploaded" in outcome.waiting[0]
    assert f"waits for s3://{INPUT}/re/C_R2.fastq.gz to be replaced too" in outcome.waiting[0]
    world.clock.now += 20
    assert world.admission.sweep().started == []  # never the new R1 with the old R2
    world.put("re/C_R2.fastq.gz", b"new r2")  # ... and R2 20 s later
    (second,) = world.admission.on_object(INPUT, "re/C_R2.fastq.gz").started

    assert world.executions() == [first, second] and world.ledger.waiting() == []
    etags = {i["uri"]: i["etag"] for i in world.execution_input(second)["inputs"]}
    assert etags == {uri: etag for uri, (etag, _) in world.store.objects.items()}


def test_replacing_only_one_mate_on_purpose_starts_after_the_quiet_period(world: World) -> None:
    world.put("re/D_R1.fastq.gz", b"r1")
    world.put("re/D_R2.fastq.gz", b"r2")
    (first,) = world.admission.on_object(INPUT, "re/D_R2.fastq.gz").started
    world.put("re/D_R2.fastq.gz", b"r2, corrected")
    assert world.admission.on_object(INPUT, "re/D_R2.fastq.gz").started == []
    world.clock.now += 299
    assert world.admission.sweep().started == []
    world.clock.now += 2
    (second,) = world.admission.sweep().started
    assert second != first and world.executions() == [first, second]


def test_a_missing_mate_is_reported_once_after_the_timeout(world: World) -> None:
    world.put("lonely dir+ü/C_R1.fastq.gz", b"r1")
    assert world.admission.on_object(INPUT, "lonely dir+ü/C_R1.fastq.gz").waiting
    world.clock.now += 3599
    assert world.admission.sweep().rejected == [] and world.bus == []
    world.clock.now += 2
    reported = world.admission.sweep()

    (event,) = world.bus
    assert event.detail_type == "Sample Failed" and event.detail.sample == "C"
    assert event.detail.error is not None and event.detail.error.type == "MateMissing"
    message = event.detail.error.message
    assert f"s3://{INPUT}/lonely dir+ü/C_R1.fastq.gz" in message and "mate missing after 3601 s" in message
    assert reported.rejected == [message]
    assert world.admission.sweep().rejected == []  # reported once
    # the mate arrives late after all: the sample runs normally
    world.put("lonely dir+ü/C_R2.fastq.gz", b"r2")
    assert len(world.admission.on_object(INPUT, "lonely dir+ü/C_R2.fastq.gz").started) == 1


def test_a_mate_arriving_before_the_timeout_is_not_reported(world: World) -> None:
    world.put("late/D_R1.fastq.gz", b"r1")
    world.admission.on_object(INPUT, "late/D_R1.fastq.gz")
    world.clock.now += 1800
    world.put("late/D_R2.fastq.gz", b"r2")
    world.admission.on_object(INPUT, "late/D_R2.fastq.gz")
    world.clock.now += 7200
    assert world.admission.sweep().rejected == [] and world.bus == []
    assert len(world.executions()) == 1


def test_a_lost_event_is_recovered_by_the_sweep(world: World) -> None:
    world.put("lost/E_R1.fastq.gz", b"r1")
    world.admission.on_object(INPUT, "lost/E_R1.fastq.gz")
    world.put("lost/E_R2.fastq.gz", b"r2")  # its event never reaches the intake
    world.clock.now += 60
    assert len(world.admission.sweep().started) == 1
    assert len(world.executions()) == 1


def test_lanes_uploaded_one_at_a_time_make_one_run_after_a_quiet_period(world: World) -> None:
    names = [f"lanes/F_S1_L00{lane}_R{read}_001.fastq.gz" for lane in (1, 2) for read in (1, 2)]
    for key in names:  # one file a minute
        world.put(key, key.encode())
        assert world.admission.on_object(INPUT, key).started == []
        world.clock.now += 60
    world.clock.now += 180  # 240 s after the last file
    assert world.admission.sweep().started == []
    world.clock.now += 61
    (name,) = world.admission.sweep().started

    assert world.executions() == [name]
    assert len(world.execution_input(name)["reads"]) == 2
    assert world.admission.sweep().started == []


def test_a_samplesheet_arriving_within_the_settle_period_wins(world: World) -> None:
    for key in ("sheet/G_S1_L001_R1_001.fastq.gz", "sheet/G_S1_L001_R2_001.fastq.gz"):
        world.put(key, b"x" + key.encode())
        world.admission.on_object(INPUT, key)
    sheet = "sample,fastq_1,fastq_2,ploidy\nG,G_S1_L001_R1_001.fastq.gz,G_S1_L001_R2_001.fastq.gz,1\n"
    world.put("sheet/samplesheet.csv", sheet.encode())
    (name,) = world.admission.on_object(INPUT, "sheet/samplesheet.csv").started
    world.clock.now += 3600

    assert world.admission.sweep().started == []
    assert world.executions() == [name]
    assert world.execution_input(name)["ploidy"] == 1


def test_a_file_the_samplesheet_lists_that_never_arrives_is_reported(world: World) -> None:
    world.put("ss/H_1.fq.gz", b"r1")
    world.put("ss/samplesheet.csv", b"sample,fastq_1,fastq_2\nH,H_1.fq.gz,H_2.fq.gz\n")
    assert world.admission.on_object(INPUT, "ss/samplesheet.csv").waiting
    world.clock.now += 3601
    world.admission.sweep()

    (event,) = world.bus
    assert event.detail.sample == "H" and event.detail.error is not None
    assert f"s3://{INPUT}/ss/samplesheet.csv: sample 'H' waits for s3://{INPUT}/ss/H_2.fq.gz" in (
        event.detail.error.message
    )
    assert "mate missing" in event.detail.error.message


@pytest.mark.parametrize(
    ("sheet", "problem"),
    [
        ("name,read1,read2\nI,I_1.fq.gz,I_2.fq.gz\n", "row 1: missing column(s) sample, fastq_1, fastq_2"),
        (
            "sample,fastq_1,fastq_2\nI,I_1.fq.gz,I_2.fq.gz\nI,I_1.fq.gz,I_2.fq.gz\n",
            "row 3: 'I_1.fq.gz' is already listed in row 2",
        ),
        ("sample,fastq_1,fastq_2\nI,,I_2.fq.gz\n", "row 2: fastq_1 is empty"),
        (
            "sample,fastq_1,fastq_2\nmy sample,I_1.fq.gz,I_2.fq.gz\n",
            "row 2: sample 'my sample' may only hold",
        ),
        ("sample,fastq_1,fastq_2\na/b,I_1.fq.gz,I_2.fq.gz\n", "row 2: sample 'a/b' may only hold"),
    ],
    ids=["wrong header", "duplicate row", "fastq_2 without fastq_1", "space in sample", "slash in sample"],
)
def test_a_bad_samplesheet_fails_at_once_naming_the_row(world: World, sheet: str, problem: str) -> None:
    world.put("bad/samplesheet.csv", sheet.encode())
    outcome = world.admission.on_object(INPUT, "bad/samplesheet.csv")

    (event,) = world.bus
    assert event.detail_type == "Sample Failed" and event.detail.error is not None
    assert event.detail.error.type == "InvalidSamplesheet" and event.detail.error.step == "intake"
    assert event.detail.error.message.startswith(f"s3://{INPUT}/bad/samplesheet.csv: {problem}")
    assert outcome.rejected == [event.detail.error.message] and world.executions() == []


def test_a_samplesheet_restating_a_started_pair_starts_nothing_new(world: World) -> None:
    world.put("late/H_R1.fastq.gz", b"h1")
    world.put("late/H_R2.fastq.gz", b"h2")
    (first,) = world.admission.on_object(INPUT, "late/H_R2.fastq.gz").started
    world.put("late/samplesheet.csv", b"sample,fastq_1,fastq_2\nH,H_R1.fastq.gz,H_R2.fastq.gz\n")
    outcome = world.admission.on_object(INPUT, "late/samplesheet.csv")

    # same sample, files, ETags, lanes and ploidy: the same execution, however it was announced
    assert outcome.started == [] and outcome.duplicates == [first]
    assert world.executions() == [first]
    world.clock.now += 3600
    assert world.admission.sweep().started == []


@pytest.mark.parametrize(
    "sheet",
    [
        "sample,fastq_1,fastq_2,ploidy\nK,K_R1.fastq.gz,K_R2.fastq.gz,1\n",  # another ploidy
        "sample,fastq_1,fastq_2\nK2,K_R1.fastq.gz,K_R2.fastq.gz\n",  # another sample name
    ],
)
def test_a_samplesheet_that_changes_the_analysis_of_a_started_pair_starts_a_new_run(
    world: World, sheet: str
) -> None:
    world.put("late/K_R1.fastq.gz", b"k1")
    world.put("late/K_R2.fastq.gz", b"k2")
    (first,) = world.admission.on_object(INPUT, "late/K_R2.fastq.gz").started
    world.put("late/samplesheet.csv", sheet.encode())
    (second,) = world.admission.on_object(INPUT, "late/samplesheet.csv").started

    assert second != first
    assert sorted(world.executions()) == sorted([first, second])  # type: ignore[type-var]


# ---------------------------------------------------------------------------------------------
# under real users' mistakes (issue 15): one bad waiting sample never blocks the rest


def _waiting_behind_a_bad_one(world: World) -> None:
    """Oldest first: a sheet sample waiting for a file, then a single-end sample and a lane."""
    world.put("bad/samplesheet.csv", b"sample,fastq_1,fastq_2\nQ,Q_1.fq.gz,Q_2.fq.gz\n")
    assert world.admission.on_object(INPUT, "bad/samplesheet.csv").waiting
    world.clock.now += 10
    world.put("single/M_R1.fastq.gz", b"m1")
    assert world.admission.on_object(INPUT, "single/M_R1.fastq.gz").waiting
    world.clock.now += 10
    for read in (1, 2):
        world.put(f"lanes/L_S1_L001_R{read}_001.fastq.gz", b"l%d" % read)
        world.admission.on_object(INPUT, f"lanes/L_S1_L001_R{read}_001.fastq.gz")


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (lambda w: w.store.delete(INPUT, "bad/samplesheet.csv"), "bad/samplesheet.csv: no such object"),
        (lambda w: w.put("bad/samplesheet.csv", b"sample,fastq_1\xff\n"), "not UTF-8 text"),
    ],
    ids=["sheet deleted", "sheet not UTF-8"],
)
def test_a_waiting_sample_whose_sheet_went_bad_fails_alone(world: World, spoil: Any, problem: str) -> None:
    _waiting_behind_a_bad_one(world)
    spoil(world)
    world.clock.now += 3600
    outcome = world.admission.sweep()

    failed = {e.detail.sample: e.detail.error for e in world.bus}
    assert failed["Q"] is not None and failed["Q"].type == "InvalidSamplesheet"
    assert problem in failed["Q"].message and f"s3://{INPUT}/bad/samplesheet.csv" in failed["Q"].message
    assert failed["M"] is not None and failed["M"].type == "MateMissing"  # the ones behind it go on
    assert len(outcome.started) == 1 and world.execution_input(outcome.started[0])["sample"] == "L"
    assert world.ledger.waiting() == [] and world.admission.sweep().rejected == []  # reported once


def test_a_fault_of_the_moment_skips_one_sample_for_this_sweep_only(world: World) -> None:
    _waiting_behind_a_bad_one(world)
    world.clock.now += 3600
    real = world.store.read_text
    world.store.read_text = lambda uri: (_ for _ in ()).throw(TimeoutError("read timed out"))  # type: ignore[method-assign]
    outcome = world.admission.sweep()

    assert any("not checked this sweep: TimeoutError" in reason for reason in outcome.waiting)
    assert {e.detail.sample for e in world.bus} == {"M"} and len(outcome.started) == 1
    world.store.read_text = real  # type: ignore[method-assign]
    assert [e.detail.sample for e in world.bus if e.detail.sample == "Q"] == []
    world.admission.sweep()
    assert world.bus[-1].detail.sample == "Q" and world.bus[-1].detail.error is not None
    assert world.bus[-1].detail.error.type == "MateMissing"


def test_a_sheet_naming_a_bucket_we_may_not_read_fails_clearly(world: World) -> None:
    world.store.forbidden.add("someone-elses")
    world.put("x/samplesheet.csv", b"sample,fastq_1,fastq_2\nZ,s3://someone-elses/Z_1.fq.gz,Z_2.fq.gz\n")
    outcome = world.admission.on_object(INPUT, "x/samplesheet.csv")

    (event,) = world.bus
    assert event.detail.error is not None and event.detail.error.type == "InputUnreadable"
    assert (
        "s3://someone-elses/" in event.detail.error.message and "access denied" in event.detail.error.message
    )
    assert outcome.rejected and world.executions() == []


def test_a_large_sheet_costs_one_listing_per_folder_and_one_plan_per_sweep(world: World) -> None:
    rows = 1000  # the row limit: each sample waits for its R2
    sheet = "sample,fastq_1,fastq_2\n" + "".join(f"S{n},S{n}_1.fq.gz,S{n}_2.fq.gz\n" for n in range(rows))
    for n in range(rows):
        world.put(f"big/S{n}_1.fq.gz", b"r1")
    world.put("big/samplesheet.csv", sheet.encode())
    world.store.requests.clear()
    assert len(world.admission.on_object(INPUT, "big/samplesheet.csv").waiting) == rows
    assert world.store.requests == {"list_folder": 1, "read_text": 1}  # no HEAD per row

    world.store.requests.clear()
    world.clock.now += 60
    assert len(world.admission.sweep().waiting) == rows
    assert world.store.requests == {"list_folder": 1, "read_text": 1}  # one plan for 1,000 waiting rows


def test_a_sheet_over_the_row_limit_is_rejected_naming_the_limit(world: World) -> None:
    sheet = "sample,fastq_1,fastq_2\n" + "".join(f"S{n},S{n}_1.fq.gz,S{n}_2.fq.gz\n" for n in range(1001))
    world.put("huge/samplesheet.csv", sheet.encode())
    world.admission.on_object(INPUT, "huge/samplesheet.csv")

    (event,) = world.bus
    assert event.detail.error is not None and event.detail.error.type == "InvalidSamplesheet"
    assert "row 1002: more than 1000 rows" in event.detail.error.message


@pytest.mark.parametrize(
    ("key", "error_type", "problem"),
    [
        ("run/.._R1.fastq.gz", "InvalidInputName", "must not start with '.'"),
        (f"run/{'n' * 300}_R1.fastq.gz", "InvalidInputName", "at most 64"),
        ("run/P_R1.fastq", "UnsupportedFormat", "an uncompressed FASTQ is not accepted"),
        ("run/P_R1.fastq.bz2", "UnsupportedFormat", ".bz2 compression is not accepted"),
    ],
)
def test_unusable_uploads_are_answered_with_sample_failed(
    world: World, key: str, error_type: str, problem: str
) -> None:
    world.put(key, b"@r\nACGT\n+\nIIII\n")
    outcome = world.admission.on_object(INPUT, key)

    (event,) = world.bus
    assert event.detail_type == "Sample Failed" and event.detail.error is not None
    assert event.detail.error.type == error_type and problem in event.detail.error.message
    assert outcome.rejected and world.executions() == []


def test_upper_case_suffixes_start_a_run(world: World) -> None:
    world.put("uc/U_R1.FASTQ.GZ", b"u1")
    world.put("uc/U_R2.FASTQ.GZ", b"u2")
    (name,) = world.admission.on_object(INPUT, "uc/U_R2.FASTQ.GZ").started
    assert world.execution_input(name)["sample"] == "U"


@pytest.mark.parametrize("key", ["run/../x_R1.fastq.gz", ".staging/x_R1.fastq.gz", "a//x_R1.fastq.gz"])
def test_folders_that_would_misplace_outputs_are_refused(world: World, key: str) -> None:
    world.put(key, b"r1")
    world.admission.on_object(INPUT, key)

    (event,) = world.bus
    assert event.detail.error is not None and event.detail.error.type == "InvalidInputName"
    assert "folder names may not be empty or start with '.'" in event.detail.error.message


def test_the_same_files_listed_by_sheets_in_two_folders_are_two_runs(world: World) -> None:
    world.put("data/A_1.fq.gz", b"a1")
    world.put("data/A_2.fq.gz", b"a2")
    sheet = b"sample,fastq_1,fastq_2\nA,s3://in-bucket/data/A_1.fq.gz,s3://in-bucket/data/A_2.fq.gz\n"
    world.put("x/samplesheet.csv", sheet)
    world.put("y/samplesheet.csv", sheet)
    (first,) = world.admission.on_object(INPUT, "x/samplesheet.csv").started
    (second,) = world.admission.on_object(INPUT, "y/samplesheet.csv").started

    assert first != second
    assert [world.execution_input(n)["folder"] for n in (first, second)] == ["x/", "y/"]
