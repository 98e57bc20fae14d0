"""The flags every ``rnnlab train classify|tag|caption`` command shares (training and run folder),
and how they become config fields or the overrides of a resumed run."""
from __future__ import annotations

import sys

from ..train.config import budget_epochs
from . import seeds

TRAINING_FIELDS = ("batch", "optimizer", "lr", "lr_decay", "decay_start", "clip", "seed", "max_minutes", "patience",
                   "checkpoint_every", "monitor")


def add_training_arguments(parser, defaults) -> None:
    """The "training" and "run" groups; ``defaults``: the task's config (its field defaults)."""
    d = defaults
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"passes over the training data (default {d.epochs})")
    g.add_argument("--batch", type=int, default=d.batch)
    g.add_argument("--optimizer", choices=["adam", "sgd", "adamw"], default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--lr-decay", type=float, default=d.lr_decay, help="multiply lr by this after each epoch "
                   f">= --decay-start (default {d.lr_decay:g}; 1: constant)")
    g.add_argument("--decay-start", type=int, default=d.decay_start, help=f"default {d.decay_start}")
    g.add_argument("--clip", type=float, default=d.clip, help="global gradient-norm clip (0: off)")
    g.add_argument("--seed", type=int, default=d.seed)
    seeds.add_arguments(g)
    add_run_arguments(parser, g)


def add_run_arguments(parser, g, score: str = "validation score", monitor: bool = True) -> None:
    """The flags of every trainer: the time budget, patience (on ``score``), checkpoints, progress
    (into the group ``g``), and the "run" group (--out, --resume, --overwrite)."""
    g.add_argument("--max-minutes", type=float, help="time budget: stop after this much training time (validate, "
                                                     "save; --resume goes on); without --epochs, train until "
                                                     "the budget or early stopping ends it")
    g.add_argument("--patience", type=int, help=f"stop after this many epochs without a better {score} "
                                                "(default: never; 3 with --max-minutes and no --epochs)")
    if monitor:
        g.add_argument("--monitor", help="validation metric that picks best.npz and drives --patience (e.g. "
                       "valid_loss: lowered; any other: raised; default: the task's accuracy)")
    g.add_argument("--checkpoint-every", type=int, metavar="BATCHES",
                   help="save last.npz every this many batches (default: every 60 s)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars (default: bars when stderr "
                                                              "is a terminal)")
    g = parser.add_argument_group("run")
    g.add_argument("--out", metavar="RUN_DIR", help="run directory (config, checkpoints, metrics, curves)")
    g.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.npz")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR")


def training_fields(args, config_class) -> dict:
    """Config fields from the training flags (``--epochs`` left out keeps the config's default)."""
    fields = {name: getattr(args, name) for name in TRAINING_FIELDS}
    fields["epochs"], fields["patience"] = budget_epochs(args.epochs, args.max_minutes, args.patience,
                                                         config_class.epochs)
    fields["progress"] = False if args.no_progress else None
    return fields


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
        overrides = {"epochs": args.epochs, "max_minutes": args.max_minutes, "patience": args.patience,
                     "checkpoint_every": args.checkpoint_every}
        if args.no_progress:
            overrides["progress"] = False
        result = train(None, args.out, resume=True, overrides=overrides)
    else:
        result = train(make_config(args), args.out, overwrite=args.overwrite)
    if args.out:
        print(f"run directory: {args.out}", file=sys.stderr)
    metrics = dict(result.metrics)
    if report is not None:
        print(report(metrics))
    return metrics
