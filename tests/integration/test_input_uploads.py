"""Files still uploading, on moto's S3: S3InputStore's ListMultipartUploads (with a prefix) and
ListParts, and the admission over them. The rules themselves are unit tests on in-memory ports
(tests/unit/test_uploads_in_progress.py).

What moto 5.2.5 does here (measured): ListMultipartUploads filters by `Prefix`, but ignores
`Delimiter` (uploads in sub-folders come back too; the adapter drops them itself, as S3's own
answer with a delimiter would) and answers every upload's `Initiated` with a constant,
2010-11-10T20:48:33Z (so on moto every upload looks 16 years old and its progress comes from
ListParts, whose parts carry real `LastModified` times). Neither is faked here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from genopipe.aws.input_store import S3InputStore
from genopipe.intake.admission import Admission, AdmissionSettings
from genopipe.intake.plan import InputUnreadable, IntakeSettings
from tests.fakes import Clock, MemoryBus, MemoryExecutions, MemoryLedger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

INPUT = "in-bucket"
SETTINGS = IntakeSettings("out-bucket", "s3://ref/genome.fa", "minimap2", "0.1.0")
PART = b"A" * (5 * 1024 * 1024)  # S3's smallest part but the last


@pytest.fixture
def s3(moto: None) -> Iterator[S3Client]:
    client = boto3.client("s3")
    client.create_bucket(Bucket=INPUT)
    yield client


def start(client: S3Client, key: str) -> str:
    return str(client.create_multipart_upload(Bucket=INPUT, Key=key)["UploadId"])


def test_uploads_in_a_folder_and_their_newest_part(s3: S3Client) -> None:
    store = S3InputStore()
    in_folder = start(s3, "run/S1_R2.fastq.gz")
    start(s3, "run/sub/S1_R2.fastq.gz")  # a sub-folder: not this folder's
    start(s3, "runs/S1_R2.fastq.gz")  # a prefix of the folder's name is not the folder
    s3.put_object(Bucket=INPUT, Key="run/S1_R1.fastq.gz", Body=b"r1")

    (upload,) = store.uploading(INPUT, "run/")
    assert (upload.uri, upload.upload_id) == (f"s3://{INPUT}/run/S1_R2.fastq.gz", in_folder)
    assert store.list_folder(INPUT, "run/").keys() == {"run/S1_R1.fastq.gz"}  # listing does not show it
    assert store.last_part_at(upload) is None  # no part yet

    before = time.time()
    for number in (1, 2):
        s3.upload_part(
            Bucket=INPUT, Key="run/S1_R2.fastq.gz", UploadId=in_folder, PartNumber=number, Body=PART
        )
    newest = store.last_part_at(upload)
    assert newest is not None and before - 1 <= newest <= time.time() + 1

    parts = [{"PartNumber": n, "ETag": e} for n, e in enumerate(_etags(s3, in_folder), start=1)]
    s3.complete_multipart_upload(
        Bucket=INPUT, Key="run/S1_R2.fastq.gz", UploadId=in_folder, MultipartUpload={"Parts": parts}
    )
    assert store.uploading(INPUT, "run/") == []
    assert store.list_folder(INPUT, "run/").keys() == {"run/S1_R1.fastq.gz", "run/S1_R2.fastq.gz"}
    # listed before it completed: ListParts now answers NoSuchUpload, read as activity just now
    assert store.last_part_at(upload) == pytest.approx(time.time(), abs=5)


def _etags(client: S3Client, upload_id: str) -> list[str]:
    parts = client.list_parts(Bucket=INPUT, Key="run/S1_R2.fastq.gz", UploadId=upload_id)["Parts"]
    return [part["ETag"] for part in parts]


def test_a_bucket_it_may_not_list_is_the_samples_problem(moto: None) -> None:
    with pytest.raises(InputUnreadable, match="s3://no-such-bucket/run/: no such bucket"):
        S3InputStore().uploading("no-such-bucket", "run/")


def test_a_mate_uploading_on_moto_is_not_missing_and_a_stalled_one_is(s3: S3Client) -> None:
    clock = Clock(time.time())
    bus = MemoryBus()
    limits = AdmissionSettings(mate_timeout_s=3600, lane_settle_s=300)
    admission = Admission(S3InputStore(), MemoryLedger(), MemoryExecutions(), bus, SETTINGS, limits, clock)
    s3.put_object(Bucket=INPUT, Key="big/S_R1.fastq.gz", Body=b"r1")
    assert admission.on_object(INPUT, "big/S_R1.fastq.gz").waiting
    upload_id = start(s3, "big/S_R2.fastq.gz")
    s3.upload_part(Bucket=INPUT, Key="big/S_R2.fastq.gz", UploadId=upload_id, PartNumber=1, Body=PART)
    clock.now += 3600 + 10  # past the mate timeout; the part arrived 3,610 s before "now" ...
    (stalled,) = admission.sweep().rejected
    assert f"s3://{INPUT}/big/S_R2.fastq.gz is stalled (no new part for 36" in stalled

    # ... and a sample waiting as long, whose mate's newest part arrived a minute before "now",
    # keeps waiting
    clock.now = time.time() - 4000
    s3.put_object(Bucket=INPUT, Key="big/T_R1.fastq.gz", Body=b"r1")
    admission.on_object(INPUT, "big/T_R1.fastq.gz")
    upload_id = start(s3, "big/T_R2.fastq.gz")
    s3.upload_part(Bucket=INPUT, Key="big/T_R2.fastq.gz", UploadId=upload_id, PartNumber=1, Body=PART)
    clock.now = time.time() + 60
    outcome = admission.sweep()
    assert outcome.rejected == [] and len(bus) == 1
    (waiting,) = outcome.waiting
    # S3's LastModified has whole seconds: 60-61 s
    assert re.search(
        rf"s3://{INPUT}/big/T_R2.fastq.gz is still uploading \(no new part for 6[01] s\)", waiting
    )
