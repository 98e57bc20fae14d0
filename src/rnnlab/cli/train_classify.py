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
from .train_common import add_trainer_flags, config_fields, run_training


def register(ctx) -> None:
    parser = ctx.train.add_parser(
        "classify", parents=[ctx.common], help="train a sequence classifier (sentences or time series)",
        description="Train a many-to-one classifier on text<TAB>label files, SST-2, or .ts time series.")
    add_trainer_flags(parser, ClassifyConfig)
    parser.set_defaults(func=run)


def config_from_args(args) -> ClassifyConfig:
    fields = config_fields(args)
    if args.ts:   # --test names the test series of --ts
        fields["ts_test"], fields["test"] = fields["test"], None
    return ClassifyConfig(**fields)


def run(args) -> dict:
    return run_training(args, train_classify, config_from_args, report)
