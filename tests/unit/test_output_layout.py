"""Issue 15, case 3: results go under `<folder>/<sample>/`, the folder of the sample's inputs (or of
its samplesheet.csv), so two samples of the same name in different folders never collide, and a
new run replaces a sample's outputs as a whole set (DESIGN.md, "Outputs")."""

from __future__ import annotations

from typing import Any

import pytest

from genopipe.contracts import Lane, NotifyRequest, PipelineInput
from genopipe.intake.plan import IntakeSettings, plan
from genopipe.layout import SampleFiles, published_key
from genopipe.notify.announce import announce
from genopipe.notify.cost import Prices
from tests.fakes import MemoryBus, MemoryInputStore, MemoryStaging

SETTINGS = IntakeSettings(
    output_bucket="out", reference="s3://ref/genome.fa", aligner="minimap2", pipeline_version="9.9"
)
PRICES = Prices(0.01, 0.05)


def _input(folder: str, execution: str, sample: str = "S1") -> PipelineInput:
    return PipelineInput(
        sample=sample,
        reads=[Lane(r1=f"s3://in/{folder}{sample}_R1.fastq.gz", r2=f"s3://in/{folder}{sample}_R2.fastq.gz")],
        reference="s3://ref/genome.fa",
        staging=f"s3://out/.staging/{execution}/",
        output_bucket="out",
        inputs=[],
        pipeline_version="9.9",
        folder=folder,
    )


def _staged(pipeline: PipelineInput, lanes: int = 1) -> dict[str, Any]:
    files = SampleFiles(pipeline.sample)
    keys = [files.bam, files.bai, files.vcf, files.tbi, "qc/multiqc_report.html", "manifest.json"]
    for lane in range(1, lanes + 1):
        keys += files.fastp_reports(lane, lanes)
    keys += ["trimmed/x_R1.fastq.gz", "validate.json"]
    objects: dict[str, Any] = {pipeline.staging + key: f"{pipeline.staging}{key}" for key in keys}
    objects[pipeline.staging + "summary.json"] = {"read_pairs": 10}
    return objects


def _publish(pipeline: PipelineInput, staging: MemoryStaging, lanes: int = 1) -> Any:
    staging.objects.update(_staged(pipeline, lanes))
    request = NotifyRequest(outcome="SUCCEEDED", execution_arn="arn:x", input=pipeline)
    return announce(request, staging, MemoryBus(), PRICES)


def _under(staging: MemoryStaging, prefix: str) -> list[str]:
    return sorted(uri.removeprefix(prefix) for uri in staging.objects if uri.startswith(prefix))


@pytest.mark.parametrize(
    ("key", "folder"),
    [("S1_R2.fastq.gz", ""), ("runA/S1_R2.fastq.gz", "runA/"), ("a/b c/S1_R2.fastq.gz", "a/b c/")],
)
def test_the_intake_sets_the_folder_of_the_inputs(key: str, folder: str) -> None:
    store = MemoryInputStore(
        {f"s3://in/{folder}S1_R1.fastq.gz": ("e1", b""), f"s3://in/{folder}S1_R2.fastq.gz": ("e2", b"")}
    )
    (request,) = plan("in", key, store, SETTINGS).requests
    assert request.input.folder == folder
    assert request.input.outputs_prefix == f"s3://out/{folder}S1/"


def test_a_sample_sheet_puts_its_samples_under_its_own_folder() -> None:
    sheet = "sample,fastq_1,fastq_2\nA,s3://in/data/A_1.fq.gz,s3://in/data/A_2.fq.gz\n"
    store = MemoryInputStore(
        {
            "s3://in/sheets/x/samplesheet.csv": ("es", sheet.encode()),
            "s3://in/data/A_1.fq.gz": ("a1", b""),
            "s3://in/data/A_2.fq.gz": ("a2", b""),
        }
    )
    (request,) = plan("in", "sheets/x/samplesheet.csv", store, SETTINGS).requests
    assert request.input.outputs_prefix == "s3://out/sheets/x/A/"


