"""``rnnlab predict RUN_DIR INPUT [INPUT ...]``: apply a trained classifier or tagger.

    rnnlab predict runs/sst2 "a gorgeous, witty film"        # label and class probabilities
    rnnlab predict runs/sst2 reviews.txt                     # one sentence a line (or text<TAB>label)
    rnnlab predict runs/jv test.ts                           # every series of a .ts file
    rnnlab predict runs/upos "The old man the boats ."       # a tag per word

    rnnlab predict runs/jv0 runs/jv1 runs/jv2 test.ts         # an ensemble: probabilities averaged

An INPUT that names an existing file is read (``.ts``: series; else one sentence a line);
otherwise it is the text itself. Run directories given before the inputs (folders holding a
config.json) are averaged as an ensemble (``train/ensemble.py``). ``--json``: the predictions
as one JSON object.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from ..data.labeled import read_texts
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


def _texts(inputs) -> list[str]:
    texts = []
    for item in inputs:
        texts += read_texts(item)[0] if Path(item).is_file() else [item]
    return texts


def _split_runs(first: str, rest: list) -> tuple[list, list]:
    """(run directories, inputs): the leading arguments that are run folders are runs."""
    runs, inputs = [first], list(rest)
    while inputs and (Path(inputs[0]) / RunDir.CONFIG).is_file():
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
        results = predict(_texts(inputs))
        for r in results:
            print(" ".join(f"{w}/{t}" for w, t in zip(r["words"], r["tags"])))
        return {"predictions": results}
    if any(str(item).endswith(".ts") for item in inputs):
        results = predict(series=[s for item in inputs for s in read_ts(item, require_labels=False).series])
    else:
        results = predict(texts=_texts(inputs))
    for r in results:
        probs = ", ".join(f"{label} {p:.3f}" for label, p in r["probabilities"].items())
        print(f"{r['label']}\t{r['input']}\t({probs})")
    return {"predictions": results}
