"""concat: the gather of scatter-gather calling, the call jobs' parts into the sample's VCF.

Runs once every call job of the array has written its part (`call/part-<i>.vcf.gz`): see
`genopipe.steps.call.gather` (concatenation in plan order, sort, the contextual SnpGap filter,
bgzip, tabix).
"""

from __future__ import annotations

from genopipe.steps import call
from genopipe.steps.runner import Step


def run(step: Step) -> None:
    call.gather(step)
