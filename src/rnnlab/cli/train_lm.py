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

from .args import fractions as _fractions


def register(ctx) -> None:
    p = ctx.train.add_parser("lm", parents=[ctx.common], help="train a recurrent language model",
                             description="Train an RNN language model with truncated BPTT. Flags override "
                                         "the preset; with --resume, the run's stored config is used.")
    p.add_argument("dataset", nargs="?", choices=["ptb", "shakespeare"], default=None,
                   help="a known corpus (default: the preset's, else ptb); found under $RNNLAB_DATA or downloaded")
    data = p.add_argument_group("data")
    data.add_argument("--text", metavar="FILE", help="your own UTF-8 corpus instead of a dataset")
    data.add_argument("--valid", metavar="FILE", dest="valid_text", help="validation text (default: cut from --text)")
    data.add_argument("--test", metavar="FILE", dest="test_text", help="test text (default: cut from --text)")
    data.add_argument("--split", metavar="TR,VA,TE", type=_fractions,
                      help="fractions of a single --text file for train,valid,test (default 0.9,0.05,0.05)")
    data.add_argument("--level", choices=["word", "char"], help="tokens: words (PTB style) or characters "
                                                                "(default: the dataset's; char for --text)")
    data.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset (default $RNNLAB_DATA)")
    data.add_argument("--limit", type=int, metavar="N", help="use only the first N tokens of each split")
    model = p.add_argument_group("model")
    model.add_argument("--preset", choices=["zaremba-small", "zaremba-medium", "char-shakespeare"],
                       help="a published configuration; other flags override its values")
    model.add_argument("--cell", choices=["lstm", "gru", "rnn"])
    model.add_argument("--layers", type=int)
    model.add_argument("--hidden", type=int)
    model.add_argument("--emb", type=int, help="embedding size (default: --hidden)")
    model.add_argument("--dropout", type=float, help="dropout between layers (Zaremba et al.)")
    model.add_argument("--variational", action="store_true", default=None,
                       help="one dropout mask per sequence, shared over time steps")
    model.add_argument("--tie-weights", action="store_true", default=None,
                       help="share the embedding and output matrices (needs --emb == --hidden)")
    model.add_argument("--init-scale", type=float, help="initialize every weight from U(-s, s)")
    opt = p.add_argument_group("training")
    opt.add_argument("--optimizer", choices=["sgd", "adam", "adamw"],
                     help="default: sgd at word level, adam at character level")
    opt.add_argument("--lr", type=float, help="learning rate (default: sgd 1.0, adam/adamw 2e-3)")
    opt.add_argument("--lr-decay", type=float, help="multiply the lr by this after each epoch >= --decay-start "
                                                    "(default: sgd 0.5, adam/adamw 1 = constant)")
    opt.add_argument("--decay-start", type=int, help="epochs at the initial lr before decaying (default 4)")
    opt.add_argument("--clip", type=float, help="global gradient-norm clipping (0: none)")
    opt.add_argument("--sum-over-time", action="store_true", default=None,
                     help="gradient of the loss summed over the window's steps, as Zaremba et al. "
                          "(default under sgd, so lr 1 means the paper's rate)")
    opt.add_argument("--mean-over-time", action="store_false", dest="sum_over_time", default=None,
                     help="gradient of the mean loss per token (default under adam/adamw)")
    opt.add_argument("--bptt", type=int, help="truncated-BPTT window length")
    opt.add_argument("--batch", type=int, help="parallel streams")
    opt.add_argument("--epochs", type=int, help="passes over the training text (default 13; with --max-minutes: "
                                                "until the budget or early stopping)")
    opt.add_argument("--eval-batch", type=int, help="streams for the final valid/test figures (default 1)")
    opt.add_argument("--seed", type=int)
    opt.add_argument("--max-minutes", type=float, help="time budget: stop after this much training time (validate, "
                                                       "save); without --epochs, train until the budget or early "
                                                       "stopping ends it")
    opt.add_argument("--checkpoint-every", type=int, metavar="WINDOWS",
                     help="save last.npz every this many windows (default: every 60 s)")
    run = p.add_argument_group("run")
    run.add_argument("--out", metavar="RUN_DIR", default="runs/lm",
                     help="run directory: config, best/last checkpoints, metrics.jsonl, curves.png")
    run.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from last.npz")
    run.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR")
    run.add_argument("--patience", type=int, help="stop after this many epochs without a better validation loss "
                                                  "(default: never; 3 with --max-minutes and no --epochs)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (default: bars when stderr is a terminal)")
    p.set_defaults(func=run_command)


def config_from_args(args):
    from ..train.config import budget_epochs
    from ..train.lm import LMConfig, make_config

    overrides = {name: getattr(args, name, None) for name in (
        "text", "valid_text", "test_text", "split", "level", "data_dir", "limit", "cell", "layers", "hidden",
        "emb", "dropout", "variational", "tie_weights", "init_scale", "optimizer", "lr", "lr_decay",
        "decay_start", "bptt", "batch", "epochs", "eval_batch", "seed", "max_minutes", "checkpoint_every",
        "sum_over_time", "patience")}
    if args.dataset is not None:
        overrides["dataset"] = args.dataset
    overrides["clip"] = args.clip  # 0 turns clipping off
    if args.text is not None:
        overrides["dataset"] = None
    if args.max_minutes is not None and args.epochs is None:  # a budget without a count
        overrides["epochs"], overrides["patience"] = budget_epochs(None, args.max_minutes, args.patience,
                                                                   LMConfig.epochs)
    return make_config(args.preset, **overrides)


def run_command(args):
    from ..train.config import describe_checkpoint
    from ..train.lm import train_lm

    from ..train.lm import RESUME_OVERRIDES

    progress = False if args.no_progress else None
    if args.resume:
        ignored = [f"--{n.replace('_', '-')}" for n in (
            "preset", "dataset", "text", "level", "cell", "layers", "hidden", "emb", "lr", "optimizer", "bptt",
            "batch", "seed", "dropout", "tie_weights", "init_scale", "clip", "limit", "sum_over_time") if getattr(args, n, None) is not None]
        if ignored:
            print(f"rnnlab train lm: --resume keeps the stored config of {args.out}; ignoring "
                  f"{', '.join(ignored)}", file=sys.stderr)
        overrides = {name: getattr(args, name, None) for name in RESUME_OVERRIDES}
        result = train_lm(None, args.out, resume=True, progress=progress, overrides=overrides)
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
