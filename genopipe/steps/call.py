"""call: BAM -> normalised, soft-filtered, bgzipped and tabix-indexed VCF, by bcftools or freebayes.

The caller is the `--caller` parameter (the stack's `Caller`, or a sample sheet's `caller` column);
`DEFAULT_CALLER` is the one bench/accuracy.py's rule chose (BENCHMARKS.md, section 1): with
`mpileup -C 50` (below) bcftools scores SNP F1 0.943 on the real HG002 reads, freebayes with its
author's filters 0.941; freebayes's `PlacementBias` filter, which buys its figure, drops true hets
with few alternate reads (on the simulated 15x sample ~12% of SNP recall), and kept only where the
test can be significant (>= 12 alternate reads) it no longer removes a false call on HG002 (the
calls it removed there had 3-6 alternate reads: it acts as a minimum of alternate reads, not as a
placement test). bcftools keeps every simulated set and EBOV.

bcftools, one stream: `bcftools mpileup -a AD,ADF,ADR,DP -C 50 -q 20` | `bcftools call -m -v
--ploidy <1|2>` | `bcftools norm -f <ref> -m -any` (left-aligned, multi-allelic records split) |
the soft filters. `-C 50` (`ADJUST_MAPPING_QUALITY`) lowers the mapping quality of reads with
excessive mismatches (about sqrt((50 - q) / 50) x 50 for a read whose mismatches have phred
probability q of arising at that locus; MAPQ is capped at 50), so reads from a paralogous copy
that the aligner still placed with MAPQ 60 fall under `-q 20`; 50 is the value samtools' and
bcftools' manuals give ("the recommended value for BWA is 50"; minimap2's MAPQ has the same
scale). Measured on HG002 (chr20:10.0-10.1 Mb): false SNPs 41 -> 23, one true SNP lost (in a run
of 9 true variants within 300 bp, whose reads carry many mismatches: the price of the option),
SNP F1 0.908 -> 0.943, indels unchanged; no call changed on the simulated sets or EBOV. `-C 60`
gave 0.933 (the documented value is kept, not tuned). Otherwise mpileup keeps bcftools 1.16's
defaults (BAQ on, base quality >= 1 after BAQ: since 1.13 the default is `-Q 1`, not 13; `-Q 13`,
the old default, lowered SNP F1 on the HG002 reads; duplicates and secondary alignments skipped),
with mapping quality >= 20 and a depth cap of 10000 (viral samples run deep). Tried on the same
BAMs and not set (bench/accuracy.py's call-option sets): the indel options `-m 3` and `-F 0.2`
(1 false indel fewer on HG002, 4-5 true indels lost on the simulated 15x sample),
`--indel-bias 0.75` (1 false indel fewer on HG002, 1 true one lost at 15x), `--indel-size 500`
and `--ambig-reads incAD0`/`incAD` (no change), `-D` (BAQ everywhere: 1 false SNP fewer on HG002,
3 true SNPs lost at 15x), `-h 100` (2 true indels lost on HG002, 1 at 15x), `-B` (no BAQ: 11 more false
SNPs); `-p` only matters with several samples. `-E` (recompute BAQ) and `call --prior` changed no
call on those reads; the `-X 1.12` indel profile (-h100 -m1 -F0.002) lost a third of the indels.

freebayes, per region (see "Regions" below; freebayes is single-threaded and without regions it
walks the whole reference), its own defaults, `--ploidy` and `--min-mapping-quality 20` (the
bcftools chain's floor; freebayes's own default is 1: measured, 1 false indel fewer on HG002, no
call changed on the simulated sets or EBOV), then, as its authors document: `vcfallelicprimitives
-kg` (complex and MNP alleles into SNPs and indels, keeping INFO and genotypes) | `bcftools sort` |
`bcftools norm -f <ref> -m -any` | `bcftools +fill-tags -t AN,AC` (the split leaves stale counts) |
`bcftools view -i 'GT="alt"'` (freebayes also writes sites it genotypes as reference) | the soft
filters.
freebayes needs an uncompressed FASTA: the BGZF reference is decompressed into scratch (its .fai
holds offsets into the uncompressed text, so it serves both).

Regions: the job calls its group of the plan the reference step wrote (`shards/call.json`,
genopipe/shards.py), one caller pipeline per chunk of regions, as many at once as the job has
threads (mpileup and freebayes are single-threaded). Genome regions are padded by `PADDING`
(freebayes: run from the start of their `shards.TILE_BASES` tile, see `freebayes_units`) and own
the records whose POS, as called, lies in them; `gather` (the `concat` step) concatenates
the parts, sorts and applies `SnpGap`, so the records equal an unsharded call's
(docs/internals.md, "Scatter-gather calling").

Soft filters (a failing record keeps its line, with the filter's name in FILTER; the rest PASS):

- `LowQual`: bcftools: QUAL < 3, i.e. less than 50% confidence that there is a variant. The
  threshold was 10 until bench/accuracy.py compared them: on the real HG002 reads QUAL < 3 kept
  one more true SNP (and one more false one), on the simulated 15x sample it kept ~2% more true
  SNPs (true hets at 15x often score 3-10), and EBOV is unchanged; 20 costs SNP recall everywhere.
  freebayes: QUAL < 1, the threshold freebayes's author gives for dropping hopeless sites. His
  further `QUAL / AO > 10` is not used: measured, it removed no false call on the HG002 reads once
  the filters below applied, and cost 22% of SNP and half of indel recall on a simulated 30x
  sample (its simulated base qualities put QUAL / AO of true hets near 9).
- `StrandBias` (freebayes): SAF = 0 or SAR = 0, the alternate allele seen on one strand only
  (freebayes's author's filter: a strand-specific artefact, e.g. a chemistry or alignment error).
- `PlacementBias` (freebayes): RPL <= 1 or RPR <= 1, at most one alternate read extending to the
  left or to the right of the allele (freebayes's author's filter: alleles seen only near read ends,
  typical of mis-aligned read ends in repeats and adapters).
- `LowDepth`: FORMAT/DP < 5: too few reads to tell a variant from sequencing errors.
- `LowAltFrac`: alt reads / (ref + alt reads), from FORMAT/AD, < 0.15 with ploidy 2 or < 0.5
  with ploidy 1. A het sits near 0.5 and a haploid call is the majority allele; lower fractions
  are errors, mismapped reads or (in a haploid sample) a minority population.
- `SnpGap`: a SNP within 3 bp of an indel (`bcftools filter -g 3`, as in the bcftools
  variant-calling how-to and samtools' old varFilter `-w 3`): mis-aligned reads around an indel
  show up as SNPs next to it. Measured: no change on the benchmark's BAMs (on a BAM aligned
  without the qc step's trimming it removed 5 false SNPs on HG002 for 1 true one). The how-to's
  companion `-G 10` (IndelGap) is not used: it cost 5 of 41 true indels on HG002.

Filters measured with `-C 50` on HG002 and the simulated 15x sample and not used (none is tuned
here; each is a documented rule): the bcftools how-to's `MAX(DV) <= 3 || DV/DP <= 0.3` (SNP F1
0.943 -> 0.940 on HG002: 4 false SNPs fewer, 5 true hets lost; 21 true SNPs and 10 indels lost at
15x); GATK's `MQ < 40` (with `-C 50` every read with mismatches scores lower: 33 true SNPs lost on
HG002); the high-depth filter for collapsed repeats, DP > mean + 4 sqrt(mean) (Li 2014; 51 on
HG002's mean 29: no false call reaches it, their depth is 7-37); `MQ0F > 0.1` and soft-clip bias
`SCBZ > 3` (no false call has them); for indels `IDV < 3` or `IMF < 0.2` (1 false indel fewer on
HG002, 4-5 true indels lost at 15x). What is left on HG002 (BENCHMARKS.md, section 1): of 23 false
SNPs 20 and of 21 false indels 6 lie after the truth's last record (chr20:10,097,626), in the
window's last 2.4 kb where GIAB's truth has no record at all (most likely outside its confident
regions, which the data set lacks); 8 false indels are multi-allelic (1/2) calls in homopolymers
and short tandem repeats. Representation is not what keeps indel F1 at 0.735: genopipe.truth's
haplotype-aware comparison gives the same figure, and truvari 5.4 (`bench --sizemin 1 --pick ac`,
then `refine -a mafft`, run once by hand) gives 0.776 (precision 0.667, recall 0.927) only because
it accepts alleles >= 70% similar in size and sequence: its 2 extra matches are chr20:10,008,950's
10 and 12 bp deletions in a CA repeat, where GIAB's haplotypes delete 1 + 9 and 1 + 11 bp, a
different sequence (GIAB TTTAAAC, the calls TTTAACC).
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from genopipe import bai as bai_index
from genopipe import shards
from genopipe.aws import s3
from genopipe.s3uri import S3Uri
from genopipe.steps import reference
from genopipe.steps.runner import Step
from genopipe.steps.tools import Pipeline, StepError, Tool

CALLERS = ("bcftools", "freebayes")
DEFAULT_CALLER = "bcftools"
MIN_QUAL = {"bcftools": 3, "freebayes": 1}
MIN_DEPTH = 5
MIN_ALT_FRACTION = {1: 0.5, 2: 0.15}
SNP_GAP = 3
MIN_MAPPING_QUALITY = 20
ADJUST_MAPPING_QUALITY = 50  # mpileup -C: the value samtools/bcftools document
MAX_DEPTH = 10000
PADDING = 1_000  # bp of context each side of a genome region: longer than a read (see run())
CHUNKS_PER_THREAD = 8  # caller processes per thread: the last ones to finish leave little idle


def soft_filters(ploidy: int, caller: str = DEFAULT_CALLER) -> list[tuple[str, str]]:
    """(FILTER name, bcftools exclude expression), applied in this order; `SnpGap` follows them."""
    alt_fraction = "FMT/AD[0:1] / (FMT/AD[0:0] + FMT/AD[0:1])"
    if caller == "freebayes":
        caller_filters = [
            ("LowQual", f"QUAL < {MIN_QUAL['freebayes']}"),
            ("StrandBias", "INFO/SAF = 0 || INFO/SAR = 0"),
            ("PlacementBias", "INFO/RPL <= 1 || INFO/RPR <= 1"),
        ]
    else:
        caller_filters = [("LowQual", f"QUAL < {MIN_QUAL['bcftools']}")]
    return [
        *caller_filters,
        ("LowDepth", f"FMT/DP < {MIN_DEPTH}"),
        ("LowAltFrac", f"{alt_fraction} < {MIN_ALT_FRACTION[ploidy]}"),
    ]


def filter_tools(ploidy: int, caller: str, subject: object) -> list[Tool]:
    """The soft filters as a chain of `bcftools filter` (BCF in, BCF out), `SnpGap` last."""
    tools = [
        Tool(["bcftools", "filter", "-m", "+", "-s", name, "-e", expression, "-Ou"], subject)
        for name, expression in soft_filters(ploidy, caller)
    ]
    tools.append(Tool(["bcftools", "filter", "-m", "+", "-g", str(SNP_GAP), "-Ou"], subject))
    return tools


def run(step: Step) -> None:
    """Call this job's group of the plan (`shards/call.json`, group `step.shard_index`) into the
    staged part `call/part-<i>.vcf.gz`; a one-group plan is gathered here too (nothing to wait for)."""
    plan = load_plan(step)
    shard = step.shard_index
    if shard >= len(plan):
        plan_uri = step.staged(step.files.shard_plan("call"))
        raise StepError(plan_uri, f"plans {len(plan)} groups, there is no group {shard}")
    ref = reference.load(step)
    files = step.files
    fasta, fai, _ = (step.fetch(uri, "ref", uri.name) for uri in ref.fasta_files())  # BGZF, .fai, .gzi
    bam_uri = step.staged(files.bam)
    bai = step.fetch(step.staged(files.bai), "in", files.bai)
    contigs = shards.read_fai(fai)
    lengths = dict(contigs)
    if len(plan) > 1 and step.params.caller == "bcftools":
        # only the bytes of this group's reads (a genome's BAM is ~60 GB, a group's share ~2 GB).
        # Not for freebayes: on a slice holding every read of the region it wrote the same
        # records but QUALs of reference-only sites differing in the 4th digit (measured on a
        # 200 kb region of a simulated 30x sample; not understood, so not trusted)
        bam = fetch_slice(step, bam_uri, bai, plan[shard], contigs)
    else:
        bam = step.fetch(bam_uri, "in", files.bam)

    plain = plain_fasta(step, fasta, fai) if step.params.caller == "freebayes" else None
    targets = step.params.intervals is not None
    if plain is not None:
        units = freebayes_units(plan[shard], lengths, targets)
    else:
        units = bcftools_units(plan[shard], lengths, step.threads * CHUNKS_PER_THREAD, targets)
    jobs: list[tuple[list[Tool], Path]] = []
    for number, (core_bed, run_bed, _) in enumerate(units):
        core = step.path("chunks", f"{number:06d}.bed")
        core.write_text(core_bed)
        padded = core
        if run_bed != core_bed:
            padded = step.path("chunks", f"{number:06d}.padded.bed")
            padded.write_text(run_bed)
        if plain is not None:
            calls = freebayes_calls(step, plain, fasta, bam, padded, core, bam_uri)
        else:
            calls = bcftools_calls(step, fasta, bam, padded, core, bam_uri)
        # the soft filters judge one record at a time; the contextual SnpGap waits for the gather
        soft = filter_tools(step.params.ploidy, step.params.caller, bam_uri)[:-1]
        soft[-1] = Tool([*soft[-1].argv[:-1], "-Ob"], bam_uri)
        jobs.append(([*calls, *soft], step.path("chunks", f"{number:06d}.bcf")))
    run_parallel(step, jobs, sizes=[size for _, _, size in units])
    check_reads(step, bam_uri)

    part = step.path("out", files.call_part(shard))
    concat = Tool(["bcftools", "concat", "--no-version", "-Ou", *(str(out) for _, out in jobs)], bam_uri)
    sort = Tool(["bcftools", "sort", "-T", str(step.path("sort", "part")), "-Oz", "-o", str(part)], bam_uri)
    step.pipe(concat, sort)
    s3.upload(part, step.staged(files.call_part(shard)))
    if len(plan) == 1:
        gather_parts(step, [part])


def fetch_slice(
    step: Step, bam_uri: S3Uri, bai: Path, group: list[shards.Region], contigs: list[tuple[str, int]]
) -> Path:
    """The BAM as a sparse file holding the blocks that reads of the padded group lie in
    (genopipe.bai). Its @SQ lines follow the reference's .fai (the align step's aligners write
    them so); if they did not, a region would be looked up in bytes never fetched, which htslib
    finds to be no BGZF block, and the step fails."""
    index = bai_index.read_bai(bai)
    if len(index) != len(contigs):
        raise StepError(bai.name, f"indexes {len(index)} sequences, the reference has {len(contigs)}")
    number = {name: position for position, (name, _) in enumerate(contigs)}
    lengths = dict(contigs)
    queries = [
        (number[r.contig], max(0, r.start - PADDING), min(lengths[r.contig], r.end + PADDING)) for r in group
    ]
    bam = step.path("in", step.files.bam)
    size = s3.head(bam_uri).size
    s3.download_ranges(bam_uri, bam, bai_index.byte_ranges(index, queries, size))
    return bam


def check_reads(step: Step, subject: S3Uri) -> None:
    """bcftools mpileup reports a BAM it cannot read (`[E::bgzf_read_block] Invalid BGZF header`)
    and exits 0 with what it read so far (measured, bcftools 1.16): fail on htslib's errors."""
    for log in sorted((step.scratch / "logs").glob("*.stderr")):
        with log.open(errors="replace") as handle:
            for line in handle:
                if line.startswith("[E::"):
                    program = log.stem.split("-", 1)[-1]
                    raise StepError(subject, f"{program} could not read it: {line.strip()}")


