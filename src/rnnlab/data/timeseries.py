"""Multivariate time series in the sktime / UEA ``.ts`` text format, for classification.

A ``.ts`` file is a header of ``@`` lines, then ``@data``, then one series a line::

    # comments start with '#' (or '%', as some archive files written from ARFF do)
    @problemName BasicMotions
    @timeStamps false          (true: values written as (t,v) pairs; not supported here)
    @missing false
    @univariate false
    @dimensions 6
    @equalLength true
    @seriesLength 100
    @classLabel true Standing Running Walking Badminton
    @data
    v,v,v,...:v,v,v,...:...:Standing

Dimensions are separated by ``:``, values by ``,``; the class label comes last; ``?`` is a
missing value (read as NaN). Every dimension of one series has the same length here (the
frames of one utterance); series of one file may differ in length (``@equalLength false``).

``read_ts(path)`` returns a ``TsFile`` of (T, D) float64 arrays; a malformed header or data line
is a ValueError naming the file and line (also a ``@classLabel`` naming a class twice, and a
value beyond the float range, such as 1e400 or inf). ``standardization(series)`` gives the per-feature
mean and standard deviation over every real (non-NaN) step of the training series;
``apply_standardization`` uses them (missing values become 0, the training mean).
``with_deltas`` appends each feature's first difference, x_t - x_{t-1} (0 at the first step), as
D more features: the "delta" coefficients of speech recognition (Furui 1986), which give a
small model the local slope of every coefficient as an input rather than something it must
learn to compute from two steps (JapaneseVowels: README, "Task shapes on real data").
``fold_frames`` reads k consecutive frames as one step of k D features, so that a long series
becomes a short sequence: a recurrent layer carries what it learns across 64 steps far better than
across 1,000 (the vanishing gradient; the defaults suite, README "Defaults", measured it), and each
step's product is one GEMM over k frames instead of k small ones. ``SERIES_STEPS`` is the number
of steps the longest training series is folded into when the classifier's ``frames_per_step`` is
left to its default.
``load_ts_classification`` reads train / test (/ valid) files into a ``ClassificationData``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import split_lines
from .corpora import DataError, read_text
from .labeled import ClassificationData, ClassSplit, find_data, label_ids, split_off
from .padding import cap_lengths, describe_cut

_BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength")
STANDARDIZED_MAX = float(np.finfo(np.float32).max)   # a standardized value beyond it is refused
SERIES_STEPS = 64      # the automatic folding: the longest training series becomes at most this many steps
SCALE_SPREAD = 1000.0  # the automatic per-series scaling: when the training series' amplitudes spread wider


@dataclass
class TsFile:
    """The series (list of (T, D) float64), their label strings, 1-based lines, and header facts."""

    series: list
    labels: list
    lines: list
    class_labels: list | None
    problem: str | None
    dimensions: int
    source: str


def _bool(value: str, path, number, tag) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"{path}, line {number}: @{tag} must be true or false, got {value.strip()!r}")
    return v == "true"


def read_ts(path, require_labels: bool = True) -> TsFile:
    """Parse a ``.ts`` classification file (see the module docstring). With
    ``require_labels=False`` (series to classify) ``@classLabel false`` is accepted, and then
    the lines hold the dimensions only and ``labels`` are None."""
    path = Path(path)
    lines = split_lines(read_text(path))
    header: dict = {}
    class_labels = None
    data_start = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "%")):
            continue
        if not line.startswith("@"):
            raise ValueError(f"{path}, line {number}: expected a header line (@...) or @data before the "
                             f"series, got {line[:40]!r}")
        tag, _, value = line[1:].partition(" ")
        tag = tag.lower()
        if tag == "data":
            data_start = number
            break
        if tag == "problemname":
            header["problem"] = value.strip()
        elif tag in _BOOLEAN_TAGS:
            header[tag] = _bool(value, path, number, tag)
        elif tag in ("dimensions", "serieslength"):
            try:
                header[tag] = int(value)
                if header[tag] < 1:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{path}, line {number}: @{tag} must be a positive integer, got "
                                 f"{value.strip()!r}") from None
        elif tag == "classlabel":
            parts = value.split()
            if not parts or parts[0].lower() not in ("true", "false"):
                raise ValueError(f"{path}, line {number}: @classLabel must be 'true <labels...>' or 'false', "
                                 f"got {value.strip()!r}")
            if parts[0].lower() == "true":
                if len(parts) < 2:
                    raise ValueError(f"{path}, line {number}: @classLabel true lists no labels")
                class_labels = parts[1:]
                twice = next((name for k, name in enumerate(class_labels) if name in class_labels[:k]), None)
                if twice is not None:
                    raise ValueError(f"{path}, line {number}: @classLabel lists the label {twice!r} twice: "
                                     f"two classes cannot share a name")
            header["classlabel"] = parts[0].lower() == "true"
        elif tag == "targetlabel":
            raise ValueError(f"{path}, line {number}: @targetLabel (regression) is not supported: "
                             f"rnnlab reads classification .ts files")
        else:
            raise ValueError(f"{path}, line {number}: unknown header tag @{tag}")
    if data_start is None:
        raise ValueError(f"{path}: no @data line: not a .ts file, or its header is incomplete")
    labelled = bool(header.get("classlabel"))
    if not labelled and require_labels:
        raise ValueError(f"{path}, line {data_start}: the header has no '@classLabel true ...': rnnlab "
                         f"needs class labels")
    if header.get("timestamps"):
        raise ValueError(f"{path}: @timeStamps true is not supported (write the values without time stamps)")
    dims = header.get("dimensions", 1 if header.get("univariate") else None)
    if header.get("univariate") and dims not in (None, 1):
        raise ValueError(f"{path}: @univariate true but @dimensions {dims}")
    fixed_length = header.get("serieslength") if header.get("equallength") else None

    series, labels, numbers = [], [], []
    for number in range(data_start + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if not line or line.startswith(("#", "%")):
            continue
        parts = line.split(":")
        if labelled and len(parts) < 2:
            raise ValueError(f"{path}, line {number}: expected dimensions separated by ':' and a class "
                             f"label last, got {line[:40]!r}")
        *dim_texts, label = parts if labelled else (*parts, None)
        label = label.strip() if labelled else None
        if labelled and label not in class_labels:
            raise ValueError(f"{path}, line {number}: label {label!r} is not among the @classLabel labels "
                             f"({' '.join(class_labels)})")
        if dims is None:
            dims = len(dim_texts)
        if len(dim_texts) != dims:
            raise ValueError(f"{path}, line {number}: {len(dim_texts)} dimensions, the header says {dims}")
        columns = []
        for k, text in enumerate(dim_texts):
            try:
                values = [math.nan if v.strip() == "?" else float(v) for v in text.split(",")]
            except ValueError:
                bad = next(v for v in text.split(",") if not _is_number(v))
                raise ValueError(f"{path}, line {number}: dimension {k + 1}: {bad.strip()[:20]!r} is not a "
                                 f"number (or ? for missing)") from None
            if not all(math.isfinite(v) or v != v for v in values):   # NaN (v != v): a '?'
                bad = next(v for v in text.split(",") if math.isinf(float(v)) and v.strip() != "?")
                raise ValueError(f"{path}, line {number}: dimension {k + 1}: {bad.strip()[:20]!r} is not a finite "
                                 f"number (beyond the float range)")
            columns.append(values)
        lengths = {len(c) for c in columns}
        if len(lengths) != 1:
            raise ValueError(f"{path}, line {number}: the dimensions have different lengths "
                             f"{[len(c) for c in columns]}")
        if fixed_length is not None and lengths != {fixed_length}:
            raise ValueError(f"{path}, line {number}: series of length {lengths.pop()}, the header says "
                             f"@seriesLength {fixed_length}")
        series.append(np.asarray(columns, dtype=np.float64).T.copy())   # (T, D)
        labels.append(label)
        numbers.append(number)
    if not series:
        raise DataError(f"{path} holds no series after @data")
    return TsFile(series, labels, numbers, class_labels, header.get("problem"), int(dims), str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text.strip() == "?"


def standardization(series) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (D,) over every non-NaN step of ``series``
    (a constant feature gets std 1, so it maps to 0 rather than to inf).

    They are computed on each feature divided by a power of two near its largest magnitude,
    then scaled back: the same bits as without the scaling (a power of two divides
    and multiplies exactly), but a value near the float range (1e308) cannot overflow the sums
    and silently turn its feature's std into inf (which standardizes it to 0)."""
    stacked = np.concatenate([np.asarray(s, dtype=np.float64) for s in series], axis=0)
    magnitude = np.nanmax(np.abs(stacked), axis=0, initial=0.0, where=~np.isnan(stacked))
    if not np.isfinite(magnitude).all():
        raise ValueError(f"feature {int(np.flatnonzero(~np.isfinite(magnitude))[0]) + 1} holds an infinite value")
    scale = np.ldexp(1.0, np.frexp(magnitude)[1] - 1)     # magnitude / scale in [1, 2): no overflow at 1e308
    scaled = stacked / scale
    mean = np.nanmean(scaled, axis=0) * scale
    std = np.nanstd(scaled, axis=0) * scale
    std[~(std > 1e-12)] = 1.0
    mean[np.isnan(mean)] = 0.0
    return mean, std


