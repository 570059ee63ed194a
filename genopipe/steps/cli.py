"""`genopipe job <step> --sample --reads --reference --staging [--aligner] [--ploidy] [--caller]
[--align-shard-read-pairs] [--call-shard-bases] [--max-shards] [--intervals]`.

The images' entrypoint. The command line is the contract of docs/internals.md ("Job steps"):
exit 0 on success, 1 with one line `genopipe <step>: <input>: <problem>` on failure, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pydantic import ValidationError

from genopipe.aws import s3
from genopipe.aws.s3 import S3Error
from genopipe.contracts import (
    DEFAULT_ALIGN_SHARD_READ_PAIRS,
    DEFAULT_CALL_SHARD_BASES,
    DEFAULT_MAX_SHARDS,
    NO_INTERVALS,
)
from genopipe.pipeline import STEP_NAMES
from genopipe.steps.params import StepParams
from genopipe.steps.runner import execute


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("step", choices=STEP_NAMES, help="which step to run")
    parser.add_argument("--sample", required=True, help="sample name ([A-Za-z0-9._-]+)")
    parser.add_argument(
        "--reads",
        required=True,
        help='s3:// URI of a JSON list of lanes (reads.json), or the list: [{"r1": "s3://...", ...}, ...]',
    )
    parser.add_argument("--reference", required=True, help="s3:// URI of the reference FASTA")
    parser.add_argument("--staging", required=True, help="s3:// prefix the step reads from and writes to")
    parser.add_argument("--aligner", default="minimap2", help="minimap2 (default) or bwa")
    parser.add_argument("--ploidy", default="2", help="1 or 2 (default 2)")
    parser.add_argument("--caller", default="bcftools", help="bcftools (default) or freebayes")
    parser.add_argument(
        "--align-shard-read-pairs",
        default=str(DEFAULT_ALIGN_SHARD_READ_PAIRS),
        help="read pairs per align shard",
    )
    parser.add_argument(
        "--call-shard-bases", default=str(DEFAULT_CALL_SHARD_BASES), help="bases per call region"
    )
    parser.add_argument(
        "--max-shards", default=str(DEFAULT_MAX_SHARDS), help="most shards of a scattered step"
    )
    parser.add_argument(
        "--intervals",
        default=NO_INTERVALS,
        help=f"s3:// URI of a BED of targets ({NO_INTERVALS}: whole genome)",
    )


def _whole(value: str) -> int | str:
    return int(value) if str(value).strip().isdigit() else value


def lanes_json(reads: str) -> str:
    """The lanes: `--reads` itself, or the object it names (the submit Lambda's reads.json: a list
    of lanes does not fit Batch's 8 KiB container overrides beyond ~30 lanes)."""
    return s3.read_bytes(reads.strip()).decode() if reads.strip().startswith("s3://") else reads


def parse_params(args: argparse.Namespace) -> StepParams:
    return StepParams.model_validate(
        {
            "sample": args.sample,
            "reads": lanes_json(args.reads),
            "reference": args.reference,
            "staging": args.staging,
            "aligner": args.aligner,
            "ploidy": int(args.ploidy) if str(args.ploidy).strip().isdigit() else args.ploidy,
            "caller": args.caller,
            "align_shard_read_pairs": _whole(args.align_shard_read_pairs),
            "call_shard_bases": _whole(args.call_shard_bases),
            "max_shards": _whole(args.max_shards),
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
    except S3Error as error:  # reads.json unreadable: the run's staging is broken, not the arguments
        print(" ".join(f"genopipe {args.step}: {error.uri}: {error.problem}".split()), file=sys.stderr)
        return 1
    module = importlib.import_module(f"genopipe.steps.{args.step}")
    return execute(args.step, params, module.run)
