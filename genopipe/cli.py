"""The `genopipe` command. Each area registers its own subcommands; this module only wires them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand group -> module with `add_arguments(parser)` and `run(args) -> int`
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("genopipe.truth.simulate", "simulate a reference, a truth VCF and paired reads (dwgsim)"),
    "job": ("genopipe.steps.cli", "run one Batch job step (the images' entrypoint)"),
    "local": ("genopipe.local.cli", "the local stack: `local up`, `local run`"),
    "steps": ("genopipe.pipeline", "list the pipeline's job steps (the one table of steps)"),
    "publish": ("genopipe.notify.cli", "publish a sample's staged results again (after PublishFailed)"),
    "demo": ("genopipe.local.demo", "simulate a small sample and run it through the local stack"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="genopipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        # import only the chosen command's module: `genopipe job` must not pay for the local stack
        if name == chosen:
            importlib.import_module(module_name).add_arguments(command_parser)
    args, _ = parser.parse_known_args(argv) if chosen is None else (parser.parse_args(argv), None)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