def gather(step: Step) -> None:
    """The `concat` step: every group's part, in plan order, into the sample's VCF and its index."""
    files = step.files
    parts = [
        step.fetch(step.staged(files.call_part(shard)), "in", files.call_part(shard))
        for shard in range(len(load_plan(step)))
    ]
    gather_parts(step, parts)


def gather_parts(step: Step, parts: list[Path]) -> None:
    """Parts -> VCF + TBI: concatenated, sorted (a record that left-normalisation moved before a
    cut comes in the next part), then SnpGap (a SNP and its indel may sit in different parts)."""
    files = step.files
    subject = step.staged(files.bam)
    vcf = step.path("out", files.vcf)
    concat = Tool(["bcftools", "concat", "--no-version", "-Ou", *map(str, parts)], subject)
    sort = Tool(["bcftools", "sort", "-T", str(step.path("sort", "gather")), "-Ou"], subject)
    snp_gap = filter_tools(step.params.ploidy, step.params.caller, subject)[-1]
    # the last filter writes text for bgzip (the tool the index format is defined by)
    snp_gap = Tool([*snp_gap.argv[:-1], "-Ov"], subject)
    bgzip = Tool(["bgzip", "-@", str(step.threads), "-c"], subject)
    step.pipe(concat, sort, snp_gap, bgzip, stdout=vcf)
    step.pipe(Tool(["tabix", "-p", "vcf", str(vcf)], subject))
    s3.upload(vcf, step.staged(files.vcf))
    s3.upload(Path(f"{vcf}.tbi"), step.staged(files.tbi))