def with_deltas(series, where=None) -> list[np.ndarray]:
    """Each (T, D) series -> (T, 2 D): the series, then its first differences d_0 = 0,
    d_t = x_t - x_{t-1} (a missing value makes the differences beside it missing too). A
    difference beyond the float range (values near +-1e308 of both signs) is a ValueError
    naming the series (by ``where``: one description each, default "series N"), step and
    feature."""
    out = []
    for i, s in enumerate(series):
        s = np.asarray(s, dtype=np.float64)
        d = np.zeros_like(s)
        with np.errstate(over="ignore"):
            d[1:] = s[1:] - s[:-1]
        if np.isinf(d).any():
            t, k = np.argwhere(np.isinf(d))[0]
            raise ValueError(f"{_series_name(where, i)}, step {t + 1}, feature {k + 1}: the difference from the step "
                             f"before is beyond the float range")
        out.append(np.concatenate([s, d], axis=1))
    return out


def amplitude_spread(series) -> float:
    """How far the amplitudes of ``series`` spread: per feature, the 95th over the 5th percentile
    of the series' standard deviations; the largest over the features (1.0: all alike)."""
    stds = np.array([np.nanstd(np.asarray(s, dtype=np.float64), axis=0) for s in series])
    stds = np.nan_to_num(stds, nan=0.0)
    low, high = np.percentile(stds, 5, axis=0), np.percentile(stds, 95, axis=0)
    return float(np.max(high / np.maximum(low, 1e-300)))


