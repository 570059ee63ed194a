"""Submitting a step's Batch job at most once per execution, step and queue, however often the
submit_job Lambda is invoked for it (the state machine retries `Lambda.*` errors, and an
invocation may have called SubmitJob before it failed).

- The submission's token is a hash of the execution's staging prefix (unique per execution), the
  step, the queue and the job it replaces (the On-Demand resubmission is a submission of its own).
- The first invocation claims the token in the intake ledger (a conditional write), submits, and
  records the job id there. A later invocation with the same token returns the recorded job.
- A claim without a job id means an earlier invocation failed between its claim and its record:
  the job it may have submitted is looked up in Batch (same name and queue, created after the
  claim, same staging parameter) and adopted; only if there is none is the job submitted now.

No AWS in here: the ledger and Batch are ports (genopipe.aws adapts them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from genopipe.contracts import JobSpec, SubmitRequest


@dataclass(frozen=True)
class Claim:
    claimed_at: float
    job_id: str | None


class SubmissionLedger(Protocol):
    def claim_submission(self, token: str, now: float) -> Claim | None:
        """Claim `token`; None if this call claimed it, else the existing claim."""
        ...

    def record_submission(self, token: str, job_id: str) -> None: ...


class JobLookup(Protocol):
    def submitted_since(self, spec: JobSpec, since: float) -> list[str]:
        """Ids of jobs named `spec.job_name` on `spec.job_queue`, created at or after `since`
        (epoch seconds), whose `staging` parameter equals the spec's."""
        ...


@dataclass(frozen=True)
class Submission:
    job_id: str
    first: bool  # False: an earlier invocation had submitted it


def submission_token(request: SubmitRequest) -> str:
    material = {
        "staging": request.input.staging,
        "step": request.step,
        "queue": request.job_queue,
        "replaces": request.replaces.job_id if request.replaces else None,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def submit_once(
    request: SubmitRequest,
    spec: JobSpec,
    ledger: SubmissionLedger,
    lookup: JobLookup,
    submit: Callable[[JobSpec], str],
    clock: Callable[[], float],
) -> Submission:
    token = submission_token(request)
    claim = ledger.claim_submission(token, clock())
    if claim is not None:
        if claim.job_id:
            return Submission(claim.job_id, first=False)
        found = lookup.submitted_since(spec, claim.claimed_at - 1.0)
        if found:
            ledger.record_submission(token, found[0])
            return Submission(found[0], first=False)
    job_id = submit(spec)
    ledger.record_submission(token, job_id)
    return Submission(job_id, first=True)
