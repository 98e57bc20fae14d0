"""``rnnlab data dates|addition|copy --n N --seed S [--out FILE] [--format tsv|book]``: write
generated pairs as TSV, or as *Deep Learning from Scratch 2*'s files (``--format book``:
``source_target`` lines padded with spaces to a fixed width, as its date.txt / addition.txt).

Without ``--out`` the pairs go to stdout (one ``source<TAB>target`` line each); an existing
``FILE`` is replaced only with ``--overwrite`` (``fileio.write_output``).
"""
from __future__ import annotations

import sys

from ..data import generated


def register(ctx) -> None:
    parser = ctx.commands.add_parser(
        "data", parents=[ctx.common], help="generate a seeded dataset of pairs (dates, addition) as TSV",
        description="Generate source<TAB>target pairs: dates (human formats -> ISO), addition (16+75 -> 91), "
                    "copy (s -> s).")
    parser.add_argument("task", choices=sorted(generated.GENERATORS))
    parser.add_argument("--n", type=int, default=1000, help="number of pairs (all sources distinct)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", metavar="FILE", help="output TSV file (default: stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE when it exists")
    parser.add_argument("--format", choices=["tsv", "book"], default="tsv",
                        help="tsv: source<TAB>target lines; book: the fixed-width 'source_target' lines of "
                             "Deep Learning from Scratch 2's date.txt / addition.txt (with --out)")
    parser.set_defaults(func=run)


def run(args) -> dict:
    pairs = generated.GENERATORS[args.task](args.n, seed=args.seed)
    if args.format == "book" and not args.out:
        raise ValueError("--format book writes a file: give --out FILE")
    if args.out is not None:   # `--out ""` is refused, not taken for stdout
        write = generated.write_book if args.format == "book" else generated.write_tsv
        write(pairs, args.out, overwrite=args.overwrite)
        print(f"wrote {len(pairs)} {args.task} pairs to {args.out}", file=sys.stderr)
    else:
        for source, target in pairs:
            sys.stdout.write(f"{source}\t{target}\n")
    return {"task": args.task, "n": len(pairs), "seed": args.seed, "out": args.out,
            "first": {"source": pairs[0][0], "target": pairs[0][1]}}
