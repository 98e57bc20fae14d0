"""``rnnlab translate RUN_DIR "text" ["text" ...] [--beam K] [--plot FILE.png]``.

Translates each text with the best model of a seq2seq run directory and prints one output per
line; ``--plot`` saves the attention heatmap of the first text (attention models) as a new PNG
file: a name ending in ``.png`` (a folder is refused, as is an existing file unless
``--overwrite``, and any of the run's own files), checked before decoding.

    rnnlab translate runs/dates "september 27, 1994" "6/21/07"
    rnnlab translate runs/ko-en --file sentences.txt     # one source a line (blank lines skipped)
    cat sentences.txt | rnnlab translate runs/ko-en -    # "-" (or --file -): read stdin

A TEXT is always text, never opened as a file. A text longer than the run's ``max_line_chars``
is cut to it (a line on stderr says which); batches stay within the prediction budget
(``data/memory.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..fileio import check_output, split_lines
from ..train.run import input_files
from ..train.seq2seq import translate


def register(ctx) -> None:
    parser = ctx.commands.add_parser(
        "translate", parents=[ctx.common], help="translate text with a trained seq2seq run",
        description="Decode texts with the best checkpoint of a seq2seq run directory.")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("texts", metavar="TEXT", nargs="*", help="source text(s); '-' reads one a line from stdin")
    parser.add_argument("--file", metavar="FILE", help="read source texts from FILE, one a line ('-': stdin)")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    parser.add_argument("--length-penalty", type=float, default=1.0,
                        help="beam score = log p / length ** this (0: plain log p)")
    parser.add_argument("--plot", metavar="FILE.png", help="save the attention heatmap of the first text")
    parser.add_argument("--overwrite", action="store_true", help="replace the --plot file when it exists")
    parser.set_defaults(func=run)


def read_sources(texts, file=None, stdin=None) -> list[str]:
    """The texts to translate: the arguments, with '-' standing for stdin's lines, then the
    lines of ``file`` ('-': stdin). Blank lines are skipped; line ends are dropped."""
    stdin = sys.stdin if stdin is None else stdin
    sources = []
    for text in texts:
        sources.extend(_lines(stdin.read()) if text == "-" else [text])
    if file is not None:
        if file == "-":
            sources.extend(_lines(stdin.read()))
        else:
            path = Path(file)
            if not path.is_file():
                raise FileNotFoundError(f"--file {file}: no such file")
            try:
                sources.extend(_lines(path.read_text(encoding="utf-8")))
            except UnicodeDecodeError as err:
                raise ValueError(f"--file {file} is not valid UTF-8 (byte {err.start})") from err
    return sources


def _lines(text: str) -> list[str]:
    return [line.strip() for line in split_lines(text.lstrip("\ufeff")) if line.strip()]


def run(args) -> dict:
    if args.beam < 1:
        raise ValueError(f"--beam must be at least 1, got {args.beam}")
    if args.plot is not None:
        check_output(args.plot, overwrite=args.overwrite, flag="--plot", suffix=".png",
                     inputs=input_files(args.run_dir))
    sources = read_sources(args.texts, args.file)
    if not sources:
        raise ValueError("nothing to translate: give TEXT arguments, --file FILE, or '-' for stdin")
    results = translate(args.run_dir, sources, beam=args.beam, plot=args.plot,
                        length_penalty=args.length_penalty)
    for r in results:
        print(r["translation"])
    out = {"translations": [{"source": r["source"], "translation": r["translation"]} for r in results],
           "beam": args.beam}
    if args.plot:
        from pathlib import Path

        out["plot"] = str(args.plot) if Path(args.plot).exists() else None  # None: matplotlib missing
    return out
