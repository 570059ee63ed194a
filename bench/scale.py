"""Benchmark: what each piece of a scattered pipeline costs, measured with the real tools directly.

Not through the pipeline's plumbing (that is being rebuilt for scatter-gather): every piece is the
tool command line the step runs (genopipe/steps/*.py), on local files, in one `bash -o pipefail`
process, timed as bench/accuracy.py times a step: CPU = user + system of the whole process tree
(`wait4` on a small wrapper that forks the command), wall, the largest single process's peak RSS,
the sampled peak of the tree's summed RSS, and the sampled peak of the bytes on disk under the
piece's scratch folder (every 0.2 s).

Data: `genopipe simulate` (the project's simulator: dwgsim per haplotype of a diploid truth) on
../shared/data/human-ref/grch38.chr20_chr21_first10M.fasta.gz (20 Mb, ~13.6 Mb real bases) at
44x, which gives ~2M read pairs of 2x150. Nothing is copied into the repository; the work folder
(default /tmp/genopipe-scale) keeps the sample between runs.

    .venv/bin/python bench/scale.py [--work /tmp/genopipe-scale] [--sections refprep,validate,...]
    .venv/bin/python bench/fleet.py   # the fleet projection from the figures this writes

Sections (each writes its part of `bench/results/scale-measured.json` as soon as it is done):
`refprep` (minimap2 -d and bwa index at 5/10/20 Mb), `validate`, `fastp`, `align`, `markdup`,
`call`, `report`, `hg002` (the fastp decision: accuracy on the real HG002 reads with and without
trimming, bench/accuracy.py's scoring).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from accuracy import _WRAPPER as WAIT4_WRAPPER
from accuracy import _bwa_version
from harness import REPO, SHARED_DATA, machine, tool_versions

from genopipe.steps import align, call, qc, validate

GRCH38_20M = SHARED_DATA / "human-ref" / "grch38.chr20_chr21_first10M.fasta.gz"
RESULTS = REPO / "bench" / "results"
MEASURED = RESULTS / "scale-measured.json"
SEED = 13
DEPTH = 44.0  # x over the 20 Mb (N included): ~2M pairs, since dwgsim drops reads with an N
SAMPLE = "scale"
SHARD_PAIRS = 250_000  # the small shard
# the pieces downstream of validate run on the sample's first 1M pairs (4 shards of 250k): on this
# 2-core host shared by six sessions (load 8-12) the whole 2.9M pairs through every piece would not
# finish in the time there was; CPU per pair is what the projection uses, and 1M pairs is 22x over
# the 13.6 Mb of real bases, near the 30x being projected
MAIN_PAIRS = 1_000_000
SAMPLE_INTERVAL_S = 0.2
SECTIONS = (
    "refprep",
    "validate",
    "fastp",
    "align",
    "markdup",
    "markdup_regions",
    "call",
    "report",
    "hg002",
    "bwa",
)


# ---------------------------------------------------------------------------------------------
# one measured command


@dataclass
class Measure:
    wall_s: float
    cpu_s: float
    max_rss_mib: float  # the largest single process (wait4 ru_maxrss)
    peak_tree_rss_mib: float  # summed RSS of the process tree, sampled
    peak_scratch_bytes: int  # bytes on disk under the scratch folder, sampled (0 without one)
    load_average: float  # 1-minute load when the command started


def disk_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def run(command: str, what: str, scratch: Path | None = None) -> Measure:
    """Run `command` in `bash -o pipefail`; exits naming `what` when it fails."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as stderr, tempfile.NamedTemporaryFile(suffix=".json") as usage_file:
        argv = [sys.executable, "-c", WAIT4_WRAPPER, usage_file.name, "bash", "-o", "pipefail", "-c", command]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
        root = psutil.Process(proc.pid)
        peak_rss = peak_disk = 0
        while proc.poll() is None:
            rss = 0
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                try:
                    rss += child.memory_info().rss
                except psutil.Error:
                    continue
            peak_rss = max(peak_rss, rss)
            if scratch is not None:
                peak_disk = max(peak_disk, disk_bytes(scratch))
            time.sleep(SAMPLE_INTERVAL_S)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip()[-800:]
            sys.exit(f"bench: {what} failed (exit {proc.returncode}): {tail}")
        usage = json.loads(Path(usage_file.name).read_text())
    if scratch is not None:
        peak_disk = max(peak_disk, disk_bytes(scratch))
    print(f"  {what}: wall {wall:.1f} s, cpu {usage['cpu_s']:.1f} s, load {load:.1f}", flush=True)
    return Measure(
        wall_s=round(wall, 2),
        cpu_s=round(usage["cpu_s"], 2),
        max_rss_mib=round(usage["max_rss_kib"] / 1024, 1),
        peak_tree_rss_mib=round(peak_rss / 2**20, 1),
        peak_scratch_bytes=peak_disk,
        load_average=round(load, 2),
    )


