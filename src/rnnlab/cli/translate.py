"""``rnnlab translate RUN_DIR "text" ["text" ...] [--beam K] [--plot FILE.png]``.

Translates each text with the best model of a seq2seq run directory and prints one output per
line; ``--plot`` saves the attention heatmap of the first text (attention models).
"""
from __future__ import annotations

from ..train.seq2seq import translate


def register(ctx) -> None:
    parser = ctx.commands.add_parser(
        "translate", parents=[ctx.common], help="translate text with a trained seq2seq run",
        description="Decode texts with the best checkpoint of a seq2seq run directory.")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("texts", metavar="TEXT", nargs="+", help="source text(s)")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    parser.add_argument("--length-penalty", type=float, default=1.0,
                        help="beam score = log p / length ** this (0: plain log p)")
    parser.add_argument("--plot", metavar="FILE.png", help="save the attention heatmap of the first text")
    parser.set_defaults(func=run)


def run(args) -> dict:
    if args.beam < 1:
        raise ValueError(f"--beam must be at least 1, got {args.beam}")
    results = translate(args.run_dir, args.texts, beam=args.beam, plot=args.plot,
                        length_penalty=args.length_penalty)
    for r in results:
        print(r["translation"])
    out = {"translations": [{"source": r["source"], "translation": r["translation"]} for r in results],
           "beam": args.beam}
    if args.plot:
        from pathlib import Path

        out["plot"] = str(args.plot) if Path(args.plot).exists() else None  # None: matplotlib missing
    return out
