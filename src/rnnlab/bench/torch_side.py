"""The PyTorch side: the same network as ``nn.Embedding -> nn.LSTM/GRU -> nn.Linear`` and the
idiomatic training loop (detach the carried state, forward, loss, backward, clip, step), on
the CPU or on CUDA (cuDNN's LSTM/GRU there).
"""
from __future__ import annotations

from .configs import CLIP, INIT, LR, BenchConfig, check_cell


def import_torch():
    """The torch module, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def build_torch_model(torch, cfg: BenchConfig, cell: str = "lstm", seed: int = 0):
    """nn.Embedding -> nn.LSTM/GRU (batch_first, cfg.layers) -> nn.Linear, all U(-0.1, 0.1)."""
    nn = torch.nn
    rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[check_cell(cell)]

    class TorchLM(nn.Module):
        def __init__(self):
            super().__init__()
            # float32 whatever torch's default dtype is (parity tests set float64)
            f32 = {"dtype": torch.float32}
            self.embedding = nn.Embedding(cfg.vocab, cfg.emb, **f32)
            self.rnn = rnn_class(cfg.emb, cfg.hidden, num_layers=cfg.layers, batch_first=True, **f32)
            self.decoder = nn.Linear(cfg.hidden, cfg.vocab, **f32)

        def forward(self, ids, state):
            y, state = self.rnn(self.embedding(ids), state)
            return self.decoder(y), state

    torch.manual_seed(seed)
    model = TorchLM()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-INIT, INIT)
    return model


class TorchRunner:
    """The idiomatic PyTorch loop: detach the carried state, forward, loss, backward, clip, step."""

    def __init__(self, torch, cfg, cell, windows, seed=0, device="cpu"):
        self.torch = torch
        self.device = device
        self.model = build_torch_model(torch, cfg, check_cell(cell), seed).to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.windows = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for x, y in windows]
        self.vocab = cfg.vocab
        self.state = None
        self.k = 0
        self.last_loss = None

    def _next(self):
        x, y = self.windows[self.k % len(self.windows)]
        self.k += 1
        return x, y

    def reset(self):
        self.state = None
        self.k = 0

    def _detached(self):
        s = self.state
        if s is None:
            return None
        return tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()

    def train_step(self):
        torch = self.torch
        x, y = self._next()
        self.model.train()
        logits, self.state = self.model(x, self._detached())
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.last_loss = loss.item()  # a host float, as rnnlab's loss returns (and a sync on a GPU)

    def infer_step(self):
        torch = self.torch
        x, y = self._next()
        self.model.eval()
        with torch.inference_mode():
            logits, self.state = self.model(x, self.state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1))
        self.last_loss = loss.item()
