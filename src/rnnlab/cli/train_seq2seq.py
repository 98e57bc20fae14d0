"""``rnnlab train seq2seq``: train an encoder-decoder on TSV pairs or generated data.

    rnnlab train seq2seq --pairs data.tsv --out runs/s2s              # until the loss stops falling
    rnnlab train seq2seq --pairs date.txt --out runs/date               # the book's '_' files too
    rnnlab train seq2seq --generated addition --n 50000 --reverse --peeky --out runs/add
    rnnlab train seq2seq --out runs/add --resume --max-minutes 30   # continue a run exactly

With ``--json`` the last line of stdout is one JSON object with the test figures of the best
model (``exact_match``, ``token_accuracy``, ``bleu``, ``loss``; null for an empty test split,
and ``bleu`` null where most targets are under 4 words), which checkpoint and epoch they come
from (``checkpoint``, ``checkpoint_metric``, ``checkpoint_epoch``; ``valid_*`` are that
epoch's), and ``epochs``, ``wall_s``.

Defaults: a bidirectional GRU-128 encoder, GRU-128 decoder, embedding 32, Luong "general"
attention, Adam lr 3e-3 halved after each epoch whose validation loss gains less than 1e-3
(never below lr / 100), batches of 64.
Without ``--epochs`` training stops after 3 such epochs (at most 40 epochs), or at the
``--max-minutes`` budget; ``--epochs N`` trains exactly N.
"""
from __future__ import annotations

import argparse

from ..train.config import budget_epochs, describe_checkpoint
from ..train.seq2seq import DEFAULT_PATIENCE, SCHEDULES, Seq2SeqConfig, describe_scores, train_seq2seq
from .args import fractions as _fractions
from .train_common import add_run_arguments, run_training


def add_model_arguments(parser) -> None:
    d = Seq2SeqConfig()
    g = parser.add_argument_group("model")
    g.add_argument("--attention", choices=["none", "bahdanau", "luong"], default=d.attention,
                   help=f"default {d.attention}")
    g.add_argument("--score", choices=["dot", "general"], default=d.score,
                   help=f"Luong score function (default {d.score})")
    g.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=d.cell, help=f"default {d.cell}")
    g.add_argument("--layers", type=int, default=d.layers)
    g.add_argument("--hidden", type=int, default=d.hidden, help=f"default {d.hidden}")
    g.add_argument("--emb", type=int, default=d.emb, help=f"embedding size (default {d.emb})")
    g.add_argument("--reverse", action="store_true", help="read the source backwards")
    g.add_argument("--peeky", action="store_true", help="feed the encoder vector to every decoder step")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=d.bidirectional,
                   help=f"bidirectional encoder (default {'on' if d.bidirectional else 'off'}; --no-bidirectional: "
                        f"one way)")
    g.add_argument("--dropout", type=float, default=d.dropout)


