"""What every ``rnnlab train TASK`` command shares: its config's flags (generated from the
config's fields, ``config_flags.py``), the run folder's flags, and how flags become a config or
the overrides of a resumed run."""
from __future__ import annotations

import sys

from ..train.config import budget_epochs
from . import seeds
from .config_flags import add_config_flags, config_values


def add_trainer_flags(parser, config_class, *, with_seeds: bool = True) -> dict:
    """The flags of ``config_class``'s fields, ``--seeds``/``--jobs`` (``with_seeds``) and the
    "run" group; the argument groups by name."""
    groups = add_config_flags(parser, config_class)
    if with_seeds:
        seeds.add_arguments(groups["training"])
    add_run_arguments(parser)
    return groups


def add_run_arguments(parser, out_default: str | None = None,
                      out_help: str = "run directory (config, checkpoints, metrics, curves)"):
    """The "run" group: --out, --resume, --overwrite; the group."""
    g = parser.add_argument_group("run")
    g.add_argument("--out", metavar="RUN_DIR", default=out_default, help=out_help)
    g.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.npz")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR")
    return g


def config_fields(args) -> dict:
    """The config's fields from the flags (``--epochs`` left out: the config's default, or with
    ``--max-minutes`` until the budget ends the run)."""
    fields = config_values(args)
    fields["epochs"], fields["patience"] = budget_epochs(args.epochs, args.max_minutes, args.patience,
                                                         args.config_class.epochs)
    return fields


def resume_overrides(args) -> dict:
    """The flags a resumed run may change (its config's resumable settings), by field."""
    return {name: getattr(args, name, None) for name in args.config_class.resumable_fields()}


def run_training(args, train, make_config, report=None):
    """A new run (``make_config(args)``) or, with ``--resume``, the run in ``--out`` continued
    with the flags a resume may change: prints ``report(metrics)`` (if given) and returns the
    metrics as a dict. With ``--seeds``: one run per seed and their ensemble (``seeds.py``)."""
    if getattr(args, "seeds", None):
        return seeds.run_seeds(args, args.seeds)
    if getattr(args, "jobs", None) is not None:
        raise ValueError("--jobs goes with --seeds")
    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out RUN_DIR (the run to continue)")
        result = train(None, args.out, resume=True, overrides=resume_overrides(args))
    else:
        result = train(make_config(args), args.out, overwrite=args.overwrite)
    if args.out:
        print(f"run directory: {args.out}", file=sys.stderr)
    metrics = dict(result.metrics)
    if report is not None:
        print(report(metrics))
    return metrics
