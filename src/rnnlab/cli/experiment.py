"""``rnnlab experiment NAME [--out DIR] [--seed N] [--size tiny|default|notes] [--json]``.

Runs one experiment of ``rnnlab.experiments`` (or ``all``) and writes ``DIR/report.md`` (for
``all``: ``DIR/NAME/report.md`` for each and ``DIR/index.md``). Prints the answer. ``DIR`` must
be new or empty unless ``--overwrite`` (a run folder's results.json is never replaced unasked).
"""
from __future__ import annotations



def register(ctx) -> None:
    from ..experiments import EXPERIMENTS

    parser = ctx.commands.add_parser(
        "experiment", parents=[ctx.common], help="measure a claim of the notes (tables, plots, an answer)",
        description="Run an experiment that measures a claim about recurrent networks and write a report.")
    parser.add_argument("name", metavar="NAME", choices=[*EXPERIMENTS, "all"],
                        help=f"one of: {', '.join(EXPERIMENTS)}, all")
    parser.add_argument("--out", default=None, help="output folder (default: experiments/NAME)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and weights (default 0)")
    parser.add_argument("--size", choices=["tiny", "default", "notes"], default="default",
                        help="tiny: seconds, for tests; default: the figures the README quotes; notes (attention "
                             "only): the notes' own 45,000 dates and LSTM 256")
    parser.add_argument("--overwrite", action="store_true", help="write into an --out folder that already holds "
                                                                "files (an earlier report: replaced)")
    parser.set_defaults(func=run)


def run(args) -> dict:
    from .. import experiments

    if args.size == "notes" and args.name != "attention":
        raise ValueError(f"--size notes is the attention experiment's only (the notes' dates setup), "
                         f"not {args.name}'s: use tiny or default")
    out = f"experiments/{args.name}" if args.out is None else args.out   # `--out ""` is refused, not defaulted
    if args.name == "all":
        result = experiments.run_all(out, seed=args.seed, size=args.size, overwrite=args.overwrite)
        print(f"wrote {result['index']}")
        for name, figures in result["experiments"].items():
            print(f"{name}: {figures['answer']}")
        return {"index": result["index"],
                "experiments": {name: _summary(f) for name, f in result["experiments"].items()}}
    figures = experiments.run(args.name, out, seed=args.seed, size=args.size, overwrite=args.overwrite)
    print(f"wrote {figures['report']}")
    print(figures["answer"])
    return _summary(figures)


def _summary(figures: dict) -> dict:
    return {key: value for key, value in figures.items() if key not in ("rows", "notes")}
