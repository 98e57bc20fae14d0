"""The ``rnnlab`` command line: a thin shell over library functions.

Each command lives in its own module with ``register(ctx)``, which adds its parser(s) to
``ctx.commands`` (top level: ``rnnlab NAME``) or ``ctx.train`` (``rnnlab train NAME``) and sets
``func=run`` on them. ``run(args)`` does the work, writes progress and logs to stderr and
human-readable results to stdout, and returns a dict of results; with ``--json`` the dict is
printed as one JSON object on the last line of stdout.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass

COMMAND_MODULES = ["demo", "train_lm", "train_seq2seq", "eval", "sample", "translate", "data",
                   "summary", "bench", "export", "train_classify", "train_tag", "train_caption", "predict"]


@dataclass
class CliContext:
    commands: argparse._SubParsersAction
    train: argparse._SubParsersAction
    common: argparse.ArgumentParser  # parent parser holding --json; pass as parents=[ctx.common]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="rnnlab", description="Recurrent neural networks from scratch on NumPy.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="print the results as one JSON object on the last line of stdout")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train a model (lm or seq2seq)")
    train_tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    ctx = CliContext(commands, train_tasks, common)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(ctx)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        print(f"rnnlab {args.command}: error: {err}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"error": str(err)}))
        return 1
    if getattr(args, "json", False):
        sys.stdout.flush()
        print(json.dumps(result if result is not None else {}, default=_json_default))
    return 0


def _json_default(obj):
    try:
        return obj.item()  # numpy scalars
    except AttributeError:
        return str(obj)


if __name__ == "__main__":
    sys.exit(main())
