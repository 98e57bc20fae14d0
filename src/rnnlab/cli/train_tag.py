"""``rnnlab train tag``: part-of-speech tagging (many-to-many, one output per word).

    rnnlab train tag --conllu train.conllu --valid dev.conllu --test test.conllu --out runs/pos
    rnnlab train tag --ud-ewt --out runs/upos                       # UD English EWT ($RNNLAB_DATA or downloaded)
    rnnlab train tag --ud-ewt --unidirectional --out runs/stream    # a streaming tagger

Prints the test accuracy overall, on unseen words and per tag, the majority baseline and, for a
unidirectional tagger, whether streaming word by word gives the tags of the whole sentence.
"""
from __future__ import annotations

from ..train.tag import TagConfig, report, train_tag
from .train_common import add_trainer_flags, config_fields, run_training


def register(ctx) -> None:
    parser = ctx.train.add_parser(
        "tag", parents=[ctx.common], help="train a part-of-speech tagger (CoNLL-U, UPOS)",
        description="Train a word + character BiLSTM tagger (or a one-way streaming one) on CoNLL-U files.")
    add_trainer_flags(parser, TagConfig)
    parser.set_defaults(func=run)


def config_from_args(args) -> TagConfig:
    return TagConfig(**config_fields(args))


def run(args) -> dict:
    return run_training(args, train_tag, config_from_args, report)
