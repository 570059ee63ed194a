"""The cost estimate in the Sample Completed event: run time x vCPUs x price per vCPU-hour, each
job attempt priced at the capacity it actually ran on (Spot, or On-Demand after a reclaim)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from genopipe.contracts import CostEstimate, JobUsage


@dataclass(frozen=True)
class Prices:
    spot_per_vcpu_hour: float
    on_demand_per_vcpu_hour: float


def vcpu_hours(job: JobUsage) -> float:
    """vCPU-hours of every attempt that started (a never-started attempt costs nothing)."""
    millis = sum(
        max(0, attempt.stopped_at - attempt.started_at)
        for attempt in job.attempts
        if attempt.started_at is not None and attempt.stopped_at is not None
    )
    return job.vcpus * millis / 3_600_000


def estimate(jobs: Iterable[JobUsage], prices: Prices) -> CostEstimate:
    spot = on_demand = 0.0
    for job in jobs:
        if job.capacity == "spot":
            spot += vcpu_hours(job)
        else:
            on_demand += vcpu_hours(job)
    usd = spot * prices.spot_per_vcpu_hour + on_demand * prices.on_demand_per_vcpu_hour
    return CostEstimate(
        usd=round(usd, 6),
        spot_vcpu_hours=round(spot, 6),
        on_demand_vcpu_hours=round(on_demand, 6),
        spot_price_per_vcpu_hour=prices.spot_per_vcpu_hour,
        on_demand_price_per_vcpu_hour=prices.on_demand_per_vcpu_hour,
    )
