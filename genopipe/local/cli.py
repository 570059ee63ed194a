"""`genopipe local up` and `genopipe local run` (the contract is DESIGN.md, "The local stack")."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from genopipe.local import server, waits
from genopipe.local.progress import Progress
from genopipe.local.sample_run import RunError, run_one, sample_name
from genopipe.local.stack import LocalStack, StackError, StackOptions
from genopipe.local.summary import format_summary
from genopipe.local.sweep import SweepError, run_sweep

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3600.0


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=server.DEFAULT_PORT, help="moto server port (default 4566)"
    )
    parser.add_argument(
        "--executor", choices=["native", "docker"], default="native", help="how Batch jobs run"
    )
    parser.add_argument("--events-file", type=Path, help="append every genopipe event here as one JSON line")
    parser.add_argument(
        "--reclaim-rate", type=float, default=0.0, help="fraction of job attempts ended like a Spot reclaim"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the reclaim injection (default 0)")
    parser.add_argument(
        "--no-spot-capacity",
        action="store_true",
        help="no Spot instance can be had: Spot jobs wait RUNNABLE until the queue's time limit cancels them",
    )
    parser.add_argument(
        "--wait-scale",
        type=float,
        default=waits.DEFAULT_FACTOR,
        help=f"factor applied to the state machine's waits (default {waits.DEFAULT_FACTOR}; 1 = real time)",
    )
    parser.add_argument(
        "--sweep-every",
        type=float,
        help="seconds between scheduled intake sweeps (default: the template's SweepSchedule times "
        "--wait-scale; 0 = never)",
    )
    parser.add_argument(
        "--no-iam",
        action="store_true",
        help="turn IAM enforcement off (every call allowed; the stack then no longer fails where AWS would)",
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        type=parameter_override,
        metavar="KEY=VALUE",
        help="template parameters, as `sam deploy --parameter-overrides` sets them (e.g. Caller=freebayes)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging of the local stack")


def parameter_override(text: str) -> tuple[str, str]:
    """`Key=Value` (a value may hold `=`)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE (a template parameter)")
    return key.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="local_command", required=True, metavar="{up,run,sweep}")
    up = sub.add_parser("up", help="start the local stack and keep serving")
    _stack_arguments(up)
    up.add_argument(
        "--reference",
        type=Path,
        help="upload this FASTA and make it the pipeline's reference (ReferenceUri has no default: this "
        "or --parameter-overrides ReferenceUri=s3://...)",
    )
    run = sub.add_parser("run", help="run one sample through a fresh local stack")
    _stack_arguments(run)
    run.add_argument("--r1", type=Path, required=True, help="read 1 FASTQ (.fastq.gz / .fq.gz)")
    run.add_argument("--r2", type=Path, required=True, help="read 2 FASTQ (.fastq.gz / .fq.gz)")
    run.add_argument("--sample", help="sample name (default: from the R1 file name)")
    run.add_argument("--reference", type=Path, required=True, help="reference FASTA (plain or bgzipped)")
    run.add_argument("--ploidy", type=int, choices=[1, 2], help="1 or 2 (default: the pipeline's, 2)")
    run.add_argument(
        "--caller", choices=["bcftools", "freebayes"], help="variant caller (default: the stack's Caller)"
    )
    run.add_argument(
        "--out", type=Path, default=Path("genopipe-results"), help="where outputs are downloaded"
    )
    run.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="give up after this many seconds"
    )
    sweep = sub.add_parser("sweep", help="run the intake sweep once on a running `genopipe local up`")
    sweep.add_argument(
        "--port", type=int, default=server.DEFAULT_PORT, help="its moto server port (default 4566)"
    )
    sweep.add_argument(
        "--mate-timeout-seconds", type=float, help="report samples incomplete for this long (this sweep only)"
    )
    sweep.add_argument(
        "--lane-settle-seconds", type=float, help="start lane samples quiet for this long (this sweep only)"
    )
    sweep.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        port=args.port,
        executor=args.executor,
        reclaim_rate=args.reclaim_rate,
        seed=args.seed,
        spot_capacity=not args.no_spot_capacity,
        wait_scale=args.wait_scale,
        events_file=args.events_file,
        reference=args.reference,
        sweep_every=args.sweep_every,
        iam=not args.no_iam,
        parameters=dict(args.parameter_overrides),
    )


def quiet_logs(verbose: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("genopipe").setLevel(logging.DEBUG if verbose else logging.WARNING)
    for noisy in ("werkzeug", "moto", "botocore", "samtranslator"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)  # moto logs a failed execution as ERROR


def run(args: argparse.Namespace) -> int:
    quiet_logs(args.verbose)
    try:
        if args.local_command == "up":
            return serve(_options(args))
        if args.local_command == "sweep":
            return sweep_once(args)
        return run_sample(args)
    except (RunError, StackError, SweepError, server.PortInUse, ValueError) as error:
        print(f"genopipe local {args.local_command}: {error}", file=sys.stderr)
        return 2


def serve(options: StackOptions) -> int:
    stack = LocalStack(options)
    progress = Progress(sys.stderr, interactive=False)
    stack.batch.listeners.append(progress.job)
    stack.events.listeners.append(lambda event: progress.say(_event_line(event)))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with stack:
        print(f"endpoint       {stack.endpoint_url}")
        print(f"input bucket   s3://{stack.input_bucket}/")
        print(f"output bucket  s3://{stack.output_bucket}/")
        if stack.reference_uri:
            print(f"reference      {stack.reference_uri}")
        if stack.enforcement is not None:  # IAM is enforced: a user's SDK or CLI acts as the local admin
            admin = stack.enforcement.admin
            print(
                f"credentials    export AWS_ACCESS_KEY_ID={admin.access_key_id} "
                f"AWS_SECRET_ACCESS_KEY={admin.secret_access_key}  (local admin; moto only)"
            )
        if stack.sweeper is not None:
            print(f"intake sweep   every {stack.sweeper.interval_s:g} s (now: genopipe local sweep)")
        print(
            f"try: aws --endpoint-url {stack.endpoint_url} s3 cp reads_R1.fastq.gz s3://{stack.input_bucket}/",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


def sweep_once(args: argparse.Namespace) -> int:
    """Invoke the sweep of the stack served on `--port`; prints its outcome as JSON."""
    saved = server.sdk_environment()
    server.point_sdk_at(args.port)
    try:
        outcome = run_sweep(args.mate_timeout_seconds, args.lane_settle_seconds)
    except (BotoCoreError, ClientError) as error:
        raise SweepError(f"no local stack answers on {server.endpoint_url(args.port)}: {error}") from error
    finally:
        server.restore_sdk_environment(saved)
    print(json.dumps(outcome, indent=2))
    return 0


def _event_line(event: dict[str, Any]) -> str:
    detail = event.get("detail", {})
    return f"{detail.get('sample', '?')}  {event.get('detail-type')}"


def run_sample(args: argparse.Namespace) -> int:
    outcome = run_one(
        _options(args),
        args.r1,
        args.r2,
        args.sample or sample_name(args.r1),
        args.ploidy,
        args.out,
        args.timeout,
        caller=args.caller,
    )
    print(format_summary(outcome.event, outcome.elapsed_s, outcome.files))
    print(json.dumps(outcome.event, separators=(",", ":")), flush=True)
    return 0 if outcome.completed else 1
