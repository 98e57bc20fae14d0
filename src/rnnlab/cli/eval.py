"""``rnnlab eval RUN_DIR``: evaluate a trained model (language model or seq2seq).

    rnnlab eval runs/ptb-small --split test          # perplexity, loss, tokens
    rnnlab eval runs/shakespeare --text other.txt    # + bits per character for char models
    rnnlab eval runs/dates --pairs test.tsv --beam 5 # seq2seq: exact match, token accuracy, BLEU

The kind of run is read from RUN_DIR/config.json ("task"). Every report names the checkpoint
it read (``checkpoint``: best by ``checkpoint_metric``, or last) and its ``checkpoint_epoch``;
a split with nothing to measure gives null figures. Progress bars only on a terminal.
"""
from __future__ import annotations


def register(ctx) -> None:
    p = ctx.commands.add_parser("eval", parents=[ctx.common], help="evaluate a trained model on a split or a file")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `rnnlab train`")
    p.add_argument("--split", choices=["train", "valid", "test"], default="test",
                   help="split of the run's own corpus (default test)")
    p.add_argument("--text", metavar="FILE", help="language model: evaluate on this UTF-8 text instead")
    p.add_argument("--pairs", metavar="FILE", help="seq2seq: evaluate on these TSV pairs instead")
    p.add_argument("--beam", type=int, default=None, metavar="K", help="seq2seq: beam width (default greedy)")
    p.add_argument("--length-penalty", type=float, default=None, help="seq2seq: beam length normalization")
    p.add_argument("--batch", type=int, default=None, help="language model: parallel streams (default the run's)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from ..train.loop import RunDir

    task = RunDir(args.run_dir, create=False).read_config().get("task")
    if task == "seq2seq":
        from ..train.seq2seq import describe_scores, evaluate_run

        if args.text is not None or args.batch is not None:
            raise ValueError(f"{args.run_dir} is a seq2seq run: --text and --batch are for language models")
        result = evaluate_run(args.run_dir, pairs=args.pairs, split=args.split, beam=args.beam or 1,
                              length_penalty=args.length_penalty or 1.0, checkpoint=args.checkpoint)
        if not result["n"]:
            print(f"0 pairs from {result['pairs']}: nothing to measure (figures null); {_source(result)}")
            return result
        print(f"{result['n']} pairs from {result['pairs']}: {describe_scores(result)}, loss {result['loss']:.4f}; "
              f"{_source(result)}")
        return result
    if task != "lm":
        raise ValueError(f"{args.run_dir}/config.json names task {task!r}: expected 'lm' or 'seq2seq'")
    if args.pairs is not None or args.beam is not None or args.length_penalty is not None:
        raise ValueError(f"{args.run_dir} is a language model: --pairs, --beam and --length-penalty are "
                         f"for seq2seq runs")
    from ..train.lm import evaluate_lm

    result = evaluate_lm(args.run_dir, split=args.split, text=args.text, batch=args.batch,
                         checkpoint=args.checkpoint, progress=False if args.no_progress else None)
    if result["loss"] is None:
        print(f"{result['split']}: no tokens to predict (figures null); {_source(result)}")
        return result
    line = f"{result['split']}: perplexity {result['perplexity']:.2f}, loss {result['loss']:.4f} nats"
    if "bits_per_char" in result:
        line += f", {result['bits_per_char']:.3f} bits/char"
    print(line + f" over {result['tokens']:,} tokens; {_source(result)}")
    return result


def _source(result: dict) -> str:
    """Which checkpoint the figures come from: "best checkpoint by valid_loss, epoch 3"."""
    from ..train.config import describe_checkpoint

    return describe_checkpoint(result)