def test_an_execution_input_from_before_the_folder_existed_publishes_at_the_root() -> None:
    document = _input("", "old").model_dump(mode="json")
    del document["folder"]
    assert PipelineInput.model_validate(document).outputs_prefix == "s3://out/S1/"


def test_same_sample_name_in_two_folders_never_collides() -> None:
    staging = MemoryStaging({})
    first = _publish(_input("runA/", "S1-a"), staging)
    second = _publish(_input("runB/", "S1-b"), staging)
    assert first.detail.outputs.bam == "s3://out/runA/S1/S1.bam"
    assert second.detail.outputs.bam == "s3://out/runB/S1/S1.bam"
    assert _under(staging, "s3://out/runA/S1/") == _under(staging, "s3://out/runB/S1/")
    assert staging.objects["s3://out/runA/S1/S1.bam"] == "s3://out/.staging/S1-a/S1.bam"
    assert staging.objects["s3://out/runB/S1/S1.bam"] == "s3://out/.staging/S1-b/S1.bam"
    assert not [uri for uri in staging.objects if ".staging/" in uri]


def test_a_new_run_replaces_the_whole_set_and_nothing_of_another_sample() -> None:
    staging = MemoryStaging({})
    _publish(_input("run/", "S1-two-lanes"), staging, lanes=2)
    assert "qc/S1_L2.fastp.json" in _under(staging, "s3://out/run/S1/")
    # another sample whose inputs sit in a folder below this one's outputs, and a stranger's file
    neighbours = {
        "s3://out/run/S1/sub/S2/S2.bam": "S2",
        "s3://out/run/S1/qc/other/S1.bam": "nested",
        "s3://out/run/S1/notes.txt": "a user's",
    }
    staging.objects.update(neighbours)
    _publish(_input("run/", "S1-one-lane"), staging)
    published = [
        key for key in _under(staging, "s3://out/run/S1/") if f"s3://out/run/S1/{key}" not in neighbours
    ]
    assert published == sorted(
        [
            "S1.bam",
            "S1.bam.bai",
            "S1.vcf.gz",
            "S1.vcf.gz.tbi",
            "manifest.json",
            "qc/S1.fastp.html",
            "qc/S1.fastp.json",
            "qc/multiqc_report.html",
            "qc/summary.json",
        ]
    )
    assert staging.objects["s3://out/run/S1/S1.bam"] == "s3://out/.staging/S1-one-lane/S1.bam"
    assert all(uri in staging.objects for uri in neighbours)


class _DeleteFails(MemoryStaging):
    def delete(self, uris: list[str]) -> None:
        raise RuntimeError("throttled")


def test_a_failed_replacement_keeps_staging_so_publishing_can_be_retried() -> None:
    staging = _DeleteFails({})
    _publish(_input("run/", "S1-a"), staging, lanes=2)  # nothing stale yet: no delete called
    staging.objects["s3://out/run/S1/qc/S1_L1.fastp.json"] = "stale"
    with pytest.raises(RuntimeError):
        _publish(_input("run/", "S1-b"), staging)
    assert "s3://out/.staging/S1-b/S1.bam" in staging.objects


def test_every_file_a_run_publishes_is_recognised_as_the_samples_own() -> None:
    """Otherwise a new run would leave that file of the earlier run beside its own."""
    files = SampleFiles("S1")
    staged = [files.bam, files.bai, files.vcf, files.tbi, "manifest.json", "summary.json"]
    staged += [files.samtools_stats, files.flagstat, files.bcftools_stats, "qc/multiqc_report.html"]
    staged += [
        key for lanes in (1, 3) for lane in range(1, lanes + 1) for key in files.fastp_reports(lane, lanes)
    ]
    published = [published_key(files, key) for key in staged]
    assert all(key is not None and files.publishes(key) for key in published), published
    assert not SampleFiles("S10").publishes("S1.bam") and not files.publishes("qc/S10.fastp.json")
