"""Intake decisions, job state transitions, cost and notification, with in-memory ports."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from genopipe.contracts import (
    AttemptUsage,
    Failure,
    InputObject,
    JobState,
    JobUsage,
    Lane,
    NotifyRequest,
    PipelineInput,
    SubmitRequest,
)
from genopipe.intake.plan import IntakeSettings, execution_name, plan
from genopipe.jobs.backoff import PollingPolicy
from genopipe.jobs.status import (
    DescribedJob,
    JobFailed,
    advance,
    job_spec,
    pinned_reads,
    reads_uri,
    shard_count,
    submitted,
)
from genopipe.notify.announce import PromotionError, announce, describe_failure
from genopipe.notify.cost import Prices, estimate
from genopipe.steps.params import StepParams
from tests.fakes import MemoryBus, MemoryInputStore, MemoryStaging

SETTINGS = IntakeSettings(
    output_bucket="out", reference="s3://ref/genome.fa", aligner="minimap2", pipeline_version="9.9"
)
POLICY = PollingPolicy(initial_seconds=10, max_seconds=5120)


def test_pairing_starts_once_both_mates_exist_with_a_deterministic_name_and_input() -> None:
    store = MemoryInputStore({"s3://in/run/S1_R1.fastq.gz": ("e1", b"")})
    waiting = plan("in", "run/S1_R1.fastq.gz", store, SETTINGS)
    assert waiting.requests == [] and "waits for its mate" in waiting.waiting[0]
    store.objects["s3://in/run/S1_R2.fastq.gz"] = ("e2", b"")
    first = plan("in", "run/S1_R2.fastq.gz", store, SETTINGS)
    again = plan("in", "run/S1_R1.fastq.gz", store, SETTINGS)
    (request,) = first.requests
    assert again.requests[0].name == request.name and again.requests[0].input_json() == request.input_json()
    assert request.name.startswith("S1-") and len(request.name) <= 80
    assert request.input.reads == [Lane(r1="s3://in/run/S1_R1.fastq.gz", r2="s3://in/run/S1_R2.fastq.gz")]
    assert request.input.staging == f"s3://out/.staging/{request.name}/"
    # a new ETag (the file was replaced) is a new execution
    store.objects["s3://in/run/S1_R2.fastq.gz"] = ("e3", b"")
    assert plan("in", "run/S1_R2.fastq.gz", store, SETTINGS).requests[0].name != request.name


def test_execution_name_fits_step_functions_rules() -> None:
    name = execution_name("a.very.long.sample." + "x" * 100, "b", [], "1")
    assert len(name) <= 80
    assert all(c.isalnum() or c in "-_" for c in name)


def test_unmatched_key_is_ignored() -> None:
    decision = plan("in", "run/readme.txt", MemoryInputStore({}), SETTINGS)
    assert decision.ignored and "matches no FASTQ pairing pattern" in decision.ignored


def test_samplesheet_starts_samples_whose_files_exist_and_owns_its_files() -> None:
    sheet = "sample,fastq_1,fastq_2,ploidy\nA,A_1.fq.gz,A_2.fq.gz,1\nB,B_1.fq.gz,B_2.fq.gz,\n"
    store = MemoryInputStore(
        {
            "s3://in/r/samplesheet.csv": ("es", sheet.encode()),
            "s3://in/r/A_1.fq.gz": ("a1", b""),
            "s3://in/r/A_2.fq.gz": ("a2", b""),
            "s3://in/r/B_1.fq.gz": ("b1", b""),
        }
    )
    decision = plan("in", "r/samplesheet.csv", store, SETTINGS)
    assert [r.input.sample for r in decision.requests] == ["A"]
    assert decision.requests[0].input.ploidy == 1
    assert "s3://in/r/samplesheet.csv" in {i.uri for i in decision.requests[0].input.inputs}
    assert "sample 'B' waits for s3://in/r/B_2.fq.gz" in decision.waiting[0]
    store.objects["s3://in/r/B_2.fq.gz"] = ("b2", b"")
    late = plan("in", "r/B_2.fq.gz", store, SETTINGS)
    assert [(r.input.sample, r.input.ploidy) for r in late.requests] == [("B", 2)]


def test_caller_comes_from_the_sheet_else_the_stack_and_names_a_new_execution() -> None:
    files = {"s3://in/r/A_1.fq.gz": ("a1", b""), "s3://in/r/A_2.fq.gz": ("a2", b"")}
    by_name = plan("in", "r/A_2.fq.gz", MemoryInputStore(dict(files)), SETTINGS).requests[0]
    assert by_name.input.caller == SETTINGS.default_caller == "bcftools"
    sheet = "sample,fastq_1,fastq_2,caller\nA,A_1.fq.gz,A_2.fq.gz,freebayes\n"
    store = MemoryInputStore({**files, "s3://in/r/samplesheet.csv": ("es", sheet.encode())})
    chosen = plan("in", "r/samplesheet.csv", store, SETTINGS).requests[0]
    assert chosen.input.caller == "freebayes"
    assert chosen.name != by_name.name, "another caller is another run"
    stack = IntakeSettings("out", "s3://ref/genome.fa", "minimap2", "9.9", default_caller="freebayes")
    assert plan("in", "r/A_2.fq.gz", MemoryInputStore(dict(files)), stack).requests[0].name == chosen.name


def test_the_stacks_sharding_is_pinned_in_the_input_and_a_bed_of_intervals_names_a_new_run() -> None:
    files = {"s3://in/r/A_1.fq.gz": ("e1", b""), "s3://in/r/A_2.fq.gz": ("e2", b"")}
    default = plan("in", "r/A_2.fq.gz", MemoryInputStore(dict(files)), SETTINGS).requests[0]
    assert (default.input.align_shard_read_pairs, default.input.call_shard_bases) == (10_000_000, 100_000_000)
    assert (default.input.max_shards, default.input.intervals) == (100, "")
    sharded = replace(SETTINGS, align_shard_read_pairs=2500, call_shard_bases=5000, max_shards=8)
    small = plan("in", "r/A_2.fq.gz", MemoryInputStore(dict(files)), sharded).requests[0]
    assert (small.input.align_shard_read_pairs, small.input.call_shard_bases, small.input.max_shards) == (
        2500,
        5000,
        8,
    )
    assert small.name == default.name, "shard sizes do not change the calls"
    exome = replace(SETTINGS, intervals="s3://ref/exome.bed")
    targeted = plan("in", "r/A_2.fq.gz", MemoryInputStore(dict(files)), exome).requests[0]
    assert targeted.input.intervals == "s3://ref/exome.bed" and targeted.name != default.name
    sheet = "sample,fastq_1,fastq_2,intervals\nA,A_1.fq.gz,A_2.fq.gz,s3://ref/panel.bed\n"
    store = MemoryInputStore({**files, "s3://in/r/samplesheet.csv": ("es", sheet.encode())})
    assert plan("in", "r/samplesheet.csv", store, exome).requests[0].input.intervals == "s3://ref/panel.bed"


def _request(capacity: str = "spot", replaces: JobState | None = None) -> SubmitRequest:
    pipeline = PipelineInput(
        sample="S1",
        reads=[Lane(r1="s3://in/S1_R1.fastq.gz", r2="s3://in/S1_R2.fastq.gz")],
        reference="s3://ref/genome.fa",
        staging="s3://out/.staging/S1-abc/",
        output_bucket="out",
        inputs=[],
        pipeline_version="9.9",
    )
    return SubmitRequest.model_validate(
        {
            "step": "align",
            "capacity": capacity,
            "job_queue": "q",
            "job_definition": "d",
            "input": pipeline,
            "replaces": replaces,
        }
    )


def test_job_spec_fills_the_internals_parameters() -> None:
    spec = job_spec(_request())
    assert spec.job_name == "S1-align"
    assert spec.parameters["ploidy"] == "2" and spec.parameters["aligner"] == "minimap2"
    assert spec.parameters["caller"] == "bcftools"
    # the lanes go by reference: the URI of the reads.json the submit Lambda stages
    assert spec.parameters["reads"] == reads_uri(_request().input) == _request().input.staging + "reads.json"
    assert json.loads(pinned_reads(_request().input)) == [
        {"r1": "s3://in/S1_R1.fastq.gz", "r2": "s3://in/S1_R2.fastq.gz"}
    ]
    assert spec.parameters["align_shard_read_pairs"] == "10000000"
    assert spec.parameters["call_shard_bases"] == "100000000"
    assert spec.parameters["max_shards"] == "100" and spec.parameters["intervals"] == "none"
    assert spec.array_size is None  # one shard: a plain job


def test_job_spec_of_several_shards_is_an_array_job_of_two_to_ten_thousand() -> None:
    assert job_spec(_request(), shards=4).array_size == 4
    assert job_spec(_request(), shards=1).array_size is None
    assert job_spec(_request(), shards=10_000).array_size == 10_000
    with pytest.raises(ValueError, match="at most 10000"):
        job_spec(_request(), shards=10_001)
    with pytest.raises(ValueError, match="not a shard plan"):
        shard_count({"shards": []}, "s3://o/s/shards/align.json")
    assert shard_count({"shards": [{}, {}, {}]}, "plan") == 3


def test_job_spec_pins_every_lane_to_its_admitted_etags() -> None:
    request = _request()
    pinned = request.input.model_copy(
        update={
            "inputs": [
                InputObject(uri="s3://in/S1_R1.fastq.gz", etag="e1"),
                InputObject(uri="s3://in/S1_R2.fastq.gz", etag="e2"),
            ]
        }
    )
    reads = pinned_reads(pinned).decode()
    (lane,) = json.loads(reads)
    assert lane == {
        "r1": "s3://in/S1_R1.fastq.gz",
        "r2": "s3://in/S1_R2.fastq.gz",
        "r1_etag": "e1",
        "r2_etag": "e2",
    }
    params = StepParams(sample="S1", reads=reads, reference="s3://r/g.fa", staging="s3://o/s/")
    assert params.reads[0] == Lane(
        r1="s3://in/S1_R1.fastq.gz", r2="s3://in/S1_R2.fastq.gz", r1_etag="e1", r2_etag="e2"
    )


def _described(
    status: str, reason: str | None = None, attempts: list[dict[str, Any]] | None = None
) -> DescribedJob:
    return DescribedJob.model_validate(
        {
            "jobId": "j1",
            "jobName": "S1-align",
            "status": status,
            "statusReason": reason,
            "attempts": attempts or [],
            "container": {"resourceRequirements": [{"type": "VCPU", "value": "8"}]},
        }
    )


def test_check_backs_off_while_running_and_records_usage_on_success() -> None:
    state = submitted(_request(), job_spec(_request()), "j1", POLICY)
    assert state.wait_seconds == 10
    running = advance(state, _described("RUNNING"), POLICY)
    assert (running.status, running.wait_seconds) == ("RUNNING", 20)
    done = advance(
        running, _described("SUCCEEDED", attempts=[{"startedAt": 0, "stoppedAt": 3_600_000}]), POLICY
    )
    assert done.status == "SUCCEEDED" and done.vcpus == 8 and done.attempts[0].stopped_at == 3_600_000


def test_spot_reclaim_is_reported_and_failure_raises_an_actionable_error() -> None:
    state = submitted(_request(), job_spec(_request()), "j1", POLICY)
    reclaim = [
        {"statusReason": "Host EC2 (instance i-0abc) terminated.", "container": {"logStreamName": "s/1"}}
    ]
    assert advance(
        state, _described("FAILED", "Host EC2 (instance i-0abc) terminated.", reclaim), POLICY
    ).status == ("RECLAIMED")
    on_demand = submitted(_request("on-demand", state), job_spec(_request()), "j2", POLICY)
    assert [u.job_id for u in on_demand.usage()] == ["j1", "j2"]
    crashed = [
        {
            "statusReason": "Essential container in task exited",
            "container": {"exitCode": 1, "logStreamName": "genopipe-align/default/abc"},
        }
    ]
    with pytest.raises(JobFailed) as caught:
        advance(on_demand, _described("FAILED", "Essential container in task exited", crashed), POLICY)
    message = str(caught.value)
    assert (
        "align job S1-align (j1) failed on on-demand capacity: Essential container in task exited" in message
    )
    assert "exit code 1" in message and "/aws/batch/job stream genopipe-align/default/abc" in message


NO_SPOT = "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"


def test_spot_job_cancelled_runnable_for_want_of_capacity_is_resubmitted_like_a_reclaim() -> None:
    state = submitted(_request(), job_spec(_request()), "j1", POLICY)
    # the queue's JobStateTimeLimitActions cancelled it before any attempt started
    cancelled = advance(state, _described("FAILED", NO_SPOT), POLICY)
    assert cancelled.status == "RECLAIMED" and cancelled.attempts == []
    on_demand = submitted(_request("on-demand", cancelled), job_spec(_request()), "j2", POLICY)
    assert [u.job_id for u in on_demand.usage()] == ["j1", "j2"]


def test_on_demand_job_cancelled_for_want_of_capacity_fails_with_the_reason() -> None:
    state = submitted(_request("on-demand"), job_spec(_request()), "j1", POLICY)
    with pytest.raises(JobFailed) as caught:
        advance(state, _described("FAILED", NO_SPOT), POLICY)
    message = str(caught.value)
    assert f"failed on on-demand capacity: {NO_SPOT}" in message
    assert "EC2 quotas" in message and "CloudWatch Logs" not in message  # it never ran: no log


@pytest.mark.parametrize(
    "reason",
    [
        "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        "Cancelled by user",
    ],
)
def test_other_cancellations_of_a_spot_job_fail_it(reason: str) -> None:
    state = submitted(_request(), job_spec(_request()), "j1", POLICY)
    with pytest.raises(JobFailed, match="failed on spot capacity"):
        advance(state, _described("FAILED", reason), POLICY)


def test_cost_prices_each_attempt_at_the_capacity_it_ran_on() -> None:
    hour = [AttemptUsage(started_at=0, stopped_at=3_600_000)]
    jobs = [
        JobUsage(job_id="a", capacity="spot", vcpus=4, attempts=hour),
        JobUsage(job_id="b", capacity="on-demand", vcpus=2, attempts=[*hour, AttemptUsage(started_at=5)]),
    ]
    cost = estimate(jobs, Prices(spot_per_vcpu_hour=0.01, on_demand_per_vcpu_hour=0.05))
    assert (cost.spot_vcpu_hours, cost.on_demand_vcpu_hours) == (4.0, 2.0)
    assert cost.usd == pytest.approx(4 * 0.01 + 2 * 0.05)


STAGING = "s3://out/.staging/S1-abc/"
STAGED = [
    "S1.bam",
    "S1.bam.bai",
    "S1.vcf.gz",
    "S1.vcf.gz.tbi",
    "qc/multiqc_report.html",
    "qc/S1.fastp.json",
    "manifest.json",
    "validate.json",
    "trimmed/S1_L1_R1.fastq.gz",
    "versions/align.json",
]


def _notify(outcome: str, failure: Failure | None = None) -> NotifyRequest:
    return NotifyRequest(outcome=outcome, execution_arn="arn:x", input=_request().input, failure=failure)  # type: ignore[arg-type]


def test_success_promotes_only_promotable_keys_and_reports_qc() -> None:
    objects: dict[str, Any] = {STAGING + key: key for key in STAGED}
    objects[STAGING + "summary.json"] = {"read_pairs": 1000, "percent_mapped": 99.5, "snps": 7, "titv": 2.1}
    staging, bus = MemoryStaging(objects), MemoryBus()
    event = announce(_notify("SUCCEEDED"), staging, bus, Prices(0.01, 0.05))
    assert bus == [event] and event.detail_type == "Sample Completed"
    assert sorted(staging.objects) == sorted(
        f"s3://out/S1/{k}"
        for k in [
            "S1.bam",
            "S1.bam.bai",
            "S1.vcf.gz",
            "S1.vcf.gz.tbi",
            "qc/multiqc_report.html",
            "qc/S1.fastp.json",
            "manifest.json",
            "qc/summary.json",
        ]
    )
    assert event.detail.outputs is not None and event.detail.outputs.bam == "s3://out/S1/S1.bam"
    assert event.detail.qc is not None and event.detail.qc.read_pairs == 1000


def test_success_with_missing_outputs_promotes_nothing() -> None:
    objects: dict[str, Any] = {STAGING + "S1.bam": "x"}
    staging = MemoryStaging(objects)
    with pytest.raises(PromotionError, match=r"s3://out/.staging/S1-abc/S1.bam.bai.*nothing was promoted"):
        announce(_notify("SUCCEEDED"), staging, MemoryBus(), Prices(0.01, 0.05))
    assert list(staging.objects) == [STAGING + "S1.bam"]


def test_failure_drops_staging_and_explains_the_lambda_error() -> None:
    cause = json.dumps(
        {"errorType": "JobFailed", "errorMessage": "align job S1-align (j1) failed: exit code 1"}
    )
    staging, bus = MemoryStaging({STAGING + "S1.bam": "x"}), MemoryBus()
    event = announce(
        _notify("FAILED", Failure(step="align", error="JobFailed", cause=cause)),
        staging,
        bus,
        Prices(0.01, 0.05),
    )
    assert staging.objects == {}
    assert event.detail_type == "Sample Failed" and event.detail.error is not None
    assert event.detail.error.model_dump() == {
        "step": "align",
        "type": "JobFailed",
        "message": "align job S1-align (j1) failed: exit code 1",
    }
    assert describe_failure(Failure(step="qc", error="States.Timeout", cause="")).message.startswith(
        "the qc step timed out"
    )


def test_a_failed_publish_keeps_staging_and_says_how_to_publish_again() -> None:
    cause = json.dumps(
        {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 900.00 seconds"}
    )
    staging, bus = MemoryStaging({STAGING + "S1.bam": "x"}), MemoryBus()
    event = announce(
        _notify("FAILED", Failure(step="notify", error="Sandbox.Timedout", cause=cause)),
        staging,
        bus,
        Prices(0, 0),
    )
    assert staging.objects == {STAGING + "S1.bam": "x"}  # hours of compute are not thrown away
    error = event.detail.error
    assert error is not None and (error.step, error.type) == ("notify", "PublishFailed")
    assert (
        f"publishing {STAGING} failed (Sandbox.Timedout: Task timed out after 900.00 seconds)"
        in error.message
    )
    assert "`genopipe publish arn:x` publishes them again" in error.message


def _child(index: int, status: str, reason: str | None = None, exit_code: int | None = None) -> DescribedJob:
    attempt: dict[str, Any] = {"startedAt": 0, "stoppedAt": 60_000, "statusReason": reason}
    attempt["container"] = {"logStreamName": f"genopipe-align/default/t{index}"}
    if exit_code is not None:
        attempt["container"]["exitCode"] = exit_code
    return DescribedJob.model_validate(
        {
            "jobId": f"j1:{index}",
            "jobName": "S1-align",
            "status": status,
            "statusReason": reason,
            "attempts": [attempt],
            "arrayProperties": {"index": index},
            "container": {"resourceRequirements": [{"type": "VCPU", "value": "8"}]},
        }
    )


def _parent(status: str, size: int) -> DescribedJob:
    return DescribedJob.model_validate(
        {"jobId": "j1", "jobName": "S1-align", "status": status, "arrayProperties": {"size": size}}
    )


def test_an_array_job_is_followed_by_its_parent_and_costed_by_every_child() -> None:
    state = submitted(_request(), job_spec(_request(), shards=3), "j1", POLICY)
    assert state.shards == 3
    running = advance(state, _parent("RUNNING", 3), POLICY)  # no children read while it runs
    assert running.status == "RUNNING" and running.attempts == []
    children = [_child(index, "SUCCEEDED") for index in range(3)]
    done = advance(running, _parent("SUCCEEDED", 3), POLICY, children=children)
    assert done.status == "SUCCEEDED" and done.vcpus == 8 and len(done.attempts) == 3
    cost = estimate(done.usage(), Prices(spot_per_vcpu_hour=0.01, on_demand_per_vcpu_hour=0.04))
    assert cost.spot_vcpu_hours == round(3 * 8 * 60 / 3600, 6)  # three children of 8 vCPUs, 1 minute each


RECLAIMED = "Host EC2 (instance i-0abc) terminated."


def test_an_array_job_is_reclaimed_only_when_every_failed_shard_was_reclaimed() -> None:
    state = submitted(_request(), job_spec(_request(), shards=3), "j1", POLICY)
    children = [_child(0, "SUCCEEDED"), _child(1, "FAILED", RECLAIMED), _child(2, "SUCCEEDED")]
    reclaimed = advance(state, _parent("FAILED", 3), POLICY, children=children)
    assert reclaimed.status == "RECLAIMED" and len(reclaimed.attempts) == 3
    children[2] = _child(2, "FAILED", "Essential container in task exited", exit_code=1)
    tails = {"genopipe-align/default/t2": ["genopipe align: s3://b/L1_R1.fastq.gz: minimap2 failed (exit 1)"]}
    with pytest.raises(JobFailed) as caught:
        advance(state, _parent("FAILED", 3), POLICY, lambda stream: tails.get(stream, []), children)
    message = str(caught.value)
    assert message.startswith("shard 2 of 3: align job S1-align (j1:2) failed on spot capacity")
    assert "exit code 1" in message and "minimap2 failed (exit 1)" in message
    assert message.endswith("(1 more shards failed)")


def test_the_job_states_of_the_largest_arrays_fit_the_state_machines_payload() -> None:
    """MaxShards <= 500 (template.yaml): align and call at 500 children, each rerun On-Demand once."""
    state = submitted(_request(), job_spec(_request(), shards=500), "j" * 36, POLICY)
    children = [_child(index, "SUCCEEDED") for index in range(500)]
    done = advance(state, _parent("SUCCEEDED", 500), POLICY, children=children)
    rerun = done.model_copy(update={"earlier": done.usage()})
    assert len(rerun.model_dump_json()) * 2 < 200_000  # of 256 KB, leaving room for the rest
    assert JobState.model_validate_json(rerun.model_dump_json()) == rerun
