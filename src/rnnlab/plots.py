"""Figures: training curves, attention heatmaps, confusion matrices and captioned images, written
as PNG (matplotlib, Agg backend).

matplotlib is an optional dependency (``pip install 'rnnlab[plot]'``); without it these
functions raise a RuntimeError that says so, and training runs skip their plots with a warning.

Labels in other scripts (Hangul, Chinese characters ...) are drawn with an installed font that
has their glyphs (``glyph_font``: a CJK font where the system has one); when no font has them,
one warning says so (matplotlib's default font would draw empty boxes).
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


# fonts tried first for text the default font cannot draw (the common CJK families)
PREFERRED_FONTS = ("Noto Sans CJK KR", "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans KR", "NanumGothic",
                   "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
                   "Malgun Gothic", "AppleGothic", "Apple SD Gothic Neo", "MS Gothic", "SimHei", "Arial Unicode MS")
_charmaps: dict = {}  # font path -> {code point: glyph index}
_warned_missing = False


def _covers(path: str, chars: set) -> bool:
    """Whether the font at ``path`` draws every character of ``chars``: each is in its character
    map, and distinct characters get distinct glyphs. The second test is what makes the check
    real: a last-resort font (matplotlib ships LastResortHE) maps all of Unicode to one box per
    block, so its character map claims everything while it draws no letter at all."""
    if path not in _charmaps:
        try:
            from matplotlib.ft2font import FT2Font

            _charmaps[path] = dict(FT2Font(path).get_charmap())
        except Exception:  # an unreadable font file is simply not a candidate
            _charmaps[path] = {}
    charmap = _charmaps[path]
    glyphs = [charmap.get(ord(c), 0) for c in chars]
    return 0 not in glyphs and len(set(glyphs)) == len(glyphs)


def glyph_font(texts: Sequence[str], candidates: Sequence[str] | None = None) -> str | None:
    """Path of a font that can draw every character of ``texts``; None when matplotlib's default
    font already can, or when no installed font can (then a warning, once per process).

    ``candidates``: font file paths to try (default: matplotlib's font list, the families of
    ``PREFERRED_FONTS`` first)."""
    global _warned_missing
    import warnings

    from matplotlib import font_manager

    chars = {c for text in texts for c in str(text) if not c.isspace()}
    default = font_manager.findfont(font_manager.FontProperties())
    if _covers(default, chars):
        return None
    if candidates is None:
        entries = font_manager.fontManager.ttflist
        ranked = sorted(entries, key=lambda f: PREFERRED_FONTS.index(f.name) if f.name in PREFERRED_FONTS
                        else len(PREFERRED_FONTS))
        candidates = [f.fname for f in ranked]
    for path in candidates:
        if _covers(path, chars):
            return path
    if not _warned_missing:
        _warned_missing = True
        missing = "".join(sorted(c for c in chars if not _covers(default, {c})))[:20]
        warnings.warn(f"no installed font has glyphs for {missing!r}: plot labels in that script show as empty "
                      f"boxes (install a font that has them: for Korean, Japanese or Chinese the fonts-noto-cjk "
                      f"package, e.g. apt-get install fonts-noto-cjk)", stacklevel=3)
    return None


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
    return save_png(fig, path)


def plot_attention(weights, source_tokens: Sequence[str], target_tokens: Sequence[str], path,
                   title: str | None = None) -> Path:
    """Heatmap of attention ``weights`` (T_target, T_source): row t is where target token t looked."""
    import numpy as np

    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(f"attention weights of shape {weights.shape} do not match "
                         f"{len(target_tokens)} target and {len(source_tokens)} source tokens")
    plt = _pyplot()
    from matplotlib.font_manager import FontProperties

    font_path = glyph_font([*source_tokens, *target_tokens, title or ""])
    font = {"fontproperties": FontProperties(fname=font_path)} if font_path else {}
    height = max(3.0, 0.3 * len(target_tokens) + 1.5)
    width = max(4.0, 0.3 * len(source_tokens) + 2.0)
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source_tokens)))
    ax.set_xticklabels(source_tokens, rotation=90, **font)
    ax.set_yticks(range(len(target_tokens)))
    ax.set_yticklabels(target_tokens, **font)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        # long sentences: wrap the title to the figure's width (about 9 characters an inch)
        ax.set_title(textwrap.fill(title, max(20, int(width * 9))), fontsize=10, **font)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return save_png(fig, path)


def save_png(fig, path, dpi=None) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (``fileio.atomic_write``; the PNG format is
    given, so matplotlib never appends ``.png`` to a name without it), and close it."""
    from .fileio import atomic_write

    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi or "figure"))
    finally:
        _pyplot().close(fig)