def register(ctx) -> None:
    d = Seq2SeqConfig()
    parser = ctx.train.add_parser(
        "seq2seq", parents=[ctx.common], help="train an encoder-decoder (with or without attention)",
        description="Train a seq2seq model on source<TAB>target pairs (Tatoeba format) or generated data.")
    g = parser.add_argument_group("data")
    g.add_argument("--pairs", metavar="FILE", help="TSV of source<TAB>target[<TAB>...] lines (a file without tabs: "
                                                   "the book's fixed-width source_target lines)")
    g.add_argument("--sep", type=separator, help="what separates source and target in the pairs files (tab, or "
                                                 "any string: each line splits at its first one; default: a tab, "
                                                 "or '_' in a file without tabs, as the book's date.txt)")
    g.add_argument("--generated", choices=["dates", "addition", "copy"], help="generated data instead of --pairs")
    g.add_argument("--n", type=int, default=d.n, help="pairs to generate with --generated")
    g.add_argument("--data-seed", type=int, default=d.data_seed, help="seed of generated data and of the split")
    g.add_argument("--valid", metavar="FILE", help="validation pairs (with --test; else --split)")
    g.add_argument("--test", metavar="FILE", help="test pairs")
    g.add_argument("--split", type=_fractions, default=d.split, metavar="TRAIN,VALID,TEST",
                   help="fractions to split --pairs into (default 0.8,0.1,0.1)")
    g.add_argument("--swap", action="store_true", help="the second column is the source")
    g.add_argument("--limit", type=int, help="read at most this many pairs")
    g.add_argument("--level", choices=["char", "word"], default=d.level,
                   help=f"token level of both sides (default {d.level})")
    g.add_argument("--src-level", choices=["char", "word"], help="token level of the source (default --level)")
    g.add_argument("--tgt-level", choices=["char", "word"], help="token level of the target (default --level)")
    g.add_argument("--lower", action="store_true", help="lowercase the text")
    g.add_argument("--max-src-len", type=int,
                   help="drop pairs with a longer source (tokens; --pairs is filtered before splitting)")
    g.add_argument("--max-tgt-len", type=int, help="drop pairs with a longer target (tokens)")
    g.add_argument("--max-line-chars", type=int, default=d.max_line_chars,
                   help="skip (and report) pairs-file lines with a source or target longer than this "
                        "(characters; default %(default)s)")
    g.add_argument("--min-freq", type=int, default=d.min_freq, help="rarer tokens become <unk>")
    g.add_argument("--max-vocab", type=int, help="vocabulary size limit (incl. specials)")
    add_model_arguments(parser)
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"passes over the training pairs (default: until the validation loss "
                                              f"gains less than --min-delta for {DEFAULT_PATIENCE} epochs, at most "
                                              f"{d.epochs}; with --max-minutes: until the budget or early stopping)")
    g.add_argument("--batch", type=int, default=d.batch, help=f"pairs per batch (default {d.batch})")
    g.add_argument("--no-bucket", action="store_true",
                   help="batches of random pairs instead of pairs of similar length (more padding; on small "
                        "tasks with few lengths, such as addition, it trains much faster per epoch)")
    g.add_argument("--optimizer", choices=["adam", "sgd", "adamw"], default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr:g})")
    g.add_argument("--lr-schedule", choices=list(SCHEDULES), default=d.lr_schedule,
                   help="plateau: multiply lr by --lr-decay after an epoch whose validation loss gained less "
                        "than --min-delta (at most down to 1/100 of --lr); step: after every epoch >= "
                        f"--decay-start (default {d.lr_schedule})")
    g.add_argument("--lr-decay", type=float, default=d.lr_decay,
                   help=f"the schedule's factor (default {d.lr_decay:g}; 1: constant)")
    g.add_argument("--decay-start", type=int, default=d.decay_start,
                   help=f"first epoch the step schedule decays after (default {d.decay_start})")
    g.add_argument("--min-delta", type=float, default=d.min_delta,
                   help="gain of the validation loss (per target token) that counts as progress, for the plateau "
                        f"schedule and --patience (default {d.min_delta:g})")
    g.add_argument("--clip", type=float, default=d.clip, help="global gradient-norm clip (0: off)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--beam", type=int, default=d.beam, help="beam width of the final test decoding")
    g.add_argument("--max-decode-len", type=int, help="longest decoded output of every sentence (default: per "
                                                          "sentence 2 x source tokens + 10, at most the longest "
                                                          "training target + 10)")
    g.add_argument("--eval-limit", type=int, help="decode at most this many validation pairs per epoch")
    add_run_arguments(parser, g, score="validation loss", monitor=False)
    parser.set_defaults(func=run)


def separator(text: str) -> str:
    """--sep: "tab" (or a backslash-t) is a tab; any other non-empty string is itself."""
    if text in ("tab", "\\t", "\t"):
        return "\t"
    if not text:
        raise argparse.ArgumentTypeError("the separator is empty")
    return text


def config_from_args(args) -> Seq2SeqConfig:
    if not args.pairs and not args.generated:
        raise ValueError("give --pairs FILE (source<TAB>target lines) or --generated dates|addition")
    epochs, patience = budget_epochs(args.epochs, args.max_minutes, args.patience, Seq2SeqConfig.epochs)
    if args.epochs is None and patience is None:  # the default length: until the loss stops falling
        patience = DEFAULT_PATIENCE
    return Seq2SeqConfig(
        pairs=args.pairs, sep=args.sep, valid=args.valid, test=args.test, generated=args.generated, n=args.n,
        data_seed=args.data_seed, split=tuple(args.split), swap=args.swap, limit=args.limit,
        level=args.level, src_level=args.src_level, tgt_level=args.tgt_level, lower=args.lower,
        max_src_len=args.max_src_len, max_tgt_len=args.max_tgt_len, max_line_chars=args.max_line_chars,
        min_freq=args.min_freq, max_vocab=args.max_vocab, attention=args.attention, score=args.score, cell=args.cell,
        layers=args.layers, emb=args.emb, hidden=args.hidden, reverse=args.reverse, peeky=args.peeky,
        bidirectional=args.bidirectional, dropout=args.dropout,
        epochs=epochs, batch=args.batch,
        bucket=not args.no_bucket,
        optimizer=args.optimizer, lr=args.lr, lr_schedule=args.lr_schedule, lr_decay=args.lr_decay,
        decay_start=args.decay_start, min_delta=args.min_delta,
        clip=args.clip, seed=args.seed, beam=args.beam, eval_limit=args.eval_limit,
        max_decode_len=args.max_decode_len, max_minutes=args.max_minutes, patience=patience,
        checkpoint_every=args.checkpoint_every, progress=False if args.no_progress else None)


def run(args) -> dict:
    result = run_training(args, train_seq2seq, config_from_args)
    for ex in result["examples"]:
        print(f"{ex['source']}  ->  {ex['prediction']}   (reference: {ex['reference']})")
    where = describe_checkpoint(result)
    if result["test_pairs"]:
        print(f"test ({where}): {describe_scores(result)} ({result['test_pairs']} pairs, {result['wall_s']:.1f} s)")
    else:
        print(f"test: no test pairs (the split leaves none), so no test figures; {where}, "
              f"{result['wall_s']:.1f} s")
    return result
