"""`genopipe job <step> --sample --reads --reference --staging [--aligner] [--ploidy] [--caller]
[--call-shard-bases] [--max-shards] [--intervals]`.

The images' entrypoint. The command line is the contract of docs/internals.md ("Job steps"):
exit 0 on success, 1 with one line `genopipe <step>: <input>: <problem>` on failure, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pydantic import ValidationError

from genopipe.pipeline import STEP_NAMES
from genopipe.steps.params import StepParams
from genopipe.steps.runner import execute


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("step", choices=STEP_NAMES, help="which step to run")
    parser.add_argument("--sample", required=True, help="sample name ([A-Za-z0-9._-]+)")
    parser.add_argument(
        "--reads", required=True, help='JSON list of lanes: [{"r1": "s3://...", "r2": "s3://..."}, ...]'
    )
    parser.add_argument("--reference", required=True, help="s3:// URI of the reference FASTA")
    parser.add_argument("--staging", required=True, help="s3:// prefix the step reads from and writes to")
    parser.add_argument("--aligner", default="minimap2", help="minimap2 (default) or bwa")
    parser.add_argument("--ploidy", default="2", help="1 or 2 (default 2)")
    parser.add_argument("--caller", default="bcftools", help="bcftools (default) or freebayes")
    parser.add_argument(
        "--call-shard-bases", default="100000000", help="real bases per call job (default 100000000)"
    )
    parser.add_argument("--max-shards", default="100", help="at most this many call jobs (default 100)")
    parser.add_argument(
        "--intervals", default="", help="s3:// URI of a BED of targets to call in (default: the whole genome)"
    )


def parse_params(args: argparse.Namespace) -> StepParams:
    return StepParams.model_validate(
        {
            "sample": args.sample,
            "reads": args.reads,
            "reference": args.reference,
            "staging": args.staging,
            "aligner": args.aligner,
            "ploidy": int(args.ploidy) if str(args.ploidy).strip().isdigit() else args.ploidy,
            "caller": args.caller,
            "call_shard_bases": args.call_shard_bases,
            "max_shards": args.max_shards,
            "intervals": args.intervals,
        }
    )


def _first_problem(error: ValidationError | ValueError) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "arguments"
        return f"{where}: {first['msg']}"
    return f"--reads: {error}"


def run(args: argparse.Namespace) -> int:
    try:
        params = parse_params(args)
    except (ValidationError, ValueError) as error:
        print(f"genopipe {args.step}: {_first_problem(error)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"genopipe.steps.{args.step}")
    return execute(args.step, params, module.run)
