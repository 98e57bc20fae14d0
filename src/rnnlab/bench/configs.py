"""The benchmark shapes, the random token windows both sides train on, and the FLOP count.

The model is the word-level language model of Zaremba et al. (2014) without dropout:

    ids (B, T) -> Embedding (V, E) -> N stacked LSTM/GRU (H units, carried state)
               -> Dense (H, V) -> softmax cross-entropy -> backward -> clip (5.0) -> SGD (lr 1)

With G gates (``layers.kinds.GATES``: LSTM 4, GRU 3) and D_l the input size of layer l (E for
the first, H after), the forward pass multiplies

    per layer:  x (BT, D_l) @ W (D_l, GH)   and, T times,  h (B, H) @ U (H, GH)
    decoder:    h (BT, H) @ W_out (H, V)

i.e. ``2 B T (sum_l (D_l G H + H G H) + H V)`` FLOPs, and backward does two multiplies of the
same size for each of these (gradient of the weights and of the input), so a training step
is 3x the forward count. Inference counts the forward pass alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layers.kinds import GATES, cell_kind


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark shape: vocabulary / embedding / hidden / layers / batch / bptt."""

    name: str
    vocab: int
    emb: int
    hidden: int
    layers: int
    batch: int
    bptt: int

    def __post_init__(self):
        for field in ("vocab", "emb", "hidden", "layers", "batch", "bptt"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"BenchConfig {self.name!r}: {field} must be >= 1, got {getattr(self, field)}")


CONFIGS = {
    "ptb-small": BenchConfig("ptb-small", 10000, 200, 200, 2, 20, 35),
    "ptb-medium": BenchConfig("ptb-medium", 10000, 650, 650, 2, 20, 35),
    "char": BenchConfig("char", 65, 128, 512, 2, 64, 100),
    "long-small": BenchConfig("long-small", 50, 64, 64, 1, 32, 1000),
}

CELLS = ("lstm", "gru")   # the kinds with a PyTorch counterpart benchmarked here (nn.LSTM, nn.GRU)
CLIP = 5.0
LR = 1.0
INIT = 0.1
SETTLE_S = 0.2   # seconds of idle before each timed step: the other side's threads stop spinning


def get_config(config) -> BenchConfig:
    """A ``BenchConfig`` from a name in ``CONFIGS``, a dict of its fields, or itself."""
    if isinstance(config, BenchConfig):
        return config
    if isinstance(config, dict):
        return BenchConfig(**{"name": "custom", **config})
    if config not in CONFIGS:
        raise ValueError(f"unknown benchmark config {config!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[config]


def check_cell(cell: str) -> str:
    """The kind name (``layers.kinds.cell_kind``) of a cell the benchmark runs: lstm or gru."""
    kind = cell_kind(cell)
    if kind not in CELLS:
        raise ValueError(f"the benchmark runs cells {list(CELLS)}, not {cell!r}")
    return kind


def matmul_flops(config, cell: str = "lstm", train: bool = True) -> int:
    """Matrix-multiply FLOPs of one step (2 per multiply-add; see the module docstring)."""
    cfg, G = get_config(config), GATES[check_cell(cell)]
    B, T, H, V = cfg.batch, cfg.bptt, cfg.hidden, cfg.vocab
    per_token = sum((cfg.emb if layer == 0 else H) * G * H + H * G * H for layer in range(cfg.layers)) + H * V
    forward = 2 * B * T * per_token
    return 3 * forward if train else forward


def gemm_shapes(cfg: BenchConfig, cell: str, train: bool):
    """(m, k, n, repeat, trans_a) of every multiply in a step, as a fast implementation does them."""
    G = GATES[check_cell(cell)]
    B, T, H, V = cfg.batch, cfg.bptt, cfg.hidden, cfg.vocab
    BT, GH = B * T, G * H
    shapes = []
    for layer in range(cfg.layers):
        D = cfg.emb if layer == 0 else H
        shapes += [(BT, D, GH, 1, False), (B, H, GH, T, False)]  # x @ W;  T x h @ U
        if train:
            shapes += [(D, BT, GH, 1, True),    # dW = x^T dG
                       (BT, GH, D, 1, False),   # dx = dG W^T
                       (H, BT, GH, 1, True),    # dU = h_prev^T dG (all steps at once)
                       (B, GH, H, T, False)]    # T x dh = dG_t U^T
    shapes.append((BT, H, V, 1, False))          # logits = h W_out
    if train:
        shapes += [(H, BT, V, 1, True), (BT, V, H, 1, False)]  # dW_out, dh
    return shapes


def make_windows(cfg: BenchConfig, n_windows: int, seed: int = 0):
    """``n_windows`` consecutive (inputs, targets) windows of (B, T) int64 ids cut from one
    random stream per batch row (targets are the inputs shifted by one), as batchified text."""
    rng = np.random.default_rng(seed)
    B, T = cfg.batch, cfg.bptt
    stream = rng.integers(0, cfg.vocab, size=(B, n_windows * T + 1), dtype=np.int64)
    return [(np.ascontiguousarray(stream[:, k * T:(k + 1) * T]),
             np.ascontiguousarray(stream[:, k * T + 1:(k + 1) * T + 1])) for k in range(n_windows)]
