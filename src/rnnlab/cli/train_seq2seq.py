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

from ..train.config import describe_checkpoint
from ..train.seq2seq import DEFAULT_PATIENCE, Seq2SeqConfig, describe_scores, train_seq2seq
from .train_common import add_trainer_flags, config_fields, run_training


def register(ctx) -> None:
    parser = ctx.train.add_parser(
        "seq2seq", parents=[ctx.common], help="train an encoder-decoder (with or without attention)",
        description="Train a seq2seq model on source<TAB>target pairs (Tatoeba format, or the book's "
                    "source_target files) or generated data.")
    add_trainer_flags(parser, Seq2SeqConfig, with_seeds=False)
    parser.set_defaults(func=run)


def config_from_args(args) -> Seq2SeqConfig:
    if not args.pairs and not args.generated:
        raise ValueError("give --pairs FILE (source<TAB>target lines) or --generated dates|addition")
    fields = config_fields(args)
    if args.epochs is None and fields["patience"] is None:  # the default length: until the loss stops falling
        fields["patience"] = DEFAULT_PATIENCE
    return Seq2SeqConfig(**fields)


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
