"""``rnnlab predict RUN_DIR INPUT [INPUT ...]``: apply a trained classifier or tagger.

    rnnlab predict runs/sst2 "a gorgeous, witty film"        # label and class probabilities
    rnnlab predict runs/sst2 reviews.txt                     # one sentence a line (or text<TAB>label)
    rnnlab predict runs/jv test.ts                           # every series of a .ts file
    rnnlab predict runs/upos "The old man the boats ."       # a tag per word

    rnnlab predict runs/jv0 runs/jv1 runs/jv2 test.ts         # an ensemble: probabilities averaged

    cat reviews.txt | rnnlab predict runs/sst2 -               # "-": one sentence a line from stdin

An INPUT that names an existing file is read (``.ts``: series; else one sentence a line); ``-``
reads stdin; anything else, however long, is the text itself; one line on stderr says which
each INPUT was taken as. Run directories given before the inputs (folders holding a
config.json) are averaged as an ensemble (``train/ensemble.py``). ``--json``: the predictions
as one JSON object.

Memory is bounded whatever the inputs: they run in batches of similar length within a budget
(``data/memory.budget_batches``); a classifier's input longer than the run's ``max_len`` is cut
to it, as training cut its data, and a sentence longer than a tagger's ``max_len`` is tagged in
pieces of ``max_len`` words (a unidirectional tagger streams across them); a line on stderr
names the inputs concerned.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from ..data.labeled import parse_texts, read_texts
from ..data.timeseries import read_ts
from ..train.classify import classify
from ..train.run import RunDir
from ..train.tag import tag_sentences


def register(ctx) -> None:
    parser = ctx.commands.add_parser(
        "predict", parents=[ctx.common], help="classify or tag inputs with a trained classify/tag run",
        description="Predict with the best checkpoint of a classify or tag run directory; with several run "
                    "directories before the inputs, with their ensemble (probabilities averaged).")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="more run directories (an ensemble), then text or .ts / TSV / text files")
    parser.set_defaults(func=run)


def _is_file(item: str) -> bool:
    """Whether ``item`` names an existing file (a text too long, or too odd, for a path is not one)."""
    try:
        return Path(item).is_file()
    except (OSError, ValueError):      # ENAMETOOLONG; an embedded NUL
        return False


def _note(msg: str) -> None:
    print(f"rnnlab predict: {msg}", file=sys.stderr)


def read_inputs(inputs) -> tuple[list[str], list[str]]:
    """(texts, where each came from) of the INPUT arguments: ``-`` is stdin's lines, an existing
    file its lines (``read_texts``), anything else the text itself; one line on stderr each says
    which it was taken as."""
    texts, where = [], []
    for n, item in enumerate(inputs, start=1):
        if item == "-":
            lines, numbers = parse_texts(sys.stdin.read(), "stdin")
            _note(f"INPUT {n} '-': {len(lines)} line(s) read from stdin")
            source = "stdin"
        elif _is_file(item):
            lines, numbers = read_texts(item)
            _note(f"INPUT {n}: read the file {item} ({len(lines)} line(s))")
            source = item
        else:
            _note(f"INPUT {n}: not a file, taken as text ({len(item)} characters)")
            texts.append(item)
            where.append(f"INPUT {n}")
            continue
        texts += lines
        where += [f"{source}, line {number}" for number in numbers]
    return texts, where


def read_series(inputs) -> tuple[list, list[str]]:
    """(series, where each came from) of ``.ts`` files."""
    series, where = [], []
    for item in inputs:
        ts = read_ts(item, require_labels=False)
        series += ts.series
        where += [f"{item}, line {number}" for number in ts.lines]
    return series, where


def _split_runs(first: str, rest: list) -> tuple[list, list]:
    """(run directories, inputs): the leading arguments that are run folders are runs."""
    runs, inputs = [first], list(rest)
    while inputs and _is_file(str(Path(inputs[0]) / RunDir.CONFIG)):
        runs.append(inputs.pop(0))
    if not inputs:
        raise ValueError(f"give the inputs to predict after the run directories ({' '.join(runs)})")
    return runs, inputs


def run(args) -> dict:
    config = RunDir(args.run_dir, create=False)
    if not config.config_path.exists():
        raise FileNotFoundError(f"{args.run_dir} is not a run directory (no config.json)")
    runs, inputs = _split_runs(args.run_dir, args.inputs)
    task = config.read_config().get("task")
    if task not in ("tag", "classify"):
        raise ValueError(f"{args.run_dir} is a {task!r} run: rnnlab predict takes classify and tag runs")
    if len(runs) > 1:
        from ..train.ensemble import predict_ensemble

        predict = partial(predict_ensemble, runs)
    else:
        predict = partial(tag_sentences if task == "tag" else classify, args.run_dir)
    if task == "tag":
        texts, where = read_inputs(inputs)
        results = predict(texts, where=where)
        for r in results:
            print(" ".join(f"{w}/{t}" for w, t in zip(r["words"], r["tags"])))
        return {"predictions": results}
    if any(str(item).endswith(".ts") for item in inputs):
        series, where = read_series(inputs)
        results = predict(series=series, where=where)
    else:
        texts, where = read_inputs(inputs)
        results = predict(texts=texts, where=where)
    for r in results:
        probs = ", ".join(f"{label} {p:.3f}" for label, p in r["probabilities"].items())
        print(f"{r['label']}\t{r['input']}\t({probs})")
    return {"predictions": results}