def plot_or_warn(plot, *args, **kwargs) -> Path | None:
    """Call a plot function of this module; when it fails (matplotlib missing, a figure too large
    for the memory, a font or disk error), warn and return None instead of raising, so that the
    results computed before it are kept (the numbers behind a figure are written first: to
    results.json, the log, stdout). An interrupt still stops."""
    import warnings

    try:
        return plot(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - any failure of an optional figure: see above
        warnings.warn(f"no figure {kwargs.get('path', args[-1] if args else '')}: {err}", stacklevel=2)
        return None


def plot_confusion_matrix(matrix, labels: Sequence[str], path, title: str | None = None,
                          normalize: bool = True) -> Path:
    """Heatmap of a confusion matrix (rows true, columns predicted), each cell labelled with its
    count; with ``normalize`` the colours are row fractions (recall), so rare classes show. At
    most ``metrics.MAX_SHOWN_CLASSES`` classes (0.45 in a class: 1,000 would need about 8 GB);
    above, ``metrics.top_confusions`` is the table to show."""
    import numpy as np

    from .metrics import MAX_SHOWN_CLASSES

    if len(labels) > MAX_SHOWN_CLASSES:
        raise ValueError(f"a confusion picture of {len(labels)} classes is too large (at most {MAX_SHOWN_CLASSES}): "
                         f"show the most frequent confusions instead (metrics.top_confusions)")
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix of shape {matrix.shape} does not match {len(labels)} labels")
    totals = matrix.sum(axis=1, keepdims=True)
    shade = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0) if normalize else matrix
    plt = _pyplot()
    size = max(3.5, 0.45 * len(labels) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size), dpi=100)
    image = ax.imshow(shade, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    ticks = range(len(labels))
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(label) for label in labels], rotation=90 if len(labels) > 6 else 0)
    ax.set_yticks(ticks)
    ax.set_yticklabels([str(label) for label in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if shade[i, j] > 0.6 * (shade.max() or 1) else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the row" if normalize else "count")
    fig.tight_layout()
    return save_png(fig, path)


def plot_captions(images, captions: Sequence[str], path, references: Sequence[str] | None = None,
                  columns: int = 4, title: str | None = None) -> Path:
    """A grid of images (N, h, w) in grey, each titled with its generated caption (and, when
    given, its reference caption: a wrong caption is drawn in red)."""
    import numpy as np

    images = np.asarray(images, dtype=float)
    if images.ndim != 3 or len(images) != len(captions):
        raise ValueError(f"{len(captions)} captions for images of shape {images.shape} (expected (N, h, w))")
    if references is not None and len(references) != len(captions):
        raise ValueError(f"{len(references)} reference captions for {len(captions)} captions")
    plt = _pyplot()
    n = len(images)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    aspect = images.shape[2] / images.shape[1]
    fig, axes = plt.subplots(rows, columns, figsize=(columns * (1.0 + 0.9 * aspect), rows * 1.9), dpi=100,
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k], cmap="gray_r", vmin=0.0, vmax=max(1.0, float(images[k].max())))
        text = captions[k]
        color = "black"
        if references is not None:
            text = f"{captions[k]}\n(true: {references[k]})" if captions[k] != references[k] else captions[k]
            color = "black" if captions[k] == references[k] else "red"
        ax.set_title(text, fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path)
