"""`genopipe demo`: simulate a small diploid sample with a known truth, run it through the local
stack, and print the summary with precision and recall against the truth."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from genopipe.local import server, waits
from genopipe.local.cli import quiet_logs
from genopipe.local.sample_run import RunError, RunOutcome, run_one
from genopipe.local.stack import StackError, StackOptions
from genopipe.local.summary import format_summary
from genopipe.truth.evaluate import EvaluateError, Evaluation, evaluate
from genopipe.truth.simulate import SimulateError, simulate_sample

DEMO_SAMPLE = "demo"
DEMO_LENGTH = 200_000  # bp of synthetic genome: ~200 variants, 20k read pairs at 30x
DEMO_DEPTH = 30.0
DEMO_TIMEOUT_S = 900.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="keep the simulated inputs and the outputs here")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument("--length", type=int, default=DEMO_LENGTH, help="genome length in bp")
    parser.add_argument("--depth", type=float, default=DEMO_DEPTH, help="read depth")
    parser.add_argument(
        "--port", type=int, default=server.DEFAULT_PORT, help="moto server port (default 4566)"
    )
    parser.add_argument("--executor", choices=["native", "docker"], default="native")
    parser.add_argument("--reclaim-rate", type=float, default=0.0, help="Spot reclaim fault injection")
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    quiet_logs(args.verbose)
    # without --out the files stay in a fresh temporary folder, so the printed paths can be opened
    return _demo(args, args.out or Path(tempfile.mkdtemp(prefix="genopipe-demo-")))


def _demo(args: argparse.Namespace, out: Path) -> int:
    try:
        print(f"simulating a {args.length:,} bp diploid genome at {args.depth:g}x ...", file=sys.stderr)
        simulated = simulate_sample(
            out / "inputs", args.seed, length=args.length, depth=args.depth, sample=DEMO_SAMPLE
        )
        print(
            f"truth: {simulated.snps} SNPs, {simulated.indels} indels; {simulated.read_pairs:,} read pairs",
            file=sys.stderr,
        )
        options = StackOptions(
            port=args.port,
            executor=args.executor,
            reclaim_rate=args.reclaim_rate,
            wait_scale=waits.DEFAULT_FACTOR,
            reference=simulated.reference,
        )
        outcome = run_one(
            options, simulated.r1, simulated.r2, DEMO_SAMPLE, 2, out / "results", DEMO_TIMEOUT_S
        )
        print(format_summary(outcome.event, outcome.elapsed_s, outcome.files))
        if not outcome.completed:
            return 1
        evaluation = evaluate(_vcf(outcome), simulated.truth_vcf, simulated.reference)
        print(accuracy_lines(evaluation))
    except (SimulateError, RunError, StackError, EvaluateError, server.PortInUse) as error:
        print(f"genopipe demo: {error}", file=sys.stderr)
        return 2
    return 0


def _vcf(outcome: RunOutcome) -> Path:
    return next(path for path in outcome.files if path.name == f"{DEMO_SAMPLE}.vcf.gz")


def accuracy_lines(evaluation: Evaluation) -> str:
    def ratio(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = ["accuracy vs truth"]
    for name, metrics in (("SNPs", evaluation.snp), ("indels", evaluation.indel)):
        lines.append(
            f"  {name:<7} precision {ratio(metrics.precision)}  recall {ratio(metrics.recall)}  "
            f"(TP {metrics.tp}, FP {metrics.fp}, FN {metrics.fn})"
        )
    tp = evaluation.snp.tp + evaluation.indel.tp
    fp = evaluation.snp.fp + evaluation.indel.fp
    fn = evaluation.snp.fn + evaluation.indel.fn
    lines.append(
        f"  {'all':<7} precision {ratio(tp / (tp + fp) if tp + fp else None)}  "
        f"recall {ratio(tp / (tp + fn) if tp + fn else None)}"
    )
    return "\n".join(lines)