def load_plan(step: Step) -> list[shards.Group]:
    uri = step.staged(step.files.shard_plan("call"))
    try:
        return shards.read_plan(s3.read_bytes(uri))
    except s3.S3NotFound:
        raise StepError(uri, "missing: run the `reference` step first (it plans the call regions)") from None


def bcftools_units(
    group: list[shards.Region], lengths: dict[str, int], count: int, targets: bool
) -> list[tuple[str, str, int]]:
    """(regions BED, BED to run on, bases) per caller process: up to `count` runs of consecutive
    regions, a genome's padded by PADDING (measured: an indel's BQBZ changed when its region
    started one base before it; starting 6 bp earlier restored it), targets as they are."""
    units = []
    for chunk in shards.chunks(group, count):
        core = "".join(region.bed() for region in chunk)
        run = core if targets else padded_bed(chunk, lengths, PADDING)
        units.append((core, run, sum(region.bases for region in chunk)))
    return units


def freebayes_units(
    group: list[shards.Region], lengths: dict[str, int], targets: bool
) -> list[tuple[str, str, int]]:
    """(regions BED, BED to run on, bases) per freebayes process: one per tile of the
    `shards.TILE_BASES` grid, run from the tile's start whatever the plan. freebayes carries state
    along a contig that does not always converge: started between an indel and the next variant,
    it gave a contig's later sites QUALs 4x apart (10*log10(4) = 6.02) from a run started earlier
    (measured on a simulated sample, freebayes 1.3.6). Started from the same tile start in every
    plan, a record gets the same state in every plan. Targets: a tile's targets, as they are
    (the planner keeps them in one group)."""
    tiles: dict[tuple[str, int], list[shards.Region]] = {}
    for region in group:
        if targets:
            tiles.setdefault((region.contig, region.start // shards.TILE_BASES), []).append(region)
            continue
        first, last = region.start // shards.TILE_BASES, (region.end - 1) // shards.TILE_BASES
        for tile in range(first, last + 1):
            start = max(region.start, tile * shards.TILE_BASES)
            end = min(region.end, (tile + 1) * shards.TILE_BASES)
            piece = shards.Region(contig=region.contig, start=start, end=end, bases=end - start)
            tiles.setdefault((region.contig, tile), []).append(piece)
    units = []
    for (contig, tile), pieces in tiles.items():
        core = "".join(piece.bed() for piece in pieces)
        run = core
        if not targets:
            run = f"{contig}\t{tile * shards.TILE_BASES}\t{min(lengths[contig], pieces[-1].end + PADDING)}\n"
        units.append((core, run, sum(piece.end - piece.start for piece in pieces)))
    return units


def padded_bed(chunk: list[shards.Region], lengths: dict[str, int], padding: int) -> str:
    """The chunk's regions widened by `padding` on each side (within the contig), merged."""
    merged: list[tuple[str, int, int]] = []
    for region in chunk:
        start, end = max(0, region.start - padding), min(lengths[region.contig], region.end + padding)
        if merged and merged[-1][0] == region.contig and start <= merged[-1][2]:
            merged[-1] = (region.contig, merged[-1][1], end)
        else:
            merged.append((region.contig, start, end))
    return "".join(f"{contig}\t{start}\t{end}\n" for contig, start, end in merged)


def run_parallel(step: Step, jobs: list[tuple[list[Tool], Path]], sizes: list[int]) -> None:
    """Each job a pipeline, `step.threads` at a time, largest first (the callers are
    single-threaded); the first failure stops the others and is raised."""
    pipelines = [step.pipeline(*tools, stdout=out) for tools, out in jobs]
    lock = threading.Lock()  # a pipeline numbers its stderr logs as it starts
    stop = threading.Event()

    def one(pipeline: Pipeline) -> None:
        with lock:
            if stop.is_set():
                return
            pipeline.start()
        pipeline.wait()

    largest_first = sorted(range(len(pipelines)), key=lambda index: -sizes[index])
    with ThreadPoolExecutor(max_workers=step.threads) as pool:
        futures = [pool.submit(one, pipelines[index]) for index in largest_first]
        try:
            for future in futures:
                future.result()
        except BaseException:
            with lock:
                stop.set()
            for pipeline in pipelines:
                pipeline.kill()
            raise


def mpileup_options() -> list[str]:
    """`bcftools mpileup`'s options besides the reference, regions, input and output
    (bench/accuracy.py re-calls with variants of them)."""
    return [
        "-a", "FORMAT/AD,FORMAT/ADF,FORMAT/ADR,FORMAT/DP",
        "-C", str(ADJUST_MAPPING_QUALITY), "-q", str(MIN_MAPPING_QUALITY), "-d", str(MAX_DEPTH),
    ]  # fmt: skip


def bcftools_calls(
    step: Step, fasta: Path, bam: Path, padded: Path, regions: Path, subject: object
) -> list[Tool]:
    """mpileup | call over the padded regions | the records whose POS is in the regions | norm:
    normalised calls as BCF on stdout."""
    mpileup = Tool(
        ["bcftools", "mpileup", "-f", str(fasta), *mpileup_options(), "-R", str(padded), "-Ou", str(bam)],
        subject,
    )
    call = Tool(["bcftools", "call", "-m", "-v", "--ploidy", str(step.params.ploidy), "-Ou"], subject)
    norm = Tool(["bcftools", "norm", "-f", str(fasta), "-m", "-any", "-Ou"], subject)
    return [mpileup, call, *owned_records(padded, regions, "-Ou", subject), norm]


def owned_records(padded: Path, regions: Path, output: str, subject: object) -> list[Tool]:
    """The records a region owns: those whose POS (as called, before normalisation) is in it."""
    if padded == regions:
        return []
    return [Tool(["bcftools", "view", "-T", str(regions), "--targets-overlap", "0", output], subject)]


def plain_fasta(step: Step, fasta: Path, fai: Path) -> Path:
    """freebayes reads an uncompressed FASTA: the BGZF one decompressed (its .fai serves both)."""
    plain = step.path("ref", "plain.fa")
    step.pipe(Tool(["bgzip", "-d", "-c", "-@", str(step.threads), str(fasta)], fasta.name), stdout=plain)
    shutil.copyfile(fai, f"{plain}.fai")
    return plain


def freebayes_calls(
    step: Step, plain: Path, fasta: Path, bam: Path, padded: Path, regions: Path, subject: object
) -> list[Tool]:
    """freebayes over the padded regions, the records whose POS is in the regions, then the tools
    that split and normalise them into BCF on stdout."""
    argv = ["freebayes", "-f", str(plain), "--ploidy", str(step.params.ploidy)]
    argv += ["--min-mapping-quality", str(MIN_MAPPING_QUALITY)]
    freebayes = Tool([*argv, "-t", str(padded), str(bam)], subject)
    primitives = Tool(["vcfallelicprimitives", "-k", "-g"], subject)
    sort = Tool(["bcftools", "sort", "-T", str(step.path("sort", regions.stem)), "-Ou"], subject)
    norm = Tool(["bcftools", "norm", "-f", str(fasta), "-m", "-any", "-Ou"], subject)
    counts = Tool(["bcftools", "+fill-tags", "-Ou", "--", "-t", "AN,AC"], subject)
    # freebayes also reports sites whose genotype carries no ALT (`bcftools call -v` drops those)
    variants = Tool(["bcftools", "view", "-i", 'GT="alt"', "-Ou"], subject)
    owned = owned_records(padded, regions, "-Ov", subject)
    return [freebayes, *owned, primitives, sort, norm, counts, variants]
