"""The rnnlab side: the benchmark model and one training / inference step on the next window.

``model="lm"`` is ``models.LanguageModel``; ``model="layers"`` is the same network stacked by
hand from public layers in a ``Sequential`` (Embedding -> ``stateful`` LSTM/GRU layers ->
Dense), so a user's own stack is measured too. Both carry the state from window to window
without backpropagating into it (truncated BPTT).
"""
from __future__ import annotations

from .. import backend
from ..layers.kinds import layer_class
from .configs import CLIP, INIT, LR, BenchConfig, check_cell

MODELS = ("lm", "layers")


def build_rnnlab_model(cfg: BenchConfig, cell: str = "lstm", seed: int = 0, model: str = "lm"):
    """``model="lm"``: ``models.LanguageModel``; ``"layers"``: a ``Sequential`` of public layers."""
    kind = check_cell(cell)
    if model == "lm":
        from ..models.lm import LanguageModel

        return LanguageModel(cfg.vocab, emb=cfg.emb, hidden=cfg.hidden, layers=cfg.layers, cell=kind,
                             dropout=0.0, init_scale=INIT, seed=seed)
    if model == "layers":
        from ..layers import Dense, Embedding
        from ..models import Sequential

        init = f"uniform:{INIT}"
        extra = {"unit_forget_bias": False} if kind == "lstm" else {}
        rnns = [layer_class(kind)(cfg.hidden, return_sequences=True, stateful=True, kernel_initializer=init,
                                  recurrent_initializer=init, bias_initializer=init, seed=seed + 1 + i, **extra)
                for i in range(cfg.layers)]
        return Sequential([Embedding(cfg.vocab, cfg.emb, embeddings_initializer=init, seed=seed), *rnns,
                           Dense(cfg.vocab, kernel_initializer=init, bias_initializer=init,
                                 seed=seed + 1 + cfg.layers)])
    raise ValueError(f"unknown rnnlab benchmark model {model!r}; use one of {list(MODELS)}")


def reset_states(model) -> None:
    """Zero the carried state: ``LanguageModel.reset_states``, or each stateful layer's."""
    if hasattr(model, "reset_states"):
        model.reset_states()
        return
    for layer in model.layers:
        if hasattr(layer, "reset_states"):
            layer.reset_states()


def sync() -> None:
    """Wait for the GPU (CuPy backend): a step's time must include its queued kernels."""
    if backend.backend_name() == "cupy":
        backend.xp.cuda.Device().synchronize()


class RnnlabRunner:
    """One training step / one inference step of the rnnlab model on the next window."""

    def __init__(self, cfg, cell, windows, seed=0, model="lm"):
        from ..losses import SoftmaxCrossEntropy
        from ..optim import SGD, clip_grad_norm

        if backend.floatx() != "float32":
            raise RuntimeError(f"benchmarks run in float32; floatx is {backend.floatx()}")
        xp = backend.xp
        self.model = build_rnnlab_model(cfg, cell, seed, model)
        self.loss = SoftmaxCrossEntropy()
        self.opt = SGD(lr=LR)
        self.windows = [(xp.asarray(x), xp.asarray(y)) for x, y in windows]
        self.k = 0
        self.last_loss = None
        self.clip = clip_grad_norm

    def _next(self):
        x, y = self.windows[self.k % len(self.windows)]
        self.k += 1
        return x, y

    def reset(self):
        reset_states(self.model)
        self.k = 0

    def train_step(self):
        x, y = self._next()
        model = self.model
        self.last_loss = self.loss.forward(model.forward(x), y)
        model.backward(self.loss.backward())
        grads = model.grads
        self.clip(grads, CLIP)
        self.opt.step(model.params, grads)
        sync()

    def infer_step(self):
        x, y = self._next()
        self.last_loss = self.loss.forward(self.model.forward(x), y)
        sync()
