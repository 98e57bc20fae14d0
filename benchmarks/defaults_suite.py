"""Every series set of a folder trained with `rnnlab train classify` given only its files,
against the 1-nearest-neighbour anchors of the same files: the table the defaults are chosen on.

    python benchmarks/defaults_suite.py DATA_DIR [DATA_DIR ...] --out suite.md [--sets A,B] [--json]

Each DATA_DIR holds ``<Name>/<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` (the UCR/UEA archive's
layout). The sets the README's table was measured on come inside two wheels on PyPI, unzipped
anywhere (never into this repository):

    pip download --no-deps aeon==1.6.0 sktime==1.2.0 -d wheels
    unzip -q wheels/aeon-1.6.0-*.whl 'aeon/datasets/data/*' -d sets
    unzip -q wheels/sktime-1.2.0-*.whl 'sktime/datasets/data/PLAID/*' -d sets
    python benchmarks/defaults_suite.py sets/aeon/datasets/data sets/sktime/datasets/data

A row: the set's size (train / test series, classes, longest series, features per step), rnnlab's
test accuracy and wall time (the whole command, one process, its threads as the command sets
them), 1-NN Euclidean and full-window DTW accuracy (``nearest_neighbour.py``), and rnnlab's
accuracy minus the better anchor. Extra flags after ``--`` go to every `rnnlab train classify`
(to compare a candidate default: ``-- --cell lstm``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nearest_neighbour import one_nn_accuracy  # noqa: E402

from rnnlab.data.timeseries import read_ts  # noqa: E402


def find_sets(folders, wanted=None) -> dict:
    """{name: (train, test)} for every ``<Name>/<Name>_TRAIN.ts`` with a ``_TEST.ts`` beside it
    (a classification set: its header says ``@classLabel true``); the first folder wins."""
    sets = {}
    for folder in folders:
        for train in sorted(Path(folder).glob("*/*_TRAIN.ts")):
            name = train.name[:-len("_TRAIN.ts")]
            test = train.with_name(f"{name}_TEST.ts")
            if train.parent.name != name or not test.exists() or name in sets:
                continue
            if wanted and name not in wanted:
                continue
            try:
                if read_ts(train).class_labels is None:
                    continue
            except ValueError:           # a regression set (numeric targets) or not our format
                continue
            sets[name] = (train, test)
    return sets


def describe(train, test) -> dict:
    a, b = read_ts(train), read_ts(test)
    return {"train": len(a.series), "test": len(b.series), "classes": len(a.class_labels),
            "length": max(len(s) for s in a.series + b.series), "features": a.dimensions,
            "anchors": (a, b)}


def train_rnnlab(train, test, extra) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "rnnlab", "train", "classify", "--ts", str(train), "--test", str(test),
                   "--out", str(Path(folder) / "run"), "--json", *extra]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}",
                "wall_s": wall}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"accuracy": result["accuracy"], "wall_s": wall, "epochs": result.get("epochs")}


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--sets", help="comma-separated set names (default: every set found)")
    parser.add_argument("--out", help="write the table (Markdown) here too")
    parser.add_argument("--json", action="store_true", help="the rows as one JSON object on the last line")
    parser.add_argument("--anchors", metavar="FILE.json", help="the 1-NN anchors computed before, by set name and "
                        "file sizes (read, and written with the new ones: DTW takes minutes on the long sets)")
    args, extra = parser.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    sets = find_sets(args.folders, set(args.sets.split(",")) if args.sets else None)
    if not sets:
        print("defaults_suite: no <Name>/<Name>_TRAIN.ts with its _TEST.ts in " + ", ".join(args.folders),
              file=sys.stderr)
        return 2
    header = ("| set | train / test | classes | length x features | rnnlab | wall s | 1-NN ED | 1-NN DTW | "
              "rnnlab - best anchor |\n|---|---|---:|---|---:|---:|---:|---:|---:|")
    lines, rows = [header], []
    anchors = json.loads(Path(args.anchors).read_text(encoding="utf-8")) if args.anchors and \
        Path(args.anchors).exists() else {}
    print(header, flush=True)
    for name, (train, test) in sets.items():
        info = describe(train, test)
        a, b = info.pop("anchors")
        ours = train_rnnlab(train, test, extra)
        key = f"{name}:{train.stat().st_size}:{test.stat().st_size}"
        if key not in anchors:
            anchors[key] = [one_nn_accuracy(a.series, a.labels, b.series, b.labels, d) for d in ("euclidean", "dtw")]
            if args.anchors:
                Path(args.anchors).write_text(json.dumps(anchors, indent=1), encoding="utf-8")
        ed, dtw = anchors[key]
        best = max(v for v in (ed, dtw) if v is not None)
        accuracy = ours.get("accuracy")
        margin = None if accuracy is None else accuracy - best
        row = {"set": name, **info, **ours, "one_nn_euclidean": ed, "one_nn_dtw": dtw, "margin": margin}
        rows.append(row)
        shown = percent(accuracy) if accuracy is not None else f"failed: {ours['error']}"
        line = (f"| {name} | {info['train']} / {info['test']} | {info['classes']} | {info['length']} x "
                f"{info['features']} | {shown} | {ours['wall_s']:.0f} | {percent(ed)} | {percent(dtw)} | "
                f"{'-' if margin is None else f'{100 * margin:+.1f}'} |")
        lines.append(line)
        print(line, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps({"rows": rows, "flags": extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
