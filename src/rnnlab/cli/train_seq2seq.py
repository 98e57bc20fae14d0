"""``rnnlab train seq2seq``: train an encoder-decoder on TSV pairs or generated data.

    rnnlab train seq2seq --pairs data.tsv --attention luong --epochs 10 --out runs/s2s
    rnnlab train seq2seq --generated addition --n 50000 --reverse --peeky --out runs/add
    rnnlab train seq2seq --out runs/add --resume --max-minutes 30   # continue a run exactly

With ``--json`` the last line of stdout is one JSON object with the test figures of the best
model (``exact_match``, ``token_accuracy``, ``bleu``, ``loss``; null for an empty test split),
which checkpoint and epoch they come from (``checkpoint``, ``checkpoint_metric``,
``checkpoint_epoch``; ``valid_*`` are that epoch's), and ``epochs``, ``wall_s``.

Defaults (the demo's measured settings): GRU 128, embedding 32, Luong "general" score, Adam lr
3e-3 halved after every epoch from the 3rd, batches of 64. With ``--max-minutes`` and no
``--epochs`` training runs until the budget or early stopping (patience 3) ends it.
"""
from __future__ import annotations

from ..train.config import describe_checkpoint
from ..train.seq2seq import Seq2SeqConfig, train_seq2seq
from .train_common import add_trainer_flags, config_fields, run_training


def register(ctx) -> None:
    parser = ctx.train.add_parser(
        "seq2seq", parents=[ctx.common], help="train an encoder-decoder (with or without attention)",
        description="Train a seq2seq model on source<TAB>target pairs (Tatoeba format) or generated data.")
    add_trainer_flags(parser, Seq2SeqConfig, with_seeds=False)
    parser.set_defaults(func=run)


def config_from_args(args) -> Seq2SeqConfig:
    if not args.pairs and not args.generated:
        raise ValueError("give --pairs FILE (source<TAB>target lines) or --generated dates|addition")
    return Seq2SeqConfig(**config_fields(args))


def run(args) -> dict:
    result = run_training(args, train_seq2seq, config_from_args)
    for ex in result["examples"]:
        print(f"{ex['source']}  ->  {ex['prediction']}   (reference: {ex['reference']})")
    where = describe_checkpoint(result)
    if result["test_pairs"]:
        print(f"test ({where}): exact match {100 * result['exact_match']:.2f}%, token accuracy "
              f"{100 * result['token_accuracy']:.2f}%, BLEU {result['bleu']:.2f} "
              f"({result['test_pairs']} pairs, {result['wall_s']:.1f} s)")
    else:
        print(f"test: no test pairs (the split leaves none), so no test figures; {where}, "
              f"{result['wall_s']:.1f} s")
    return result
