"""Figures: training curves and attention heatmaps, written as PNG (matplotlib, Agg backend).

matplotlib is an optional dependency (``pip install 'rnnlab[plot]'``); without it these
functions raise a RuntimeError that says so, and training runs skip their plots with a warning.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise RuntimeError("plotting needs matplotlib: pip install 'rnnlab[plot]'") from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def plot_curves(rows: Sequence[dict], path, keys: Sequence[str] = ("train_loss", "valid_loss"),
                x: str = "epoch", title: str | None = None, ylabel: str | None = None) -> Path:
    """Line plot of ``row[key]`` against ``row[x]`` for each key present in the rows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for key in keys:
        points = [(r[x], r[key]) for r in rows if key in r and x in r and r[key] is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=3, label=key)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or ", ".join(keys))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_attention(weights, source_tokens: Sequence[str], target_tokens: Sequence[str], path,
                   title: str | None = None) -> Path:
    """Heatmap of attention ``weights`` (T_target, T_source): row t is where target token t looked."""
    import numpy as np

    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(f"attention weights of shape {weights.shape} do not match "
                         f"{len(target_tokens)} target and {len(source_tokens)} source tokens")
    plt = _pyplot()
    height = max(3.0, 0.3 * len(target_tokens) + 1.5)
    width = max(4.0, 0.3 * len(source_tokens) + 2.0)
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source_tokens)))
    ax.set_xticklabels(source_tokens, rotation=90)
    ax.set_yticks(range(len(target_tokens)))
    ax.set_yticklabels(target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        # long sentences: wrap the title to the figure's width (about 9 characters an inch)
        ax.set_title(textwrap.fill(title, max(20, int(width * 9))), fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
