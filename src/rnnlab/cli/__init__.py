"""The ``rnnlab`` command line: a thin shell over library functions.

Each command lives in its own module with ``register(ctx)``, which adds its parser(s) to
``ctx.commands`` (top level: ``rnnlab NAME``) or ``ctx.train`` (``rnnlab train NAME``) and sets
``func=run`` on them. ``run(args)`` does the work, writes progress and logs to stderr and
human-readable results to stdout, and returns a dict of results; with ``--json`` the dict is
printed as one JSON object on the last line of stdout.

Exit status: 0 done; 2 a user's mistake (a flag out of range, a bad or missing file, a damaged
checkpoint, a locked run folder, a diverged run ...), reported in one line with no traceback;
1 an environment failure (disk full, ...), one line; any other exception is a bug and keeps
its traceback. Every numeric flag is checked at parse time by the rules of ``cli/args.py``.
Every command takes ``--json`` and ``--threads N`` (``ctx.common``); the thread decision
(``rnnlab.threads.configure``) is made once the arguments are read, before the command runs.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..fileio import json_default
from .args import Parser, UserError, harden

COMMAND_MODULES = ["demo", "train_lm", "train_seq2seq", "eval", "sample", "translate", "data",
                   "summary", "bench", "export", "experiment", "train_classify", "train_tag", "train_caption",
                   "predict", "ensemble"]


@dataclass
class CliContext:
    commands: argparse._SubParsersAction
    train: argparse._SubParsersAction
    common: argparse.ArgumentParser  # parent parser holding --json; pass as parents=[ctx.common]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="rnnlab", description="Recurrent neural networks from scratch on NumPy.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    common = Parser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="print the results as one JSON object on the last line of stdout")
    common.add_argument("--threads", type=int, default=None, metavar="N",
                        help="BLAS and kernel threads (default: rnnlab decides by the CPUs available and how busy "
                             "they are; RNNLAB_THREADS=N likewise; see rnnlab.threads)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train a model (lm or seq2seq)")
    train_tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    ctx = CliContext(commands, train_tasks, common)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(ctx)
    return harden(parser)


def main(argv=None) -> int:
    """Run one command; the exit status. Under ``mpiexec -n N`` every rank runs it inside
    ``distributed.fail_fast`` (a failure on one rank, a user's mistake included, aborts the
    whole job rather than leaving the others waiting) with only rank 0's output shown."""
    from .. import distributed as dist  # imports mpi4py only under mpiexec

    with dist.fail_fast(), dist.quiet_ranks():
        code = _run(argv)
        if code and dist.world().distributed:
            raise SystemExit(code)  # fail_fast: end every rank with this code
    return code


def _run(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)   # as typed: ``--seeds`` reruns it per seed
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        from .. import threads

        threads.configure(getattr(args, "threads", None))  # before any product: the BLAS follows at once
        result = args.func(args)
        if getattr(args, "json", False):
            sys.stdout.flush()
            print(json.dumps(result if result is not None else {}, default=json_default))
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rnnlab data ... | head -1`: the reader has gone, quietly stop
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 141  # 128 + SIGPIPE, as a shell tool killed by it
    except Exception as err:  # noqa: BLE001 - sorted into a user's mistake, the environment, a bug
        code = exit_status(err)
        if code is None:
            raise  # a bug: keep its traceback
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        command = " ".join(filter(None, (args.command, getattr(args, "task", None) if args.command == "train" else None)))
        print(f"rnnlab {command}: error: {message}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        return code
    return 0


_PACKAGE = Path(__file__).resolve().parent.parent


def exit_status(err: BaseException) -> int | None:
    """2 for a user's mistake, 1 for a failure of the environment, None for a bug.

    A user's mistake: ``UserError`` (and ``CheckpointError``), a missing/unreadable/misplaced
    file, a locked or diverged run, a batch too large for the memory, or a ValueError that rnnlab itself raised to reject an
    input (its innermost frame is in the package: a ValueError from deep inside NumPy is a bug).
    The environment: any other OSError (disk full, I/O error), a missing optional package."""
    from ..train.loop import TrainingDiverged
    from ..train.run import RunLocked
    from .seeds import SeedFailed

    if isinstance(err, SeedFailed):
        return err.exit_code   # a run of --seeds failed: its own status
    if isinstance(err, (UserError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
                        FileExistsError, RunLocked, TrainingDiverged, UnicodeDecodeError, MemoryError)):
        return 2
    if isinstance(err, OSError):
        return 1
    if isinstance(err, (ImportError, RuntimeError)) and "pip install" in str(err):
        return 1  # an optional package is missing: the message says which extra to install
    if type(err) is ValueError or isinstance(err, ValueError) and type(err).__module__.startswith("rnnlab"):
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        frame_file = Path(tb.tb_frame.f_code.co_filename).resolve() if tb is not None else None
        if frame_file is not None and _PACKAGE in frame_file.parents:
            return 2
    return None


if __name__ == "__main__":
    sys.exit(main())
