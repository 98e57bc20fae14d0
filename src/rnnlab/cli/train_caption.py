"""``rnnlab train caption``: captioning a fixed feature vector (one-to-many).

    rnnlab train caption --digits --out runs/digits       # composed handwritten digits ($RNNLAB_DATA or downloaded)
    rnnlab train caption --features X.npy --captions captions.txt --out runs/cap

Prints sample captions and the test exact match and token accuracy, greedy and beam; for the
digits ``captions.png`` in the run folder shows test images with their generated captions.
"""
from __future__ import annotations

import argparse

from ..train.caption import CaptionConfig, report, train_caption
from .train_common import add_training_arguments, run_training, training_fields


def register(ctx) -> None:
    d = CaptionConfig()
    parser = ctx.train.add_parser(
        "caption", parents=[ctx.common], help="train a captioner (features in, a word sequence out)",
        description="Train a decoder whose initial state comes from a feature vector: composed digit images "
                    "or any --features X.npy with --captions (one caption per row).")
    g = parser.add_argument_group("data (one source)")
    g.add_argument("--digits", action="store_true", help="images of 1-4 handwritten digits, captioned in words")
    g.add_argument("--n-train", type=int, default=d.n_train, help="composed training images (--digits)")
    g.add_argument("--n-valid", type=int, default=d.n_valid)
    g.add_argument("--n-test", type=int, default=d.n_test)
    g.add_argument("--max-digits", type=int, default=d.max_digits)
    g.add_argument("--features", metavar="X.npy", help="(N, F) float array, one example a row")
    g.add_argument("--captions", metavar="FILE", help="N caption lines (line i captions row i)")
    g.add_argument("--valid-fraction", type=float, default=d.valid_fraction)
    g.add_argument("--test-fraction", type=float, default=d.test_fraction)
    g.add_argument("--data-seed", type=int, default=d.data_seed)
    g = parser.add_argument_group("model")
    g.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=d.cell)
    g.add_argument("--layers", type=int, default=d.layers)
    g.add_argument("--hidden", type=int, default=d.hidden)
    g.add_argument("--emb", type=int, default=d.emb)
    g.add_argument("--feed-features", action=argparse.BooleanOptionalAction, default=d.feed_features,
                   help="also feed the projected features to every step (default: on)")
    g.add_argument("--feed-size", type=int, default=d.feed_size)
    g.add_argument("--encoder", type=int, default=d.encoder, metavar="UNITS",
                   help="a ReLU layer of this width between the features and the decoder (default "
                        "%(default)s; 0: the features reach it through linear projections only)")
    g.add_argument("--dropout", type=float, default=d.dropout,
                   help="dropout on the features and the decoder outputs (default %(default)s)")
    g = parser.add_argument_group("decoding")
    g.add_argument("--beam", type=int, default=d.beam, help="beam width of the final test decoding")
    g.add_argument("--length-penalty", type=float, default=d.length_penalty)
    g.add_argument("--max-decode-len", type=int, help="longest generated caption (default: longest training "
                                                          "caption + 5)")
    add_training_arguments(parser, d)
    parser.set_defaults(func=run)


def config_from_args(args) -> CaptionConfig:
    if args.beam < 1:
        raise ValueError(f"--beam must be at least 1, got {args.beam}")
    return CaptionConfig(
        digits=args.digits, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test,
        max_digits=args.max_digits, features=args.features, captions=args.captions,
        valid_fraction=args.valid_fraction, test_fraction=args.test_fraction, data_seed=args.data_seed,
        emb=args.emb, hidden=args.hidden, layers=args.layers, cell=args.cell, feed_features=args.feed_features,
        feed_size=args.feed_size, encoder=args.encoder, dropout=args.dropout, beam=args.beam,
        length_penalty=args.length_penalty,
        max_decode_len=args.max_decode_len, **training_fields(args, CaptionConfig))


def run(args) -> dict:
    return run_training(args, train_caption, config_from_args, report)
