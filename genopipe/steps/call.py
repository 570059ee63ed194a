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

freebayes, per region (one process per contig of the reference's .fai, as many at once as the job
has threads; freebayes is single-threaded and without `-r` it walks the whole reference), its own
defaults, `--ploidy` and `--min-mapping-quality 20` (the bcftools chain's floor; freebayes's own
default is 1: measured, 1 false indel fewer on HG002, no call changed on the simulated sets or
EBOV), then, as its authors document: `vcfallelicprimitives -kg` (complex and MNP
alleles into SNPs and indels, keeping INFO and genotypes) | `bcftools sort` | `bcftools norm -f
<ref> -m -any` | `bcftools +fill-tags -t AN,AC` (the split leaves stale counts) | `bcftools view -i
'GT="alt"'` (freebayes also writes sites it genotypes as reference) | the soft filters.
freebayes needs an uncompressed FASTA: the BGZF reference is decompressed into scratch (its .fai
holds offsets into the uncompressed text, so it serves both).

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
from pathlib import Path

from genopipe.aws import s3
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


def regions(fai: Path) -> list[str]:
    """The reference's contigs, from its .fai: freebayes's regions (one process each)."""
    return [line.split("\t", 1)[0] for line in fai.read_text().splitlines() if line.strip()]


def run(step: Step) -> None:
    ref = reference.load(step)
    files = step.files
    fasta, fai, _ = (step.fetch(uri, "ref", uri.name) for uri in ref.fasta_files())  # BGZF, .fai, .gzi
    bam_uri = step.staged(files.bam)
    bam = step.fetch(bam_uri, "in", files.bam)
    step.fetch(step.staged(files.bai), "in", files.bai)
    vcf = step.path("out", files.vcf)

    if step.params.caller == "freebayes":
        calls = freebayes_calls(step, fasta, fai, bam, bam_uri)
    else:
        calls = bcftools_calls(step, fasta, bam, bam_uri)
    filters = filter_tools(step.params.ploidy, step.params.caller, bam_uri)
    # the last filter writes text for bgzip (the tool the index format is defined by)
    filters[-1] = Tool([*filters[-1].argv[:-1], "-Ov"], bam_uri)
    bgzip = Tool(["bgzip", "-@", str(step.threads), "-c"], bam_uri)
    step.pipe(*calls, *filters, bgzip, stdout=vcf)
    step.pipe(Tool(["tabix", "-p", "vcf", str(vcf)], bam_uri))
    s3.upload(vcf, step.staged(files.vcf))
    s3.upload(Path(f"{vcf}.tbi"), step.staged(files.tbi))


def mpileup_options() -> list[str]:
    """`bcftools mpileup`'s options besides the reference, input and output (bench/accuracy.py
    re-calls with variants of them)."""
    return [
        "-a", "FORMAT/AD,FORMAT/ADF,FORMAT/ADR,FORMAT/DP",
        "-C", str(ADJUST_MAPPING_QUALITY), "-q", str(MIN_MAPPING_QUALITY), "-d", str(MAX_DEPTH),
    ]  # fmt: skip


def bcftools_calls(step: Step, fasta: Path, bam: Path, subject: object) -> list[Tool]:
    """mpileup | call | norm: normalised calls as BCF on stdout."""
    mpileup = Tool(["bcftools", "mpileup", "-f", str(fasta), *mpileup_options(), "-Ou", str(bam)], subject)
    call = Tool(["bcftools", "call", "-m", "-v", "--ploidy", str(step.params.ploidy), "-Ou"], subject)
    norm = Tool(["bcftools", "norm", "-f", str(fasta), "-m", "-any", "-Ou"], subject)
    return [mpileup, call, norm]


def freebayes_calls(step: Step, fasta: Path, fai: Path, bam: Path, subject: object) -> list[Tool]:
    """freebayes per region (run here, in parallel), then the tools that merge and normalise their
    VCFs into BCF on stdout."""
    plain = step.path("ref", "plain.fa")
    step.pipe(Tool(["bgzip", "-d", "-c", "-@", str(step.threads), str(fasta)], fasta.name), stdout=plain)
    shutil.copyfile(fai, f"{plain}.fai")
    contigs = regions(fai)
    if not contigs:
        raise StepError(fai.name, "the reference index lists no contigs")
    region_vcfs = [step.path("regions", f"{number:06d}.vcf") for number in range(len(contigs))]
    argv = ["freebayes", "-f", str(plain), "--ploidy", str(step.params.ploidy)]
    argv += ["--min-mapping-quality", str(MIN_MAPPING_QUALITY)]
    pending = list(zip(contigs, region_vcfs, strict=True))
    while pending:
        batch, pending = pending[: step.threads], pending[step.threads :]
        running: list[Pipeline] = [
            step.pipeline(Tool([*argv, "-r", contig, str(bam)], subject), stdout=out).start()
            for contig, out in batch
        ]
        try:
            for pipeline in running:
                pipeline.wait()
        finally:
            for pipeline in running:
                pipeline.kill()
    concat = Tool(["bcftools", "concat", "--no-version", "-Ov", *map(str, region_vcfs)], subject)
    primitives = Tool(["vcfallelicprimitives", "-k", "-g"], subject)
    sort = Tool(["bcftools", "sort", "-T", str(step.path("sort", "tmp")), "-Ou"], subject)
    norm = Tool(["bcftools", "norm", "-f", str(fasta), "-m", "-any", "-Ou"], subject)
    counts = Tool(["bcftools", "+fill-tags", "-Ou", "--", "-t", "AN,AC"], subject)
    # freebayes also reports sites whose genotype carries no ALT (`bcftools call -v` drops those)
    variants = Tool(["bcftools", "view", "-i", 'GT="alt"', "-Ou"], subject)
    return [concat, primitives, sort, norm, counts, variants]
