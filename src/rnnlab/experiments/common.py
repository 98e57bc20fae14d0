"""What the experiments share: sizes, seeding, small models, accuracy and failure thresholds."""
from __future__ import annotations

import numpy as np

from .. import backend, initializers
from ..layers import Dense
from ..models.base import Sequential
from ..layers.kinds import KINDS, LAYER_NAMES, layer_class
from ..optim import Adam
from .training import train

SIZES = ("tiny", "default")
CELL_LABELS = {kind: LAYER_NAMES[kind] for kind in KINDS}


def pick(size: str, settings: dict) -> dict:
    """``settings[size]`` with a clear error for an unknown size."""
    if size not in settings:
        raise ValueError(f"unknown --size {size!r} for this experiment: use one of {', '.join(settings)}")
    return dict(settings[size])


def seed_everything(seed: int) -> np.random.Generator:
    """Seed the library's default initializer and return a generator for the data."""
    initializers.seed(seed)
    return np.random.default_rng(seed)


def recurrent_model(kind: str, units: int, outputs: int, seed: int, return_sequences: bool = False):
    """Sequential([SimpleRNN|LSTM|GRU(units), Dense(outputs)]): Dense acts on each step's output
    with ``return_sequences``, else on the last state."""
    return Sequential([layer_class(kind)(units, return_sequences=return_sequences, seed=seed),
                       Dense(outputs, seed=seed + 1)])


def one_hot(ids, depth: int):
    """Integer ids (...) -> floatx one-hot (..., depth)."""
    ids = np.asarray(backend.to_numpy(ids))
    out = np.zeros(ids.shape + (depth,), dtype=backend.floatx())
    np.put_along_axis(out, ids[..., None], 1.0, axis=-1)
    return backend.asarray(out)


def minibatch_rows(rng, n: int, batch: int, steps: int) -> list:
    """``steps`` random minibatches as arrays of ``batch`` row indices into ``n`` rows, drawn with
    ``rng`` (one ``rng.integers(n, size=batch)`` per step, in order)."""
    return [rng.integers(n, size=batch) for _ in range(steps)]


def fit(model, loss, arrays, rng, batch: int, steps: int, lr: float = 1e-2, clip: float | None = 1.0):
    """Adam on random minibatches of ``arrays``: the experiments' standard short training."""
    return train(model, minibatch_rows(rng, len(arrays[0]), batch, steps), loss, Adam(lr=lr), clip=clip,
                 arrays=arrays)


def failure_point(xs, accuracies, threshold: float):
    """The first x whose accuracy is below ``threshold`` (None: none failed)."""
    for x, acc in zip(xs, accuracies):
        if acc < threshold:
            return x
    return None
