"""concat: the gather of `call`: the region parts -> the sample's VCF + TBI.

The call-region planning (issue 13, branch issue13-regions) replaces this module with the one that
calls `call.gather(step)` (`bcftools concat` of the non-overlapping region parts). Until then the
call step runs unscattered and stages `<sample>.vcf.gz` + `.tbi` itself, and this step checks that
both are there and that the index matches the VCF, so the report never starts on a missing call.
"""

from __future__ import annotations

from genopipe.steps.runner import Step
from genopipe.steps.tools import Tool


def run(step: Step) -> None:
    vcf = step.fetch(step.staged(step.files.vcf), "in", step.files.vcf)
    step.fetch(step.staged(step.files.tbi), "in", step.files.tbi)
    # reads the index: a TBI that does not belong to the VCF fails here, naming the VCF
    step.pipe(Tool(["bcftools", "index", "--nrecords", str(vcf)], step.staged(step.files.vcf)))
