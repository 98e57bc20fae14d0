"""The one training loop of the experiments (to be replaced by the project's Trainer).

    history = train(model, batches, loss, optimizer, clip=1.0)

``batches`` yields ``(x, y)`` or ``(x, y, mask)``; for each: logits = model.forward(x),
value = loss.forward(logits, y[, mask]), model.backward(loss.backward()), optional global-norm
clipping, optimizer.step. Returns one dict per step: ``loss``, ``grad_norm`` (before clipping)
and ``update_norm`` (the norm of the change of all parameters that step, so that what clipping
bounds can be measured). A non-finite loss stops the loop (``history[-1]["diverged"] = True``)
rather than raising: an experiment may want to show exactly that.
"""
from __future__ import annotations

import math

from .. import backend
from ..optim import clip_grad_norm


def train(model, batches, loss, optimizer, clip: float | None = None, measure_updates: bool = False) -> list[dict]:
    xp = backend.xp
    history = []
    model.train()
    for batch in batches:
        x, y, *mask = batch
        logits = model.forward(x)
        value = loss.forward(logits, y, *mask)
        if not math.isfinite(value):
            history.append({"loss": value, "grad_norm": math.nan, "update_norm": math.nan, "diverged": True})
            break
        model.backward(loss.backward())
        grad_norm = clip_grad_norm(model.grads, clip)
        before = [p.copy() for p in model.params] if measure_updates else None
        optimizer.step(model.params, model.grads)
        row = {"loss": value, "grad_norm": grad_norm}
        if measure_updates:
            row["update_norm"] = math.sqrt(sum(float(xp.sum((p - b) ** 2)) for p, b in zip(model.params, before)))
        history.append(row)
        if not math.isfinite(grad_norm):
            history[-1]["diverged"] = True
            break
    model.eval()
    return history