def needs_series_scale(series) -> bool:
    """Whether series whose amplitudes spread over more than three decades (``SCALE_SPREAD``)
    are there: one mean and std for all of them would flatten the quiet ones to a constant."""
    return amplitude_spread(series) > SCALE_SPREAD


def with_series_scale(series) -> list[np.ndarray]:
    """Each (T, D) series -> (T, 3 D): every feature standardized within its own series, then the
    series' mean and log10 of its std per feature as constant features, so its shape and its
    scale both reach the model whatever the scale (a constant feature: 0, and std 1e-300)."""
    out = []
    for s in series:
        s = np.asarray(s, dtype=np.float64)
        with np.errstate(invalid="ignore"):      # an all-missing feature: mean and std NaN, read as 0 later
            mean, std = np.nanmean(s, axis=0), np.nanstd(s, axis=0)
        safe = np.where(std > 0, std, 1.0)
        z = (s - mean) / safe
        constant = np.broadcast_to(np.concatenate([mean, np.log10(np.maximum(std, 1e-300))]), (len(s), 2 * s.shape[1]))
        out.append(np.concatenate([z, constant], axis=1))
    return out


def frames_per_step_for(longest: int, steps: int = SERIES_STEPS) -> int:
    """The fewest frames per step that fold a series of ``longest`` frames into ``steps`` steps."""
    return max(1, math.ceil(longest / steps))


def fold_frames(series, k: int) -> list[np.ndarray]:
    """Each (T, D) series -> (ceil(T / k), k D): frames t k ... t k + k - 1 side by side in step t.
    The last step's frames past the end are 0 (the training mean, once standardized)."""
    if k == 1:
        return list(series)
    out = []
    for s in series:
        steps = math.ceil(len(s) / k)
        padded = np.zeros((steps * k, s.shape[1]), dtype=s.dtype)
        padded[:len(s)] = s
        out.append(padded.reshape(steps, k * s.shape[1]))
    return out


def apply_standardization(series, mean, std, where=None) -> list[np.ndarray]:
    """(x - mean) / std for each series; a missing value (NaN) becomes 0. Halves are
    subtracted (exactly the same result) so that values of opposite sign near the float range
    do not overflow; a value that still lands beyond the float range is a ValueError naming
    the series (as ``with_deltas``), step and feature; so is one beyond float32's range
    (``STANDARDIZED_MAX``: the model would read it as inf and answer NaN)."""
    out = []
    for i, s in enumerate(series):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != mean.size:
            raise ValueError(f"expected a series of shape (time, {mean.size}), got {s.shape}")
        with np.errstate(over="ignore"):
            z = (s / 2 - mean / 2) / (std / 2)
        beyond = np.abs(z) > STANDARDIZED_MAX
        if beyond.any():
            t, k = np.argwhere(beyond)[0]
            raise ValueError(f"{_series_name(where, i)}, step {t + 1}, feature {k + 1}: {s[t, k]:g} is beyond the "
                             f"float32 range once standardized (training mean {mean[k]:g}, std {std[k]:g})")
        z[np.isnan(z)] = 0.0
        out.append(z)
    return out


