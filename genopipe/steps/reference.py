"""reference (prepare-reference): the FASTA's indexes, built once and cached in S3 where the stack
may write: its output bucket. The reference itself is only read (it may sit in a public or another
account's bucket).

For `s3://b/refs/genome.fa.gz` and staging in `s3://out/`, the cache is
`s3://out/.references/<sha256>/` with
`genome.fa.gz` (BGZF, whatever the original's compression), `genome.fa.gz.fai`, `genome.fa.gz.gzi`
(htslib tools read the BGZF FASTA directly through these two), `genome.fa.mmi` (minimap2, `-x sr`)
and, only once bwa has been asked for, `genome.fa.gz.{amb,ann,bwt,pac,sa}`; `cache.json` in it is
written last and lists what is complete, with `"layout": CACHE_LAYOUT` (a folder of another
layout, e.g. the old plain-FASTA one, counts as empty and is rebuilt). `<sha256>` is the
checksum of the FASTA object's bytes (the same FASTA in two places shares one folder). So that a
second sample need not even download the FASTA, `etag/<bucket>/<key>/<ETag>.json` beside the
checksum folders maps that object's ETag to its checksum (an overwritten FASTA gets a new ETag,
hence a fresh lookup).

Writes `reference.json` to staging (see `ReferenceIndex`); its `built` lists what this run built
(empty when everything came from the cache).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from pydantic import BaseModel

from genopipe import shards
from genopipe.aws import s3
from genopipe.layout import REFERENCE_JSON
from genopipe.s3uri import S3Uri, S3UriField
from genopipe.steps.runner import Step
from genopipe.steps.tools import StepError, Tool

CACHE_PREFIX = ".references/"  # in the output bucket (the job role may write only there and in staging)
CACHE_LAYOUT = 2  # 1 (no "layout" in cache.json): plain FASTA; 2: BGZF FASTA + .fai + .gzi
BWA_EXTENSIONS = (".amb", ".ann", ".bwt", ".pac", ".sa")
GAPS_BED = "gaps.bed"  # the FASTA's N runs (genopipe.shards.scan_gaps), for planning call regions
_GZIP_MAGIC = b"\x1f\x8b"


class ReferenceIndex(BaseModel):
    """`reference.json`: where the later steps find the reference and its indexes."""

    fasta: S3UriField  # the FASTA as given
    sha256: str
    cache: S3UriField  # the checksum folder
    bgzf: S3UriField  # BGZF-compressed FASTA in the cache (with .fai and .gzi beside it)
    fai: S3UriField
    gzi: S3UriField
    mmi: S3UriField
    bwa: S3UriField | None = None  # index prefix (the files are prefix + .amb, .ann, ...)
    gaps: S3UriField | None = None  # GAPS_BED in the cache
    built: list[str] = []

    def fasta_files(self) -> list[S3Uri]:
        """What htslib tools (`-f`, `--reference`) need: the BGZF FASTA, its .fai and .gzi."""
        return [self.bgzf, self.fai, self.gzi]

    def bwa_files(self) -> list[S3Uri]:
        if self.bwa is None:
            return []
        return [S3Uri(self.bwa.bucket, self.bwa.key + ext) for ext in BWA_EXTENSIONS]


def plain_name(fasta: S3Uri) -> str:
    name = fasta.name
    for suffix in (".gz", ".bgz", ".bgzf"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def bgzf_name(fasta: S3Uri) -> str:
    return plain_name(fasta) + ".gz"


def cache_root(staging: S3Uri) -> S3Uri:
    """The index cache of every reference: `.references/` in the bucket of the run's staging
    prefix (the stack's output bucket)."""
    return S3Uri(staging.bucket, CACHE_PREFIX)


def etag_record(root: S3Uri, fasta: S3Uri, etag: str) -> S3Uri:
    """Where the cache records the checksum of `fasta` as it was when its ETag was `etag`."""
    return root.join("etag", fasta.bucket, fasta.key, f"{etag}.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def load(step: Step) -> ReferenceIndex:
    """The `reference.json` a previous `reference` step left in staging."""
    uri = step.staged(REFERENCE_JSON)
    try:
        return ReferenceIndex.model_validate(s3.read_json(uri))
    except s3.S3NotFound:
        raise StepError(uri, "missing: run the `reference` step first") from None


def _known_checksum(record: S3Uri) -> str | None:
    try:
        document = s3.read_json(record)
    except s3.S3NotFound:
        return None
    checksum = document.get("sha256") if isinstance(document, dict) else None
    return checksum if isinstance(checksum, str) else None


def _cached_files(cache: S3Uri) -> set[str]:
    try:
        document = s3.read_json(cache.join("cache.json"))
    except s3.S3NotFound:
        return set()
    if not isinstance(document, dict) or document.get("layout") != CACHE_LAYOUT:
        return set()
    names = document.get("files", [])
    present = {item.uri.relative_to(cache) for item in s3.list_prefix(cache)}
    return {name for name in names if name in present}


def _plain_fasta(
    step: Step, fasta: S3Uri, local_original: Path | None, cache: S3Uri, name: str, cached: set[str]
) -> Path:
    """The uncompressed FASTA in scratch: from the cache's BGZF copy when it is there, else the original."""
    target = step.path("ref", name)
    if local_original is None:
        if name + ".gz" in cached:
            local_original = step.fetch(cache.join(name + ".gz"), "in", name + ".gz")
        else:
            local_original = step.fetch(fasta, "in", fasta.name)
    with local_original.open("rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
    if compressed:
        step.pipe(Tool(["pigz", "-dc", str(local_original)], fasta), stdout=target)
    else:
        shutil.copyfile(local_original, target)
    return target


def check_fasta(plain: Path, fasta: S3Uri) -> None:
    """Fail fast, naming the file, when the reference is not FASTA (samtools' own error is cryptic)."""
    with plain.open("rb") as handle:
        start = handle.read(4096).lstrip()
    if not start:
        raise StepError(fasta, "not a FASTA file: it is empty")
    if not start.startswith(b">"):
        first = start.splitlines()[0][:40].decode("utf-8", "replace")
        raise StepError(fasta, f"not a FASTA file: the first line must start with '>', not {first!r}")


def run(step: Step) -> None:
    fasta = step.params.reference
    info = s3.head(fasta)
    root = cache_root(step.params.staging)
    local_original: Path | None = None
    checksum = _known_checksum(etag_record(root, fasta, info.etag))
    new_etag = checksum is None
    if checksum is None:
        local_original = step.fetch(fasta, "in", fasta.name)
        checksum = sha256_of(local_original)
    cache = root.join(checksum).as_prefix()
    name = plain_name(fasta)
    bgzf = bgzf_name(fasta)
    wanted = {bgzf, f"{bgzf}.fai", f"{bgzf}.gzi", f"{name}.mmi", GAPS_BED}
    if step.params.aligner == "bwa":
        wanted |= {bgzf + ext for ext in BWA_EXTENSIONS}
    have = _cached_files(cache)
    missing = wanted - have

    built: list[str] = []
    if missing:
        plain = _plain_fasta(step, fasta, local_original, cache, name, have)
        check_fasta(plain, fasta)
        compressed = plain.parent / bgzf
        if {bgzf, f"{bgzf}.fai", f"{bgzf}.gzi"} & missing:
            threads = str(step.threads)
            step.pipe(
                Tool(["bgzip", "-@", threads, "-i", "-I", f"{compressed}.gzi", "-c", str(plain)], fasta),
                stdout=compressed,
            )
            step.pipe(Tool(["samtools", "faidx", str(compressed)], fasta))
            if not Path(f"{compressed}.fai").read_text().strip():
                raise StepError(fasta, "holds no sequences")
            built += [bgzf, f"{bgzf}.fai", f"{bgzf}.gzi"]
        if f"{name}.mmi" in missing:
            mmi = Path(f"{plain}.mmi")
            step.pipe(
                Tool(["minimap2", "-x", "sr", "-t", str(step.threads), "-d", str(mmi), str(plain)], fasta)
            )
            built.append(mmi.name)
        if any(bgzf + ext in missing for ext in BWA_EXTENSIONS):
            # bwa mem needs only these files (named after the BGZF FASTA, never the FASTA itself)
            step.pipe(Tool(["bwa", "index", "-p", str(compressed), str(plain)], fasta))
            built += [bgzf + ext for ext in BWA_EXTENSIONS]
        if GAPS_BED in missing:
            shards.write_bed(plain.parent / GAPS_BED, shards.scan_gaps(plain))
            built.append(GAPS_BED)
        for file_name in sorted(set(built)):
            s3.upload(plain.parent / file_name, cache.join(file_name))
        # the completion marker goes last: a cache folder without it is ignored
        s3.write_json(
            cache.join("cache.json"),
            {"layout": CACHE_LAYOUT, "fasta": str(fasta), "files": sorted(have | set(built))},
        )
    if new_etag:
        s3.write_json(etag_record(root, fasta, info.etag), {"sha256": checksum})

    bwa_prefix = cache.join(bgzf) if step.params.aligner == "bwa" else None
    if bwa_prefix is None and all(bgzf + ext in have for ext in BWA_EXTENSIONS):
        bwa_prefix = cache.join(bgzf)
    index = ReferenceIndex(
        fasta=fasta,
        sha256=checksum,
        cache=cache,
        bgzf=cache.join(bgzf),
        fai=cache.join(f"{bgzf}.fai"),
        gzi=cache.join(f"{bgzf}.gzi"),
        mmi=cache.join(f"{name}.mmi"),
        bwa=bwa_prefix,
        gaps=cache.join(GAPS_BED),
        built=sorted(set(built)),
    )
    s3.write_json(step.staged(REFERENCE_JSON), index.model_dump(mode="json"))
    write_call_plan(step, index)


def write_call_plan(step: Step, index: ReferenceIndex) -> None:
    """`shards/call.json`: the region groups of the call jobs (genopipe.shards), from the
    reference's .fai and N gaps, or from the sample's BED of targets."""
    contigs = shards.read_fai(step.fetch(index.fai, "plan", index.fai.name))
    params = step.params
    if params.intervals is not None:
        bed = step.fetch(params.intervals, "plan", "intervals.bed")
        try:
            targets = shards.read_bed(bed, contigs, name=str(params.intervals))
        except shards.PlanError as error:
            raise StepError(error.subject, error.problem) from None
        plan = shards.plan_targets(targets, params.call_shard_bases, params.max_shards)
    else:
        gaps = shards.read_gaps(step.fetch(index.cache.join(GAPS_BED), "plan", GAPS_BED))
        plan = shards.plan_genome(contigs, gaps, params.call_shard_bases, params.max_shards)
    s3.write_json(step.staged(step.files.shard_plan("call")), shards.plan_json(plan))