def repeated(
    command: str, what: str, reps: int, scratch: Path | None = None, reset: str = ""
) -> dict[str, Any]:
    """`reps` runs (running `reset` before each, unmeasured), every run and the medians."""
    runs = []
    for rep in range(reps):
        if reset:
            subprocess.run(["bash", "-c", reset], check=True)
        runs.append(run(command, f"{what} #{rep + 1}", scratch))
    return summary(runs)


def summary(runs: list[Measure]) -> dict[str, Any]:
    return {
        "median_cpu_s": round(statistics.median(m.cpu_s for m in runs), 2),
        "median_wall_s": round(statistics.median(m.wall_s for m in runs), 2),
        "max_rss_mib": max(m.max_rss_mib for m in runs),
        "peak_tree_rss_mib": max(m.peak_tree_rss_mib for m in runs),
        "peak_scratch_bytes": max(m.peak_scratch_bytes for m in runs),
        "runs": [asdict(m) for m in runs],
    }


def q(path: Path | str) -> str:
    return shlex.quote(str(path))


def sh(argv: list[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in argv)


# ---------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Sample:
    r1: Path
    r2: Path
    reference: Path  # plain FASTA + .fai
    read_pairs: int
    gz_bytes: int  # R1 + R2


def real_bases(fasta: Path) -> int:
    """Bases that are not N (what the aligner indexes and the caller walks)."""
    opener = gzip.open if fasta.suffix == ".gz" else open
    count = 0
    with opener(fasta, "rt") as handle:
        for line in handle:
            if not line.startswith(">"):
                line = line.strip().upper()
                count += len(line) - line.count("N")
    return count


def sample(work: Path) -> tuple[Sample, dict[str, Any]]:
    folder = work / "sim"
    info_file = folder / "simulate.json"
    if not info_file.exists():
        shutil.rmtree(folder, ignore_errors=True)
        argv = [
            str(Path(sys.executable).parent / "genopipe"),
            "simulate",
            "--out",
            str(folder),
            "--seed",
            str(SEED),
        ]
        argv += ["--reference", str(GRCH38_20M), "--depth", f"{DEPTH:g}", "--sample", SAMPLE]
        measure = run(sh(argv), "simulate")
        r1 = folder / f"{SAMPLE}_R1.fastq.gz"
        pairs = (
            int(
                subprocess.run(
                    f"pigz -dc {q(r1)} | wc -l", shell=True, capture_output=True, text=True, check=True
                ).stdout
            )
            // 4
        )
        info_file.write_text(json.dumps({"read_pairs": pairs, "simulate": asdict(measure)}))
    info = json.loads(info_file.read_text())
    r1, r2 = folder / f"{SAMPLE}_R1.fastq.gz", folder / f"{SAMPLE}_R2.fastq.gz"
    ref = folder / "reference.fa"
    found = Sample(r1, r2, ref, info["read_pairs"], r1.stat().st_size + r2.stat().st_size)
    described = {
        "simulator": f"genopipe simulate (dwgsim {_dwgsim_version()}), seed {SEED}, depth {DEPTH:g}x, 2x150, "
        f"fragment 350+-35, diploid truth on {GRCH38_20M.name}",
        "reference_bases": sum(int(line.split()[1]) for line in Path(f"{ref}.fai").read_text().splitlines()),
        "reference_real_bases": real_bases(ref),
        "read_pairs": found.read_pairs,
        "gz_bytes": found.gz_bytes,
        "gz_bytes_per_pair": round(found.gz_bytes / found.read_pairs, 1),
        "simulate": info["simulate"],
    }
    return found, described


def _dwgsim_version() -> str:
    done = subprocess.run(["dwgsim"], capture_output=True, text=True)
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("Version"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def first_pairs(source: Sample, pairs: int, folder: Path) -> tuple[Path, Path]:
    """The sample's first `pairs` read pairs (gzip -1), cached in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"first{pairs}_R1.fastq.gz", folder / f"first{pairs}_R2.fastq.gz"
    for src, dst in zip((source.r1, source.r2), out, strict=True):
        if not dst.exists():
            subprocess.run(
                f"pigz -dc {q(src)} | head -n {4 * pairs} | pigz -1 > {q(dst)}.part && "
                f"mv {q(dst)}.part {q(dst)}",
                shell=True,
                check=True,
            )
    return out


# ---------------------------------------------------------------------------------------------
# sections


def section_refprep(work: Path, reps: int) -> dict[str, Any]:
    """minimap2 -x sr -d and bwa index on 5, 10 and 20 Mb of GRCh38, for the slope to 3.1 Gb."""
    folder = work / "refprep"
    folder.mkdir(parents=True, exist_ok=True)
    subsets = {"5Mb": ["chr20:1-5000000"], "10Mb": ["chr20"], "20Mb": ["chr20", "chr21"]}
    points = {}
    for name, regions in subsets.items():
        fasta = folder / f"{name}.fa"
        if not fasta.exists():
            subprocess.run(
                f"samtools faidx {q(GRCH38_20M)} {' '.join(regions)} > {q(fasta)}", shell=True, check=True
            )
        point: dict[str, Any] = {"real_bases": real_bases(fasta)}
        point["bases"] = int(
            subprocess.run(
                f"grep -v '>' {q(fasta)} | tr -d '\\n' | wc -c",
                shell=True,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        mmi = folder / f"{name}.mmi"
        point["minimap2_d"] = repeated(
            sh(["minimap2", "-x", "sr", "-d", str(mmi), str(fasta)]), f"minimap2 -d {name}", reps
        )
        point["mmi_bytes"] = mmi.stat().st_size
        prefix = folder / f"{name}.bwa"
        # -a bwtsw: what bwa picks by itself above 50 Mb, so for a human genome ("is", its choice
        # here, is faster but limited to 2 GB)
        bwa = sh(["bwa", "index", "-a", "bwtsw", "-p", str(prefix), str(fasta)])
        point["bwa_index"] = repeated(bwa, f"bwa index {name}", reps)
        point["bwa_bytes"] = sum(
            Path(f"{prefix}.{ext}").stat().st_size for ext in ("amb", "ann", "bwt", "pac", "sa")
        )
        points[name] = point
    return {"points": points}


def section_validate(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    folder = work / "validate"
    folder.mkdir(parents=True, exist_ok=True)
    status = folder / "r2-status.txt"
    command = (
        f"pigz -dc {q(smp.r1)} | {sh(validate.line_cap())} | {sh(validate.pair_check(smp.r2, status))}"
        f" > {q(folder / 'verdict.txt')}"
    )
    result = repeated(command, "validate", reps)
    verdict = (folder / "verdict.txt").read_text().split()
    if verdict != ["ok", str(smp.read_pairs)]:
        sys.exit(f"bench: validate gave {verdict}")
    result["command"] = (
        "pigz -dc R1 | fold -b -w 1048577 | awk FASTQ_PAIR_CHECK (R2 through its own pigz | fold)"
    )
    return result


def fastp_argv(r1: Path, r2: Path, out: Path, threads: int, variant: str) -> list[str]:
    """qc's fastp command (genopipe/steps/qc.py) and the variants the issue asks about."""
    argv = [
        "fastp",
        "--in1",
        str(r1),
        "--in2",
        str(r2),
        "--compression",
        qc.TRIMMED_COMPRESSION,
        "--thread",
        str(threads),
        "--json",
        str(out / "fastp.json"),
        "--html",
        str(out / "fastp.html"),
    ]
    if variant == "split_only":  # no trimming or filtering: fastp as the shard writer
        argv += ["-A", "-Q", "-L", "-G", "--split_by_lines", str(4 * SHARD_PAIRS)]
        return [*argv, "--out1", str(out / "R1.fastq.gz"), "--out2", str(out / "R2.fastq.gz")]
    argv += ["--out1", str(out / "R1.fastq.gz"), "--out2", str(out / "R2.fastq.gz")]
    if variant == "detect_adapter":  # as qc runs it now
        argv.append("--detect_adapter_for_pe")
    return argv


def section_fastp(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    small = first_pairs(smp, SHARD_PAIRS, work / "first")
    # 1M pairs once per variant at 2 threads (the machine's); 250k pairs for the fixed part
    # (adapter detection looks at the first reads only) and the thread scaling
    main = first_pairs(smp, MAIN_PAIRS, work / "first")
    runs = [("main", *main, variant, 2, 1) for variant in ("detect_adapter", "no_detect", "split_only")]
    runs += [
        (str(SHARD_PAIRS), small[0], small[1], variant, 2, 1) for variant in ("detect_adapter", "no_detect")
    ]
    runs += [(str(SHARD_PAIRS), small[0], small[1], "detect_adapter", 1, 1)]
    for pairs, r1, r2, variant, threads, n in runs:
        out = work / "fastp" / f"{variant}-{pairs}-t{threads}"
        inputs = out / "in"
        name = f"fastp {variant} {pairs} pairs t{threads}"
        reset = f"rm -rf {q(out)} && mkdir -p {q(inputs)} && cp {q(r1)} {q(r2)} {q(inputs)}/"
        command = sh(fastp_argv(inputs / r1.name, inputs / r2.name, out, threads, variant))
        result = repeated(command, name, n, scratch=out, reset=reset)
        result["read_pairs"] = MAIN_PAIRS if pairs == "main" else int(pairs)
        result["input_gz_bytes"] = r1.stat().st_size + r2.stat().st_size
        result["output_gz_bytes"] = sum(p.stat().st_size for p in out.glob("*.fastq.gz"))
        result["argv"] = command
        report = json.loads((out / "fastp.json").read_text())
        result["reads_after_filtering"] = report["summary"]["after_filtering"]["total_reads"]
        result["adapter_trimmed_reads"] = report.get("adapter_cutting", {}).get("adapter_trimmed_reads", 0)
        results[f"{variant}/{pairs}/t{threads}"] = result
    return results


def align_command(
    aligner: str, index: Path, r1: Path, r2: Path, out_bam: Path, tmp: Path, threads: int
) -> str:
    """align's stream per shard (genopipe/steps/align.py), ending in a sorted shard BAM (-l 1, as
    the multi-lane path writes its lane BAMs) for the gather step to merge."""
    t = str(threads)
    rg = align.read_group(SAMPLE, 1)
    if aligner == "bwa":
        aligner_argv = ["bwa", "mem", "-t", t, "-R", rg, str(index), str(r1), str(r2)]
    else:
        aligner_argv = ["minimap2", "-ax", "sr", "-t", t, "-R", rg, str(index), str(r1), str(r2)]
    fixmate = ["samtools", "fixmate", "-m", "-u", "-@", t, "-", "-"]
    sort = [
        "samtools",
        "sort",
        "-l",
        "1",
        "-@",
        t,
        "-m",
        align.SORT_MEMORY_PER_THREAD,
        "-T",
        str(tmp / "sort"),
        "-o",
        str(out_bam),
        "-",
    ]
    return f"{sh(aligner_argv)} | {sh(fixmate)} | {sh(sort)}"


def section_align(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    """Per shard: the fixed cost (process start + index load: a 1,000-pair shard), 250k pairs at 1
    thread, and the whole sample as shards of 250k pairs (fastp's --split_by_lines files) at 2."""
    mmi = work / "refprep" / "20Mb.mmi"
    bwa_prefix = work / "refprep" / "20Mb.bwa"
    if not mmi.exists() or not Path(f"{bwa_prefix}.bwt").exists():
        sys.exit("bench: run the refprep section first (the 20 Mb indexes)")
    split = work / "fastp" / "split_only-main-t2"
    shards = sorted(
        zip(sorted(split.glob("*.R1.fastq.gz")), sorted(split.glob("*.R2.fastq.gz")), strict=True)
    )
    if not shards:
        sys.exit("bench: run the fastp section first (the split shards)")
    tiny = first_pairs(smp, 1000, work / "first")
    small = first_pairs(smp, SHARD_PAIRS, work / "first")
    results: dict[str, Any] = {}

    def one(name: str, aligner: str, r1: Path, r2: Path, threads: int, n: int, pairs: int) -> dict[str, Any]:
        out = work / "align" / name
        index = mmi if aligner == "minimap2" else bwa_prefix
        reset = f"rm -rf {q(out)} && mkdir -p {q(out)}/in && cp {q(r1)} {q(r2)} {q(out)}/in/"
        command = align_command(
            aligner, index, out / "in" / r1.name, out / "in" / r2.name, out / "shard.bam", out, threads
        )
        result = repeated(command, f"align {name}", n, scratch=out, reset=reset)
        result.update(
            read_pairs=pairs,
            input_gz_bytes=r1.stat().st_size + r2.stat().st_size,
            bam_bytes=(out / "shard.bam").stat().st_size,
            aligner=aligner,
            threads=threads,
        )
        return result

    results["minimap2/1000/t2"] = one("minimap2-1k-t2", "minimap2", *tiny, 2, reps, 1000)
    results["minimap2/1000/t1"] = one("minimap2-1k-t1", "minimap2", *tiny, 1, 1, 1000)
    results["bwa/1000/t2"] = one("bwa-1k-t2", "bwa", *tiny, 2, 1, 1000)
    results["minimap2/250000/t1"] = one("minimap2-250k-t1", "minimap2", *small, 1, 1, SHARD_PAIRS)
    per_shard = []
    for number, (r1, r2) in enumerate(shards, start=1):
        pairs = (
            int(
                subprocess.run(
                    f"pigz -dc {q(r1)} | wc -l", shell=True, capture_output=True, text=True, check=True
                ).stdout
            )
            // 4
        )
        per_shard.append(one(f"minimap2-shard{number}-t2", "minimap2", r1, r2, 2, 1, pairs))
    results["minimap2/250000/t2"] = per_shard[0]
    results["minimap2/shards/t2"] = {
        "shards": len(per_shard),
        "read_pairs": sum(s["read_pairs"] for s in per_shard),
        "sum_cpu_s": round(sum(s["median_cpu_s"] for s in per_shard), 2),
        "sum_wall_s": round(sum(s["median_wall_s"] for s in per_shard), 2),
        "max_shard_peak_tree_rss_mib": max(s["peak_tree_rss_mib"] for s in per_shard),
        "per_shard": per_shard,
    }
    return results


def section_bwa(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    """bwa mem on the first 250k pairs (the shard minimap2 aligned first), 2 threads."""
    small = first_pairs(smp, SHARD_PAIRS, work / "first")
    out = work / "align" / "bwa-250k-t2"
    reset = f"rm -rf {q(out)} && mkdir -p {q(out)}"
    command = align_command("bwa", work / "refprep" / "20Mb.bwa", *small, out / "shard.bam", out, 2)
    result = repeated(command, "align bwa 250k t2", 1, scratch=out, reset=reset)
    result.update(read_pairs=SHARD_PAIRS, aligner="bwa", threads=2)
    return {"bwa/250000/t2": result}


def section_markdup(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    """The gather: samtools merge -u | samtools markdup (align.py's multi-lane path) over the
    shard BAMs."""
    shard_bams = sorted((work / "align").glob("minimap2-shard*-t2/shard.bam"))
    results: dict[str, Any] = {}
    for name, bams in ((f"{len(shard_bams)} shards", shard_bams),):
        for threads in (1, 2):
            out = work / "markdup" / f"shards-t{threads}"
            t = str(threads)
            merge = ["samtools", "merge", "-u", "-@", t, "-o", "-", *map(str, bams)]
            bam = out / "sample.bam"
            markdup = [
                "samtools",
                "markdup",
                "-@",
                t,
                "--write-index",
                "-T",
                str(out / "markdup"),
                "-",
                f"{bam}##idx##{bam}.bai",
            ]
            reset = f"rm -rf {q(out)} && mkdir -p {q(out)}"
            result = repeated(
                f"{sh(merge)} | {sh(markdup)}", f"markdup {name} t{threads}", 1, scratch=out, reset=reset
            )
            result.update(
                input_bam_bytes=sum(b.stat().st_size for b in bams),
                bam_bytes=bam.stat().st_size,
                read_pairs=MAIN_PAIRS,
                threads=threads,
            )
            results[f"shards/t{threads}"] = result | {"shards": len(bams)}
    return results


def read_flags(path: Path, region: str | None, start: int, end: int) -> dict[tuple[str, int], int]:
    """FLAG of each primary read of chr20 starting in [start, end], by (name, first/second in pair)."""
    argv = ["samtools", "view", "-F", "0x900", str(path)]
    if region:
        argv.append(region)
    text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = {}
    for line in text.splitlines():
        name, flag, chrom, pos = line.split("\t", 4)[:4]
        if chrom == "chr20" and start <= int(pos) <= end:
            found[(name, int(flag) & 0xC0)] = int(flag)
    return found


def section_markdup_regions(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    """markdup per region: `samtools merge -R region` of the sorted shard BAMs | markdup, for the two
    halves of chr20, against the whole-sample markdup: the flags of every read that starts in the
    region (pairs straddling the boundary included) must be the same."""
    shard_bams = [
        b for b in sorted((work / "align").glob("minimap2-shard*-t2/shard.bam")) if b.stat().st_size > 1000
    ]
    whole = work / "markdup" / "shards-t2" / "sample.bam"
    out = work / "markdup-regions"
    out.mkdir(parents=True, exist_ok=True)
    for bam in shard_bams:
        if not Path(f"{bam}.bai").exists():
            subprocess.run(["samtools", "index", str(bam)], check=True)
    results: dict[str, Any] = {}
    for number, (start, end) in enumerate(((1, 5_000_000), (5_000_001, 10_000_000))):
        region = f"chr20:{start}-{end}"
        bam = out / f"region{number}.bam"
        merge = ["samtools", "merge", "-u", "-R", region, "-o", "-", *map(str, shard_bams)]
        markdup = ["samtools", "markdup", "-T", str(out / "md"), "-", str(bam)]
        measure = run(f"{sh(merge)} | {sh(markdup)}", f"markdup {region}")

        mine, reference = read_flags(bam, None, start, end), read_flags(whole, region, start, end)
        differ = [key for key in reference if mine.get(key) != reference[key]]
        straddling = sum(
            1
            for line in subprocess.run(
                ["samtools", "view", "-F", "0x900", str(bam)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if (f := line.split("\t"))[2] == "chr20"
            and start <= int(f[3]) <= end
            and f[6] == "="
            and not start <= int(f[7]) <= end
        )
        results[region] = {
            "cpu_s": measure.cpu_s,
            "reads_starting_in_region": len(reference),
            "reads_in_region_job": len(mine),
            "flags_differ": len(differ),
            "differ_examples": [list(k) for k in differ[:10]],
            "duplicates_whole": sum(1 for f in reference.values() if f & 0x400),
            "duplicates_region": sum(1 for f in mine.values() if f & 0x400),
            "reads_whose_mate_starts_outside": straddling,
        }
    return results


def region_real_bases(fasta: Path, region: str) -> int:
    text = subprocess.run(
        ["samtools", "faidx", str(fasta), region], capture_output=True, text=True, check=True
    ).stdout
    seq = "".join(line for line in text.splitlines() if not line.startswith(">")).upper()
    return len(seq) - seq.count("N")


def call_command(fasta: Path, bam: Path, region: str, vcf: Path, caller: str) -> str:
    """call.py's bcftools stream (mpileup | call | norm | soft filters), for one region; or
    freebayes -r on the region with its normalising tools, as call.py runs each region."""
    filters = call.filter_tools(2, caller, "bench")
    if caller == "freebayes":
        head = [
            sh(["freebayes", "-f", str(fasta), "--ploidy", "2", "-r", region, str(bam)]),
            sh(["vcfallelicprimitives", "-k", "-g"]),
            sh(["bcftools", "sort", "-T", f"{vcf}.sorttmp", "-Ou"]),
            sh(["bcftools", "norm", "-f", str(fasta), "-m", "-any", "-Ou"]),
            sh(["bcftools", "+fill-tags", "-Ou", "--", "-t", "AN,AC"]),
            sh(["bcftools", "view", "-i", 'GT="alt"', "-Ou"]),
        ]
    else:
        head = [
            sh(
                [
                    "bcftools",
                    "mpileup",
                    "-f",
                    str(fasta),
                    "-r",
                    region,
                    "-a",
                    "FORMAT/AD,FORMAT/ADF,FORMAT/ADR,FORMAT/DP",
                    "-q",
                    str(call.MIN_MAPPING_QUALITY),
                    "-d",
                    str(call.MAX_DEPTH),
                    "-Ou",
                    str(bam),
                ]
            ),
            sh(["bcftools", "call", "-m", "-v", "--ploidy", "2", "-Ou"]),
            sh(["bcftools", "norm", "-f", str(fasta), "-m", "-any", "-Ou"]),
        ]
    tail = [sh(tool.argv) for tool in filters[:-1]] + [sh([*filters[-1].argv[:-1], "-Oz"])]
    return " | ".join(head + tail) + f" > {q(vcf)}"


def section_call(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    bam = work / "markdup" / "shards-t2" / "sample.bam"
    fasta = smp.reference
    results: dict[str, Any] = {}
    regions = {
        "10kb": "chr20:5000001-5010000",
        "250kb": "chr20:5000001-5250000",
        "1Mb": "chr20:5000001-6000000",
        "10Mb": "chr20",
    }
    out = work / "call"
    out.mkdir(parents=True, exist_ok=True)
    for caller, sizes in (
        ("bcftools", ("10kb", "250kb", "1Mb", "10Mb")),
        ("freebayes", ("10kb", "250kb")),
    ):
        for size in sizes:
            region = regions[size]
            vcf = out / f"{caller}-{size}.vcf.gz"
            n = reps if size in ("10kb", "250kb") else 1
            result = repeated(call_command(fasta, bam, region, vcf, caller), f"call {caller} {size}", n)
            records = subprocess.run(
                f"bcftools view -H {q(vcf)} | wc -l", shell=True, capture_output=True, text=True, check=True
            ).stdout
            result.update(region=region, real_bases=region_real_bases(fasta, region), records=int(records))
            results[f"{caller}/{size}"] = result
    # chr20 as 4 regions of 2.5 Mb, concatenated, against chr20 in one process (the 10Mb run)
    length = int(
        next(
            line for line in Path(f"{fasta}.fai").read_text().splitlines() if line.startswith("chr20\t")
        ).split("\t")[1]
    )
    step = length // 4
    parts = [f"chr20:{start + 1}-{min(start + step, length)}" for start in range(0, length, step)]
    part_vcfs, part_cpu, part_wall = [], 0.0, 0.0
    for number, region in enumerate(parts):
        vcf = out / f"part{number:02d}.vcf.gz"
        m = run(call_command(fasta, bam, region, vcf, "bcftools"), f"call part {region}")
        part_cpu += m.cpu_s
        part_wall = max(part_wall, m.wall_s)
        part_vcfs.append(vcf)
    concat_vcf = out / "concat.vcf.gz"
    concat = run(
        f"bcftools concat --no-version -Oz -o {q(concat_vcf)} {' '.join(map(q, part_vcfs))} && "
        f"tabix -p vcf {q(concat_vcf)}",
        "concat",
    )
    whole_vcf = out / "bcftools-10Mb.vcf.gz"
    whole = results["bcftools/10Mb"]
    from harness import vcf_records

    a, b = set(vcf_records(concat_vcf)), set(vcf_records(whole_vcf))
    results["4 regions vs whole chr20"] = {
        "regions": parts,
        "sum_cpu_s": round(part_cpu, 2),
        "longest_region_wall_s": round(part_wall, 2),
        "concat": asdict(concat),
        "whole_cpu_s": whole["median_cpu_s"],
        "records": len(b),
        "records_only_in_concat": sorted(a - b)[:20],
        "records_only_in_whole": sorted(b - a)[:20],
    }
    return results


def section_report(smp: Sample, work: Path, reps: int) -> dict[str, Any]:
    """report's passes over the BAM (genopipe/steps/report.py): samtools stats, flagstat, coverage."""
    bam = work / "markdup" / "shards-t2" / "sample.bam"
    results: dict[str, Any] = {}
    out = work / "report"
    out.mkdir(parents=True, exist_ok=True)
    for threads in (1, 2):
        t = str(threads)
        for name, argv in (
            ("stats", ["samtools", "stats", "-@", t, "--reference", str(smp.reference), str(bam)]),
            ("flagstat", ["samtools", "flagstat", "-@", t, str(bam)]),
        ):
            result = repeated(f"{sh(argv)} > {q(out / name)}", f"report {name} t{threads}", reps)
            result.update(bam_bytes=bam.stat().st_size, read_pairs=MAIN_PAIRS)
            results[f"{name}/t{threads}"] = result
    result = repeated(f"samtools coverage {q(bam)} > {q(out / 'coverage')}", "report coverage", reps)
    results["coverage/t1"] = result
    return results


def section_hg002(work: Path, reps: int) -> dict[str, Any]:
    """The fastp decision on real reads: HG002 (the window, ~30x, 2x148) through fastp as qc runs
    it, without adapter detection, or not at all (raw reads to the aligner), then align.py's and
    call.py's commands; scored as bench/accuracy.py scores (GIAB v4.2.1 over the window). CPU per
    pair of each fastp variant on the window repeated 24 times (bench/step_chain.py's hg002-x24)."""
    from accuracy import hg002, metrics
    from step_chain import hg002_repeated, hg002_window

    folder = work / "hg002"
    folder.mkdir(parents=True, exist_ok=True)
    dataset = hg002(folder)
    fasta = folder / "hg19.chr20.fa"
    if not Path(f"{fasta}.fai").exists():
        subprocess.run(
            f"pigz -dc {q(dataset.reference)} > {q(fasta)} && samtools faidx {q(fasta)}",
            shell=True,
            check=True,
        )
    mmi = folder / "hg19.chr20.mmi"
    if not mmi.exists():
        subprocess.run(["minimap2", "-x", "sr", "-d", str(mmi), str(fasta)], check=True, capture_output=True)
    chrom, start, end = (str(x) for x in ("chr20", 10_000_000, 10_100_000))
    results: dict[str, Any] = {"reads": f"{dataset.r1.parent.name}, {dataset.read_pairs} pairs"}
    for variant in ("detect_adapter", "no_detect", "raw"):
        out = folder / variant
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        if variant == "raw":
            r1, r2 = dataset.r1, dataset.r2
            fastp: dict[str, Any] = {}
        else:
            run(sh(fastp_argv(dataset.r1, dataset.r2, out, 2, variant)), f"hg002 fastp {variant}")
            r1, r2 = out / "R1.fastq.gz", out / "R2.fastq.gz"
            report = json.loads((out / "fastp.json").read_text())
            fastp = {
                "reads_after_filtering": report["summary"]["after_filtering"]["total_reads"],
                "adapter_trimmed_reads": report.get("adapter_cutting", {}).get("adapter_trimmed_reads", 0),
                "adapter_trimmed_bases": report.get("adapter_cutting", {}).get("adapter_trimmed_bases", 0),
            }
        shard = out / "shard.bam"
        run(align_command("minimap2", mmi, r1, r2, shard, out, 2), f"hg002 align {variant}")
        bam = out / "sample.bam"
        run(
            f"samtools markdup -@ 2 --write-index -T {q(out / 'md')} {q(shard)} {q(bam)}##idx##{q(bam)}.bai",
            f"hg002 markdup {variant}",
        )
        vcf = out / "calls.vcf.gz"
        run(
            call_command(fasta, bam, f"{chrom}:{int(start) - 1000}-{int(end) + 1000}", vcf, "bcftools"),
            f"hg002 call {variant}",
        )
        subprocess.run(["tabix", "-f", "-p", "vcf", str(vcf)], check=True)
        scored = replace_reference(dataset, fasta)
        figures = metrics(vcf, scored)
        results[variant] = {
            "fastp": fastp,
            **{
                kind: {k: figures[kind][k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}
                for kind in ("snp", "indel")
            },
        }
    # CPU per pair of each fastp variant on 252k real pairs (2 threads)
    x24 = folder / "x24"
    x24.mkdir(exist_ok=True)
    repeated_set = hg002_repeated(hg002_window(), 24, x24)
    for variant in ("detect_adapter", "no_detect"):
        out = folder / f"x24-{variant}"
        reset = f"rm -rf {q(out)} && mkdir -p {q(out)}"
        command = sh(fastp_argv(repeated_set.r1, repeated_set.r2, out, 2, variant))
        result = repeated(command, f"hg002-x24 fastp {variant}", reps, reset=reset)
        result["read_pairs"] = repeated_set.read_pairs
        result["cpu_us_per_pair"] = round(result["median_cpu_s"] / repeated_set.read_pairs * 1e6, 2)
        results[f"x24 fastp {variant}"] = result
    return results


def replace_reference(dataset: Any, fasta: Path) -> Any:
    from dataclasses import replace

    return replace(dataset, reference=fasta)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/genopipe-scale"))
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--reps", type=int, default=3, help="repeats of the cheap pieces (medians quoted)")
    parser.add_argument("--out", type=Path, default=MEASURED)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    measured: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    measured.setdefault("machine", machine())
    measured["tool_versions"] = tool_versions() | {"bwa": _bwa_version(), "freebayes": _freebayes()}
    wanted = args.sections.split(",")
    if set(wanted) - {"refprep", "hg002"}:
        smp, described = sample(args.work)
        measured["sample"] = described
    for name in wanted:
        if name not in SECTIONS:
            sys.exit(f"bench: unknown section {name!r} (sections: {', '.join(SECTIONS)})")
        print(f"section {name}", flush=True)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        if name == "refprep":
            result = section_refprep(args.work, args.reps)
        elif name == "hg002":
            result = section_hg002(args.work, args.reps)
        else:
            result = globals()[f"section_{name}"](smp, args.work, args.reps)
        # sections may run in parallel processes: merge into what is on disk now
        current = json.loads(args.out.read_text()) if args.out.exists() else {}
        measured = current | {key: value for key, value in measured.items() if key not in SECTIONS}
        measured[name] = {"started": started, "load_average_at_end": list(os.getloadavg())} | result
        args.out.write_text(json.dumps(measured, indent=2) + "\n")
    return 0


def _freebayes() -> str:
    done = subprocess.run(["freebayes", "--version"], capture_output=True, text=True)
    return done.stdout.strip().replace("version:", "").strip()


if __name__ == "__main__":
    sys.exit(main())
