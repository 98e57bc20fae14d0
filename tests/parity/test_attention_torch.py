"""Attention parity with the same equations written in PyTorch (autograd), float64."""
import numpy as np
import pytest

from gradcheck import require_torch
from rnnlab.layers.attention import BahdanauAttention, LuongAttention


def torch_attention(torch, kind, q, k, mask, params):
    """q (B, T, Hq), k (B, S, Hk), mask (B, S) bool; returns context, weights."""
    if kind == "bahdanau":
        wq, wk, v = params
        scores = torch.tanh((q @ wq).unsqueeze(2) + (k @ wk).unsqueeze(1)) @ v
    elif kind == "dot":
        scores = q @ k.transpose(1, 2)
    else:
        (w,) = params
        scores = q @ w @ k.transpose(1, 2)
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ k, weights


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_attention_matches_torch(float64, kind):
    torch = require_torch()
    rng = np.random.default_rng(0)
    B, T, S, H = 4, 3, 6, 5
    q, k = rng.standard_normal((B, T, H)), rng.standard_normal((B, S, H))
    mask = np.ones((B, S), dtype=bool)
    mask[1, 4:] = False
    mask[3, 1:] = False
    layer = BahdanauAttention(7, seed=1) if kind == "bahdanau" else LuongAttention(kind, seed=1)
    context = layer.forward(q, k, mask)
    weights = layer.attention_weights
    dctx = rng.standard_normal(context.shape)
    dq = layer.backward(dctx)

    tq = torch.tensor(q, requires_grad=True)
    tk = torch.tensor(k, requires_grad=True)
    tparams = [torch.tensor(p, requires_grad=True) for p in layer.params]
    tctx, tweights = torch_attention(torch, kind, tq, tk, torch.tensor(mask), tparams)
    (tctx * torch.tensor(dctx)).sum().backward()

    np.testing.assert_allclose(context, tctx.detach().numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(weights, tweights.detach().numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(dq, tq.grad.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(layer.dkeys, tk.grad.numpy(), rtol=0, atol=1e-9)
    assert len(tparams) == {"bahdanau": 3, "dot": 0, "general": 1}[kind]
    for g, tp in zip(layer.grads, tparams):
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=0, atol=1e-9)
