"""The report every experiment writes: ``DIR/report.md`` with the question, the setup, tables,
PNG plots and the answer in one sentence.

    report = Report(out, "parameter-count", "Does the formula give the layer's count?")
    report.setup({"units": 32, ...})
    report.table(["layer", "formula", "layer"], rows, caption="...")
    report.plot("counts.png", draw, caption="...")   # draw(plt) -> figure; skipped without matplotlib
    report.answer("Yes: ...")
    report.write()                                   # DIR/report.md

Every figure is drawn from numbers of the same run (the caller passes them in); nothing is
read from an earlier run. Without matplotlib the tables are still written and the report says
which plot was skipped.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import sys
from pathlib import Path

from .. import plots
from ..fileio import atomic_write_text, json_default, split_lines
from ..plots import save_png


def format_cell(value) -> str:
    """A table cell as the reports write it (answers quote figures in the same form)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.2e}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_table(headers, rows) -> str:
    """A GitHub markdown table; floats to 3 decimals (or scientific), ints with thousands commas."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _pyplot():
    """matplotlib.pyplot on the Agg backend (``plots``'s), or None without matplotlib."""
    try:
        return plots._pyplot()
    except RuntimeError:
        return None


def grid_and_legend(axes, fontsize: int = 7) -> None:
    """The finish every experiment's panels share: a light grid and a small legend on each."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=fontsize)


class Report:
    """Collects the parts of one experiment's report and writes them as markdown."""

    def __init__(self, out, name: str, question: str, seed: int, size: str):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.name, self.question, self.seed, self.size = name, question, seed, size
        self.parts: list[str] = []
        self.plots: list[str] = []
        self.the_answer: str | None = None

    def setup(self, settings: dict, text: str = "") -> None:
        lines = ["## Setup", ""] + ([text, ""] if text else [])
        lines += [f"- {key}: {value}" for key, value in settings.items()]
        self.parts.append("\n".join(lines))

    def text(self, paragraph: str) -> None:
        self.parts.append(paragraph)

    def table(self, headers, rows, caption: str = "") -> None:
        self.parts.append((f"**{caption}**\n\n" if caption else "") + markdown_table(headers, rows))

    def plot(self, filename: str, draw, caption: str = "") -> Path | None:
        """Call ``draw(plt)``, which returns a figure, and save it as ``DIR/filename``.

        Without matplotlib nothing is drawn and the report says so (the tables stay)."""
        plt = _pyplot()
        if plt is None:
            self.parts.append(f"_(plot {filename} skipped: matplotlib is not installed; "
                              f"pip install 'rnnlab[plot]')_")
            return None
        path = self.out / filename
        try:
            fig = draw(plt)
            fig.tight_layout()
            save_png(fig, path, dpi=100)
        except Exception as err:  # noqa: BLE001 - a figure that fails costs the figure, not the experiment
            print(f"warning: plot {filename} skipped: {err}", file=sys.stderr)
            self.parts.append(f"_(plot {filename} skipped: {err})_")
            return None
        self.plots.append(filename)
        self.parts.append(f"![{caption or filename}]({filename})" + (f"\n\n_{caption}_" if caption else ""))
        return path

    def answer(self, sentence: str) -> None:
        self.the_answer = sentence

    def write(self, figures: dict | None = None) -> Path:
        """Write ``DIR/report.md`` (and ``DIR/results.json`` with ``figures``); returns the path."""
        if not self.the_answer:
            raise RuntimeError(f"experiment {self.name}: the report has no answer")
        date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
        head = [f"# Experiment: {self.name}", "",
                f"**Question.** {self.question}", "",
                f"**Answer.** {self.the_answer}", "",
                f"_Command: `rnnlab experiment {self.name} --seed {self.seed} --size {self.size}`, "
                f"run {date}._"]
        if figures is not None:  # the numbers first: the report is their text
            atomic_write_text(self.out / "results.json", json.dumps(figures, indent=1, default=json_default) + "\n")
        return atomic_write_text(self.out / "report.md", "\n\n".join(["\n".join(head)] + self.parts) + "\n")


def read_answer(report_path) -> str:
    """The one-sentence answer of a written report."""
    for line in split_lines(Path(report_path).read_text(encoding="utf-8")):
        if line.startswith("**Answer.** "):
            return line[len("**Answer.** "):]
    raise ValueError(f"{report_path}: no '**Answer.**' line")
