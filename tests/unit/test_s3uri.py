import pytest

from genopipe.s3uri import S3Uri


@pytest.mark.parametrize(
    "text",
    ["s3://b/k", "s3://b/dir/with space/ü nicode+plus_R1.fastq.gz", "s3://b/", "s3://b/a%20b"],
)
def test_parse_format_round_trip(text: str) -> None:
    assert str(S3Uri.parse(text)) == text


def test_key_is_verbatim_not_url_decoded() -> None:
    uri = S3Uri.parse("s3://bucket/runs/a+b c/x%2By.fq.gz")
    assert uri.bucket == "bucket"
    assert uri.key == "runs/a+b c/x%2By.fq.gz"
    assert uri.name == "x%2By.fq.gz"


@pytest.mark.parametrize("text", ["b/k", "s3:/b/k", "s3:///k", "https://b.s3/k"])
def test_rejects_non_s3(text: str) -> None:
    with pytest.raises(ValueError):
        S3Uri.parse(text)


def test_join_and_relative() -> None:
    staging = S3Uri.parse("s3://out/.staging/exec-1")
    target = staging.join("qc", "s.fastp.json")
    assert str(target) == "s3://out/.staging/exec-1/qc/s.fastp.json"
    assert target.relative_to(staging) == "qc/s.fastp.json"
    assert str(S3Uri("b").join("x")) == "s3://b/x"
    with pytest.raises(ValueError):
        S3Uri.parse("s3://out/other/x").relative_to(staging)
