"""``rnnlab ensemble RUN_DIR RUN_DIR ...``: average several trained runs of one task.

    rnnlab ensemble runs/jv0 runs/jv1 runs/jv2            # classify: mean class probabilities
    rnnlab ensemble runs/upos0 runs/upos1 --split valid   # tag: mean tag probabilities per word
    rnnlab ensemble runs/cap0 runs/cap1 runs/cap2 --beam 3   # caption: mean next-word probabilities
    rnnlab ensemble runs/dates0 runs/dates1                  # seq2seq: the same, greedy by default

The runs must share their task and data (``train/ensemble.py``). Prints each run's figures
and the ensemble's on the split; ``--json``: all of them as one JSON object.
"""
from __future__ import annotations


def register(ctx) -> None:
    parser = ctx.commands.add_parser(
        "ensemble", parents=[ctx.common],
        help="evaluate the average of several classify / tag / caption / seq2seq runs",
        description="Average the predicted probabilities of several runs of one task on the same data and "
                    "report the ensemble's figures beside each run's.")
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="run directories of `rnnlab train`")
    parser.add_argument("--split", choices=["valid", "test"], default="test", help="default test")
    parser.add_argument("--beam", type=int, default=None, metavar="K",
                        help="caption: beam width besides greedy (default the first run's; 1: greedy only); "
                             "seq2seq: the beam width (default 1, greedy)")
    parser.set_defaults(func=run)


def run(args) -> dict:
    from ..train.ensemble import evaluate_ensemble, report

    result = evaluate_ensemble(args.run_dirs, split=args.split, beam=args.beam)
    print(report(result))
    return result