def _lines(ts: TsFile) -> list[str]:
    return [f"{ts.source}, line {number}" for number in ts.lines]


def _series_name(where, i: int) -> str:
    return where[i] if where is not None else f"series {i + 1}"


def load_ts_classification(train, test=None, valid=None, max_len: int | None = None,
                           valid_fraction: float = 0.0, seed: int = 0, deltas: bool = False,
                           frames_per_step: int | None = 1, series_scale: bool | None = False) -> ClassificationData:
    """Train / (valid) / test ``.ts`` files -> standardized ``ClassificationData`` (kind "series").

    Class names come from the training file's ``@classLabel`` list (its order); the mean and
    std from the training series only. ``valid_fraction`` holds out part of train when no
    valid file is given. ``deltas``: every series gets its first differences appended
    (``with_deltas``) before the statistics are taken and applied. ``frames_per_step``: k frames
    read as one step (``fold_frames``, after standardizing); None folds the longest training
    series into ``SERIES_STEPS`` steps. ``max_len`` caps the steps, after folding.
    ``series_scale``: each series standardized on its own, its scale kept as features
    (``with_series_scale``, first of all); None: when the training series need it
    (``needs_series_scale``).
    """
    train_file = read_ts(train)
    names = list(train_file.class_labels)
    if frames_per_step is None:
        frames_per_step = frames_per_step_for(max(len(s) for s in train_file.series))
    if series_scale is None:
        series_scale = needs_series_scale(train_file.series)

    def features(ts: TsFile) -> list:
        series = with_series_scale(ts.series) if series_scale else ts.series
        return with_deltas(series, _lines(ts)) if deltas else series
    mean, std = standardization(features(train_file))
    notes = []

    def make(ts: TsFile | None):
        if ts is None:
            return None
        if ts.dimensions != train_file.dimensions:
            raise ValueError(f"{ts.source}: {ts.dimensions} dimensions, but the training file "
                             f"{train_file.source} has {train_file.dimensions}")
        series = fold_frames(apply_standardization(features(ts), mean, std, _lines(ts)), frames_per_step)
        note = describe_cut(cap_lengths(series, max_len, ts.lines, ts.source), ts.source, max_len or 0)
        if note:
            notes.append(note)
        return ClassSplit(series, label_ids(ts.labels, names, ts.source, ts.lines), list(ts.lines), ts.source)

    train_split = make(train_file)
    valid_split = make(read_ts(valid)) if valid is not None else None
    if valid_split is None and valid_fraction > 0:
        train_split, valid_split = split_off(train_split, valid_fraction, seed)
    test_split = make(read_ts(test)) if test is not None else None
    if frames_per_step > 1:
        notes.append(f"{train_file.source}: {frames_per_step} frames read as one step (the longest training "
                     f"series, {max(len(s) for s in train_file.series)} frames, in "
                     f"{math.ceil(max(len(s) for s in train_file.series) / frames_per_step)} steps)")
    if series_scale:
        notes.append(f"{train_file.source}: each series standardized on its own, its mean and log10 std kept as "
                     f"features (amplitudes spread {amplitude_spread(train_file.series):.3g}x)")
    return ClassificationData(train_split, valid_split, test_split, names, "series", mean=mean, std=std,
                              notes=notes, deltas=deltas, frames_per_step=frames_per_step,
                              series_scale=series_scale)


def load_ts_dataset(name: str, path=None, max_len: int | None = None, valid_fraction: float = 0.0,
                    seed: int = 0, deltas: bool = False, frames_per_step: int | None = 1,
                    series_scale: bool | None = False) -> ClassificationData:
    """A UEA dataset by name from ``$RNNLAB_DATA/timeseries/<name>/<name>_{TRAIN,TEST}.ts``
    (JapaneseVowels, BasicMotions in this workplace)."""
    folder = find_data(f"timeseries/{name}", path)
    return load_ts_classification(folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts", max_len=max_len,
                                  valid_fraction=valid_fraction, seed=seed, deltas=deltas,
                                  frames_per_step=frames_per_step, series_scale=series_scale)
