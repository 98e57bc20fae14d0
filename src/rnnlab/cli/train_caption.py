"""``rnnlab train caption``: captioning a fixed feature vector (one-to-many).

    rnnlab train caption --digits --out runs/digits       # composed handwritten digits ($RNNLAB_DATA or downloaded)
    rnnlab train caption --features X.npy --captions captions.txt --out runs/cap

Prints sample captions and the test exact match and token accuracy, greedy and beam; for the
digits ``captions.png`` in the run folder shows test images with their generated captions.
"""
from __future__ import annotations

from ..train.caption import CaptionConfig, report, train_caption
from .train_common import add_trainer_flags, config_fields, run_training


def register(ctx) -> None:
    parser = ctx.train.add_parser(
        "caption", parents=[ctx.common], help="train a captioner (features in, a word sequence out)",
        description="Train a decoder whose initial state comes from a feature vector: composed digit images "
                    "or any --features X.npy with --captions (one caption per row).")
    add_trainer_flags(parser, CaptionConfig)
    parser.set_defaults(func=run)


def config_from_args(args) -> CaptionConfig:
    return CaptionConfig(**config_fields(args))


def run(args) -> dict:
    return run_training(args, train_caption, config_from_args, report)
