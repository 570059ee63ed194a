"""Synthetic diploid samples with a known truth: reference, truth VCF and paired reads.

`genopipe simulate --out DIR --seed N` writes into DIR:

- `reference.fa` (+ `.fai`): a seeded random genome, or the first `--length` bases of a given
  FASTA (plain or gzip/BGZF);
- `truth.vcf.gz` (+ `.tbi`): phased diploid SNPs and short indels (het and hom-alt), left-aligned,
  at least `MIN_GAP` bp apart and never in or next to N bases;
- `<sample>_R1.fastq.gz`, `<sample>_R2.fastq.gz`: read pairs simulated with dwgsim (Illumina
  error profile, its own mutation rate 0) from each haplotype separately at half the depth. The
  haplotypes are the reference with the truth applied (`bcftools consensus -H 1|2`). R1 and R2
  carry identical read names (dwgsim's `/1`, `/2` suffixes are dropped).

The same arguments give byte-identical files: every random choice comes from the seed and the
gzip members are written with mtime 0 and no file name.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

DEFAULT_LENGTH = 200_000
DEFAULT_DEPTH = 30.0
DEFAULT_SAMPLE = "sim"
SAMPLE_NAME = re.compile(r"[A-Za-z0-9._-]+")

# truth set shape: roughly one variant per kb as in a human genome, 15% of them indels
MEAN_SPACING = 1_000
MIN_GAP = 50  # bp between the end of one variant and the start of the next
EDGE_MARGIN = 500  # no variants this close to a contig end, where coverage falls off
N_FLANK = 200  # no variants this close to an N base
INDEL_FRACTION = 0.15
MAX_INDEL = 10
HOM_ALT_FRACTION = 0.4
# human germline SNPs run about two transitions (A<->G, C<->T) per transversion; a uniform draw
# would give Ti/Tv 0.5 and make the report's Ti/Tv look broken on the demo
TRANSITION_FRACTION = 2 / 3
TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}
FASTQ_GZIP_LEVEL = 4  # level 9 took most of a 30x sample's simulation time for ~5% smaller files

# Illumina-like reads: 2x150, ~350 bp fragments, error rising along the read, R2 a bit worse
READ_LENGTH = 150
FRAGMENT_MEAN = 350
FRAGMENT_SD = 35
R1_ERROR = "0.001-0.01"
R2_ERROR = "0.001-0.015"


class SimulateError(Exception):
    """A problem with the inputs or a tool: the message names the file and the problem."""


class SimulatedSample(BaseModel):
    sample: str
    seed: int
    depth: float
    out_dir: Path
    reference: Path
    truth_vcf: Path
    truth_tbi: Path
    r1: Path
    r2: Path
    genome_length: int
    snps: int
    indels: int
    read_pairs: int


@dataclass(frozen=True)
class Contig:
    name: str
    sequence: str


@dataclass(frozen=True)
class TruthVariant:
    contig: str
    pos: int  # 1-based, VCF convention (the anchor base for indels)
    ref: str
    alt: str
    genotype: str  # phased: "0|1", "1|0" or "1|1"

    @property
    def end(self) -> int:
        return self.pos + len(self.ref) - 1

    @property
    def is_snp(self) -> bool:
        return len(self.ref) == 1 and len(self.alt) == 1


def simulate_sample(
    out_dir: Path,
    seed: int,
    reference: Path | None = None,
    length: int | None = None,
    depth: float = DEFAULT_DEPTH,
    sample: str = DEFAULT_SAMPLE,
) -> SimulatedSample:
    """Write a reference, a truth VCF and a read pair into `out_dir` (created if missing)."""
    if not SAMPLE_NAME.fullmatch(sample):
        raise SimulateError(f"sample name {sample!r}: use only letters, digits, '.', '_' and '-'")
    if depth <= 0:
        raise SimulateError(f"depth {depth}: must be positive")
    if length is not None and length < 2 * EDGE_MARGIN + MIN_GAP:
        raise SimulateError(f"length {length}: must be at least {2 * EDGE_MARGIN + MIN_GAP} bp")
    for tool in ("dwgsim", "bcftools", "bgzip", "tabix", "samtools"):
        if shutil.which(tool) is None:
            raise SimulateError(f"{tool}: not found on PATH (`make test` installs the tools)")
    rng = random.Random(seed)
    if reference is None:
        contigs = [random_genome(rng, length or DEFAULT_LENGTH)]
    else:
        contigs = truncate(read_fasta(reference), length)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SimulateError(f"{out_dir}: cannot create the output directory ({err.strerror})") from err
    ref_path = out_dir / "reference.fa"
    write_fasta(ref_path, contigs)
    run_tool(["samtools", "faidx", str(ref_path)], ref_path)

    variants = [v for contig in contigs for v in place_variants(rng, contig)]
    vcf_path = out_dir / "truth.vcf.gz"
    write_truth_vcf(vcf_path, contigs, variants, sample)

    r1 = out_dir / f"{sample}_R1.fastq.gz"
    r2 = out_dir / f"{sample}_R2.fastq.gz"
    with tempfile.TemporaryDirectory(prefix="genopipe-simulate-") as scratch:
        haplotype_reads = []
        for haplotype in (1, 2):
            hap_fasta = Path(scratch) / f"haplotype{haplotype}.fa"
            consensus = ["bcftools", "consensus", "-H", str(haplotype), "-f", str(ref_path)]
            run_tool([*consensus, "-o", str(hap_fasta), str(vcf_path)], vcf_path)
            haplotype_reads.append(
                simulate_reads(hap_fasta, Path(scratch) / f"h{haplotype}", seed * 2 + haplotype, depth / 2)
            )
        pairs = write_pairs(haplotype_reads, r1, r2)

    return SimulatedSample(
        sample=sample,
        seed=seed,
        depth=depth,
        out_dir=out_dir,
        reference=ref_path,
        truth_vcf=vcf_path,
        truth_tbi=vcf_path.with_name(vcf_path.name + ".tbi"),
        r1=r1,
        r2=r2,
        genome_length=sum(len(c.sequence) for c in contigs),
        snps=sum(v.is_snp for v in variants),
        indels=sum(not v.is_snp for v in variants),
        read_pairs=pairs,
    )


def random_genome(rng: random.Random, length: int) -> Contig:
    return Contig("sim1", "".join(rng.choices("ACGT", k=length)))


def read_fasta(path: Path) -> list[Contig]:
    """Read a plain or gzip/BGZF FASTA; sequence is upper-cased (soft-masking is irrelevant here)."""
    if not path.is_file():
        raise SimulateError(f"{path}: no such file")
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rt") if gzipped else path.open() as handle:
            text = handle.read()
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise SimulateError(f"{path}: cannot read as FASTA ({err})") from err
    contigs: list[Contig] = []
    for block in text.split(">")[1:]:
        header, _, body = block.partition("\n")
        name = header.split()[0] if header.split() else ""
        sequence = "".join(body.split()).upper()
        if not name or not sequence:
            raise SimulateError(f"{path}: record {len(contigs) + 1} has no name or no sequence")
        contigs.append(Contig(name, sequence))
    if not contigs or text[:1] != ">":
        raise SimulateError(f"{path}: not a FASTA file (no '>' header on the first line)")
    return contigs


def truncate(contigs: list[Contig], length: int | None) -> list[Contig]:
    """The first `length` bases of the genome, in contig order (all of it when None)."""
    if length is None:
        return contigs
    kept: list[Contig] = []
    remaining = length
    for contig in contigs:
        if remaining <= 0:
            break
        kept.append(Contig(contig.name, contig.sequence[:remaining]))
        remaining -= len(kept[-1].sequence)
    return kept


def write_fasta(path: Path, contigs: list[Contig], width: int = 60) -> None:
    with path.open("w") as out:
        for contig in contigs:
            out.write(f">{contig.name}\n")
            seq = contig.sequence
            out.writelines(seq[i : i + width] + "\n" for i in range(0, len(seq), width))


def place_variants(rng: random.Random, contig: Contig) -> Iterator[TruthVariant]:
    """Walk the contig, dropping a variant every ~MEAN_SPACING bp where the sequence allows it."""
    seq = contig.sequence
    last_end = 0
    pos = EDGE_MARGIN
    while True:
        pos += MIN_GAP + int(rng.expovariate(1 / (MEAN_SPACING - MIN_GAP)))
        if pos > len(seq) - EDGE_MARGIN:
            return
        variant = draw_variant(rng, contig.name, seq, pos)
        window = seq[max(0, variant.pos - N_FLANK) : variant.end + N_FLANK]
        if variant.pos - last_end < MIN_GAP or variant.end > len(seq) - EDGE_MARGIN or "N" in window:
            continue
        if set(variant.ref + variant.alt) - set("ACGT"):
            continue
        last_end = variant.end
        pos = variant.end
        yield variant


def draw_variant(rng: random.Random, contig: str, seq: str, pos: int) -> TruthVariant:
    """A SNP, insertion or deletion at 1-based `pos`; indels left-aligned as `bcftools norm` would."""
    genotype = "1|1" if rng.random() < HOM_ALT_FRACTION else rng.choice(["0|1", "1|0"])
    if rng.random() >= INDEL_FRACTION:
        ref = seq[pos - 1]
        if ref not in TRANSITION:  # an N: the caller drops the variant
            return TruthVariant(contig, pos, ref, "N", genotype)
        if rng.random() < TRANSITION_FRACTION:
            return TruthVariant(contig, pos, ref, TRANSITION[ref], genotype)
        transversions = [b for b in "ACGT" if b not in (ref, TRANSITION[ref])]
        return TruthVariant(contig, pos, ref, rng.choice(transversions), genotype)
    size = min(MAX_INDEL, 1 + int(rng.expovariate(0.7)))
    if rng.random() < 0.5:  # deletion of seq[pos : pos+size] (0-based) after anchor seq[pos-1]
        start = pos  # 0-based first deleted base
        while start > 1 and seq[start - 1] == seq[start + size - 1]:
            start -= 1
        return TruthVariant(contig, start, seq[start - 1 : start + size], seq[start - 1], genotype)
    inserted = "".join(rng.choices("ACGT", k=size))
    anchor = pos  # 1-based anchor base; insertion goes after it
    while anchor > 1 and seq[anchor - 1] == inserted[-1]:
        inserted = inserted[-1] + inserted[:-1]
        anchor -= 1
    return TruthVariant(contig, anchor, seq[anchor - 1], seq[anchor - 1] + inserted, genotype)


def write_truth_vcf(path: Path, contigs: list[Contig], variants: list[TruthVariant], sample: str) -> None:
    lines = ["##fileformat=VCFv4.2", "##source=genopipe simulate", "##reference=reference.fa"]
    lines += [f"##contig=<ID={c.name},length={len(c.sequence)}>" for c in contigs]
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">')
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", sample]))
    lines += [f"{v.contig}\t{v.pos}\t.\t{v.ref}\t{v.alt}\t.\tPASS\t.\tGT\t{v.genotype}" for v in variants]
    with path.open("wb") as out:
        subprocess.run(["bgzip", "-c"], input="\n".join(lines).encode() + b"\n", stdout=out, check=True)
    run_tool(["tabix", "-f", "-p", "vcf", str(path)], path)


def simulate_reads(fasta: Path, prefix: Path, seed: int, depth: float) -> tuple[Path, Path]:
    """dwgsim on one haplotype: no mutations of its own, no random reads, no reads with N."""
    command = ["dwgsim", "-z", str(seed), "-H", "-r", "0", "-R", "0", "-y", "0", "-n", "0"]
    command += ["-C", f"{depth:g}", "-1", str(READ_LENGTH), "-2", str(READ_LENGTH)]
    command += ["-d", str(FRAGMENT_MEAN), "-s", str(FRAGMENT_SD), "-e", R1_ERROR, "-E", R2_ERROR]
    command += ["-o", "1", "-P", prefix.name, str(fasta), str(prefix)]
    run_tool(command, fasta)
    return Path(f"{prefix}.bwa.read1.fastq.gz"), Path(f"{prefix}.bwa.read2.fastq.gz")


def write_pairs(haplotype_reads: list[tuple[Path, Path]], r1: Path, r2: Path) -> int:
    """Concatenate the haplotypes' reads, names without /1 /2, gzip with a fixed header."""
    counts = []
    for mate, out_path in ((0, r1), (1, r2)):
        records = 0
        with (
            out_path.open("wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=FASTQ_GZIP_LEVEL
            ) as out,
        ):
            for reads in haplotype_reads:
                with gzip.open(reads[mate], "rb") as source:
                    for number, line in enumerate(source):
                        if number % 4 == 0:
                            line = re.sub(rb"/[12]$", b"", line.rstrip(b"\n")) + b"\n"
                            records += 1
                        out.write(line)
        counts.append(records)
    if counts[0] != counts[1]:
        raise SimulateError(f"{r1}: {counts[0]} reads but {r2} has {counts[1]} (dwgsim output unpaired)")
    return counts[0]


def run_tool(command: list[str], about: Path) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise SimulateError(f"{about}: {command[0]} failed (exit {result.returncode}): {last}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, required=True, help="random seed (same seed, same bytes)")
    parser.add_argument(
        "--reference", type=Path, help="FASTA (plain or gzip/BGZF) to simulate on; default a random genome"
    )
    parser.add_argument(
        "--length",
        type=int,
        help=f"genome length in bp (default {DEFAULT_LENGTH} for a random genome; "
        "with --reference: its first LENGTH bases, default all)",
    )
    parser.add_argument("--depth", type=float, default=DEFAULT_DEPTH, help="mean read depth (default 30)")
    parser.add_argument(
        "--sample", default=DEFAULT_SAMPLE, help="sample name for the FASTQ files (default sim)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        result = simulate_sample(args.out, args.seed, args.reference, args.length, args.depth, args.sample)
    except SimulateError as err:
        print(f"genopipe simulate: {err}", file=sys.stderr)
        return 1
    print(result.model_dump_json(indent=2))
    return 0
