"""``rnnlab train lm``: train a recurrent language model (word or character level).

    rnnlab train lm --preset zaremba-small --out runs/ptb-small
    rnnlab train lm --text novel.txt --level char --hidden 256 --epochs 5 --out runs/novel
    rnnlab train lm --out runs/ptb-small --resume          # after a kill: continue exactly
    rnnlab train lm --text corpus.txt --level word --max-minutes 30   # until the budget or early stop

Defaults (measured, see the README's "Defaults"): 2 x 200 LSTM, windows of 20 x 20. At word level
SGD at lr 1 on the loss summed over the window (Zaremba et al.'s scale), halved after every
epoch from the 4th; at character level, and with ``--optimizer adam``/``adamw``, lr 2e-3 on the
per-token mean, constant. An explicit flag always wins. ``--text`` without ``--level`` trains
on characters (and says so).
"""
from __future__ import annotations

import sys

from .config_flags import add_config_flags, config_values, given_flags
from .train_common import add_run_arguments, resume_overrides


def register(ctx) -> None:
    from ..train.lm import LMConfig

    p = ctx.train.add_parser("lm", parents=[ctx.common], help="train a recurrent language model",
                             description="Train an RNN language model with truncated BPTT. Flags override "
                                         "the preset; with --resume, the run's stored config is used.")
    add_config_flags(p, LMConfig, defaults=False)   # a flag left out: the preset's value, else the config's
    run = add_run_arguments(p, out_default="runs/lm", out_help="run directory: config, best/last checkpoints, "
                                                               "metrics.jsonl, curves.png")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (default: bars when stderr is a terminal)")
    p.set_defaults(func=run_command)


def config_from_args(args):
    from ..train.config import budget_epochs
    from ..train.lm import LMConfig, make_config

    overrides = config_values(args)
    if args.max_minutes is not None and args.epochs is None:  # a budget without a count
        overrides["epochs"], overrides["patience"] = budget_epochs(None, args.max_minutes, args.patience,
                                                                   LMConfig.epochs)
    return make_config(overrides.pop("preset"), **overrides)


def run_command(args):
    from ..train.config import describe_checkpoint
    from ..train.lm import train_lm

    progress = False if args.no_progress else None
    if args.resume:
        resumable = args.config_class.resumable_fields()
        ignored = given_flags(args, [name for name in args.config_class.field_names() if name not in resumable])
        if ignored:
            print(f"rnnlab train lm: --resume keeps the stored config of {args.out}; ignoring "
                  f"{', '.join(ignored)}", file=sys.stderr)
        result = train_lm(None, args.out, resume=True, progress=progress, overrides=resume_overrides(args))
    else:
        result = train_lm(config_from_args(args), args.out, progress=progress, overwrite=args.overwrite)
    result = dict(result.metrics)
    where = describe_checkpoint(result)
    line = f"test perplexity {result['perplexity']:.2f} (loss {result['loss']:.4f}"
    if "bits_per_char" in result:
        line += f", {result['bits_per_char']:.3f} bits/char"
    line += (f"), valid perplexity {result['valid_perplexity']:.2f} ({where}); {result['epochs']} epochs in "
             f"{result['wall_s']:.0f} s")
    print(line)
    print(f"run directory: {result['run_dir']}")
    return result
