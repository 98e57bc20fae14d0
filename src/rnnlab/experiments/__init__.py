"""Experiments that measure what the notes claim (``rnnlab experiment NAME``).

    from rnnlab import experiments
    figures = experiments.run("parameter-sharing", out="exp/ps", seed=0, size="tiny")
    experiments.run_all("exp", seed=0, size="default")      # every experiment + exp/index.md

Each experiment is a module with ``QUESTION`` and ``run(out, seed, size) -> dict``: it trains
what it needs (``--size tiny`` in seconds, ``default`` for the figures the README quotes),
writes ``out/report.md`` (question, setup, tables, PNG plots, a one-sentence answer) and
``out/results.json``, and returns its figures. Everything in a report comes from the run that
wrote it and is deterministic under ``seed``.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import sys
import time
from pathlib import Path

EXPERIMENTS = {
    "parameter-sharing": "parameter_sharing",
    "parameter-count": "parameter_count",
    "gradient-flow": "gradient_flow",
    "long-range": "long_range",
    "truncation": "truncation",
    "attention": "attention",
}


def module(name: str):
    """The module of experiment ``name``; a ValueError lists the names that exist."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)} (or 'all')")
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")


def run(name: str, out, seed: int = 0, size: str = "tiny", overwrite: bool = False) -> dict:
    """Run one experiment into folder ``out``; returns its figures plus ``answer`` and ``report``.
    ``out`` must be new or empty unless ``overwrite`` (``fileio.check_output_folder``): an
    experiment writes over nothing it was not asked to, a run's results.json included."""
    from ..fileio import check_output_folder
    from .report import read_answer

    module(name)  # an unknown name is refused before any folder is looked at
    check_output_folder(out, overwrite=overwrite)
    start = time.perf_counter()
    figures = module(name).run(Path(out), seed=seed, size=size)
    figures["answer"] = read_answer(Path(out) / "report.md")
    figures["report"] = str(Path(out) / "report.md")
    figures["wall_s"] = round(time.perf_counter() - start, 1)
    return figures


def run_all(out, seed: int = 0, size: str = "tiny", names=None, overwrite: bool = False) -> dict:
    """Run every experiment into ``out/NAME/`` and write ``out/index.md`` over them (``out``: new
    or empty unless ``overwrite``, as for ``run``)."""
    from ..fileio import atomic_write_text, check_output_folder

    out = check_output_folder(out, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in names or EXPERIMENTS:
        print(f"experiment {name} ...", file=sys.stderr, flush=True)
        results[name] = run(name, out / name, seed=seed, size=size, overwrite=True)  # out was checked above
        print(f"  {results[name]['answer']} ({results[name]['wall_s']} s)", file=sys.stderr, flush=True)
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    lines = ["# What the notes claim, measured", "",
             f"_`rnnlab experiment all --out {out} --seed {seed} --size {size}`, run {date}._", "",
             "| experiment | question | answer | time (s) |", "|---|---|---|---|"]
    for name, figures in results.items():
        question = module(name).QUESTION.replace("|", "/")
        lines.append(f"| [{name}]({name}/report.md) | {question} | {figures['answer'].replace('|', '/')} "
                     f"| {figures['wall_s']} |")
    atomic_write_text(out / "index.md", "\n".join(lines) + "\n")
    return {"index": str(out / "index.md"), "experiments": results}
