"""Exactly once under racing and repeated invocations: the intake's admission over moto's S3,
DynamoDB (the ledger's conditional writes) and Step Functions. The admission rules themselves
(mates, lanes, sample sheets, the sweep) are unit tests on in-memory ports: tests/unit/test_admission.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from genopipe.aws.input_store import S3InputStore
from genopipe.aws.ledger import DynamoLedger
from genopipe.aws.stepfunctions import StepFunctionsExecutions
from genopipe.intake.admission import Admission, AdmissionSettings
from genopipe.intake.plan import IntakeSettings
from tests.fakes import Clock, MemoryBus

INPUT, OUTPUT, TABLE = "in-bucket", "out-bucket", "genopipe-intake"
SETTINGS = IntakeSettings(OUTPUT, "s3://ref/genome.fa", "minimap2", "0.1.0")


@dataclass
class World:
    admission: Admission
    clock: Clock
    bus: MemoryBus
    machine: str

    def put(self, key: str, body: bytes) -> None:
        boto3.client("s3").put_object(Bucket=INPUT, Key=key, Body=body)

    def executions(self) -> list[dict[str, object]]:
        sfn = boto3.client("stepfunctions")
        return list(sfn.list_executions(stateMachineArn=self.machine)["executions"])

    def execution_input(self, name: str) -> dict[str, object]:
        sfn = boto3.client("stepfunctions")
        arn = self.machine.replace(":stateMachine:", ":execution:") + f":{name}"
        return dict(json.loads(sfn.describe_execution(executionArn=arn)["input"]))


@pytest.fixture
def world(moto: None) -> Iterator[World]:
    boto3.client("s3").create_bucket(Bucket=INPUT)
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    machine = boto3.client("stepfunctions").create_state_machine(
        name="genopipe",
        definition=json.dumps(
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    clock, bus = Clock(), MemoryBus()
    admission = Admission(
        S3InputStore(),
        DynamoLedger(TABLE),
        StepFunctionsExecutions(machine),
        bus,
        SETTINGS,
        AdmissionSettings(mate_timeout_s=3600, lane_settle_s=300),
        clock,
    )
    yield World(admission, clock, bus, machine)


def test_the_same_event_three_times_starts_one_execution(world: World) -> None:
    world.put("run/A_R1.fastq.gz", b"r1")
    world.put("run/A_R2.fastq.gz", b"r2")
    outcomes = [world.admission.on_object(INPUT, "run/A_R2.fastq.gz") for _ in range(3)]

    assert [len(o.started) for o in outcomes] == [1, 0, 0]
    assert [len(o.duplicates) for o in outcomes] == [0, 1, 1]
    assert [e["name"] for e in world.executions()] == outcomes[0].started


def test_r1_and_r2_racing_start_one_execution_per_sample(world: World) -> None:
    samples = [f"S{n}" for n in range(8)]
    for sample in samples:
        world.put(f"race/{sample}_R1.fastq.gz", b"r1")
        world.put(f"race/{sample}_R2.fastq.gz", b"r2")
    barrier = threading.Barrier(2 * len(samples))
    started: list[str] = []
    lock = threading.Lock()

    def intake(key: str) -> None:
        barrier.wait()
        outcome = world.admission.on_object(INPUT, key)
        with lock:
            started.extend(outcome.started)

    threads = [
        threading.Thread(target=intake, args=(f"race/{sample}_R{read}.fastq.gz",))
        for sample in samples
        for read in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    names = sorted(e["name"] for e in world.executions())  # type: ignore[type-var]
    assert len(names) == len(samples)
    assert sorted(started) == names  # each claimed by exactly one of its two racing intakes
