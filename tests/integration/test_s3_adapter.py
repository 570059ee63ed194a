"""The S3 adapter against moto's in-process S3."""

from pathlib import Path

import boto3
import pytest

from genopipe.aws import s3
from genopipe.aws.s3 import S3NotFound
from genopipe.s3uri import S3Uri


@pytest.fixture
def bucket(moto: None) -> str:
    boto3.client("s3").create_bucket(Bucket="data")
    return "data"


def test_upload_head_download(bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "in.txt"
    local.write_bytes(b"ACGT\n" * 100)
    uri = S3Uri(bucket, "runs/a b+ü/in.txt")
    info = s3.upload(local, uri)
    assert info.size == 500 and info.etag and '"' not in info.etag
    assert s3.exists(uri) and not s3.exists(S3Uri(bucket, "runs/missing"))
    assert s3.download(uri, tmp_path / "deep" / "out.txt").read_bytes() == local.read_bytes()
    with pytest.raises(S3NotFound, match="s3://data/nope: no such object"):
        s3.download(S3Uri(bucket, "nope"), tmp_path / "x")


def test_prefix_copy_list_delete_and_json(bucket: str) -> None:
    src = S3Uri(bucket, ".staging/e1")
    s3.write_json(src.join("summary.json"), {"snps": 3})
    s3.write_json(src.join("qc", "x y.json"), [1, 2])
    s3.write_json(S3Uri(bucket, ".staging/e10/other.json"), {})  # must not match the e1 folder
    copied = s3.copy_prefix(src, S3Uri(bucket, "sample"))
    assert sorted(str(u) for u in copied) == ["s3://data/sample/qc/x y.json", "s3://data/sample/summary.json"]
    assert s3.read_json("s3://data/sample/summary.json") == {"snps": 3}
    assert s3.delete_prefix(src) == 2
    assert [i.uri.key for i in s3.list_prefix(S3Uri(bucket, ".staging/"))] == [".staging/e10/other.json"]
