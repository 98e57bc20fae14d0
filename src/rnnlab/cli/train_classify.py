"""``rnnlab train classify``: sentence or time-series classification (many-to-one).

    rnnlab train classify --tsv train.tsv --valid dev.tsv --test test.tsv --out runs/cls
    rnnlab train classify --sst2 glue --out runs/sst2          # SST-2 by name ($RNNLAB_DATA or downloaded)
    rnnlab train classify --ts TRAIN.ts --test TEST.ts --out runs/ts
    rnnlab train classify --ts-dataset JapaneseVowels --out runs/jv

Prints the test accuracy, macro F1, majority baseline and the confusion matrix (also
``confusion.png`` in the run folder); ``--json``: one JSON object on the last line.
"""
from __future__ import annotations

from ..train.classify import ClassifyConfig, report, train_classify
from .train_common import add_training_arguments, run_training, training_fields


def register(ctx) -> None:
    d = ClassifyConfig()
    parser = ctx.train.add_parser(
        "classify", parents=[ctx.common], help="train a sequence classifier (sentences or time series)",
        description="Train a many-to-one classifier on text<TAB>label files, SST-2, or .ts time series.")
    g = parser.add_argument_group("data (one source)")
    g.add_argument("--tsv", metavar="TRAIN", help="text<TAB>label lines (binary or multi-class)")
    g.add_argument("--sst2", nargs="?", const="sentences", choices=["sentences", "glue"],
                   help="SST-2 from $RNNLAB_DATA/sentiment (else downloaded): Kim's sentences (default) or "
                        "GLUE's phrases")
    g.add_argument("--ts", metavar="TRAIN.ts", help="multivariate time series, sktime/UEA .ts format")
    g.add_argument("--ts-dataset", choices=["JapaneseVowels", "BasicMotions"],
                   help="a UEA dataset from $RNNLAB_DATA/timeseries (else downloaded)")
    g.add_argument("--valid", metavar="FILE", help="validation file (else --valid-fraction of train)")
    g.add_argument("--test", metavar="FILE", help="test file (TSV, or .ts with --ts)")
    g.add_argument("--valid-fraction", type=float, default=d.valid_fraction,
                   help="held out of train without --valid (default: 0.1 of sentences; none of series)")
    g.add_argument("--data-seed", type=int, default=d.data_seed, help="seed of the held-out validation split")
    g.add_argument("--min-freq", type=int, default=d.min_freq, help="rarer words become <unk>")
    g.add_argument("--lowercase", action="store_true")
    g.add_argument("--max-len", type=int, default=ClassifyConfig.max_len,
                   help="cut longer sequences, tokens or frames (reported with their lines; default %(default)s)")
    g.add_argument("--deltas", action="store_true", help="series: append each feature's first difference "
                   "x_t - x_(t-1) as more features (speech's delta coefficients)")
    g.add_argument("--frames-per-step", type=int, default=d.frames_per_step, metavar="K",
                   help="series: read K consecutive frames as one step (default: the fewest that fold the longest "
                        "training series into 64 steps; 1: every frame a step)")
    g = parser.add_argument_group("model")
    g.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=d.cell,
                   help="default: lstm for sentences, gru for series")
    g.add_argument("--layers", type=int, default=d.layers)
    g.add_argument("--hidden", type=int, default=d.hidden, help="default: 128 for sentences, 64 for series")
    g.add_argument("--emb", type=int, default=d.emb, help="word embedding size (text)")
    g.add_argument("--unidirectional", action="store_true", help="a one-way encoder (default: bidirectional)")
    g.add_argument("--pooling", choices=["last", "mean", "max"], default=d.pooling)
    g.add_argument("--dropout", type=float, default=d.dropout, help="between stacked layers and before the "
                   "output layer (default %(default)s)")
    g.add_argument("--input-dropout", type=float, default=d.input_dropout,
                   help="on the word embeddings (or input vectors) (default %(default)s)")
    g.add_argument("--word-dropout", type=float, default=d.word_dropout,
                   help="text: in training, read each word as <unk> with this probability (default %(default)s)")
    add_training_arguments(parser, d)
    parser.set_defaults(func=run)


def config_from_args(args) -> ClassifyConfig:
    return ClassifyConfig(
        tsv=args.tsv, valid=args.valid, test=None if args.ts else args.test, sst2=args.sst2, ts=args.ts,
        ts_test=args.test if args.ts else None, ts_dataset=args.ts_dataset, valid_fraction=args.valid_fraction,
        data_seed=args.data_seed, min_freq=args.min_freq, lowercase=args.lowercase, max_len=args.max_len,
        deltas=args.deltas, frames_per_step=args.frames_per_step, emb=args.emb, hidden=args.hidden, layers=args.layers,
        cell=args.cell,
        bidirectional=not args.unidirectional, pooling=args.pooling, dropout=args.dropout,
        input_dropout=args.input_dropout, word_dropout=args.word_dropout, **training_fields(args, ClassifyConfig))


def run(args) -> dict:
    return run_training(args, train_classify, config_from_args, report)
