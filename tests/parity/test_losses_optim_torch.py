"""Losses, optimizers, clipping and the plateau schedule against PyTorch, in float64."""
import numpy as np
import pytest

from gradcheck import require_torch
from rnnlab import losses, optim


def _params_and_grads(seed=0, steps=5):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (3,), (2, 5)]
    params = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    return params, grads


OPTIMIZERS = [
    ("SGD", dict(lr=0.1), dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
     dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01), dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
     dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01), dict(lr=0.01)),
    ("AdamW", dict(lr=0.03, weight_decay=0.2), dict(lr=0.03, weight_decay=0.2)),
]


@pytest.mark.parametrize("name,ours_kw,torch_kw", OPTIMIZERS)
def test_optimizer_matches_torch_over_several_steps(name, ours_kw, torch_kw):
    torch = require_torch()
    params, grads_seq = _params_and_grads()
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    topt = getattr(torch.optim, name)(tparams, **torch_kw)
    opt = getattr(optim, name)(**ours_kw)
    for grads in grads_seq:
        opt.step(params, grads)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.tensor(g)
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = require_torch()
    _, grads_seq = _params_and_grads(seed=1, steps=1)
    grads = grads_seq[0]
    tparams = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g.copy())
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    norm = optim.clip_grad_norm(grads, max_norm)
    np.testing.assert_allclose(norm, float(tnorm), rtol=1e-13)
    for g, tp in zip(grads, tparams):
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=1e-13)


def test_reduce_lr_on_plateau_matches_torch():
    torch = require_torch()
    values = [3.0, 2.0, 2.5, 2.4, 2.6, 1.0, 1.5, 1.4, 1.3, 1.2, 1.1, 0.9]
    p = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([p], lr=1.0)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, mode="min", factor=0.5, patience=1,
                                                        threshold=0.0, threshold_mode="abs", min_lr=0.1)
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=0.1)
    for v in values:
        tsched.step(v)
        sched.step(v)
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)


def test_softmax_cross_entropy_matches_torch_with_ignore_index_and_mask():
    torch = require_torch()
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 5, 7)) * 4
    t = rng.integers(0, 7, (3, 5))
    t[1, 2] = -100
    mask = rng.random((3, 5)) > 0.25
    loss = losses.SoftmaxCrossEntropy(ignore_index=-100)
    value = loss.forward(z, t, mask=mask)
    dz = loss.backward()
    tz = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(np.where(mask, t, -100))       # torch has no mask: fold it into ignore_index
    tl = torch.nn.functional.cross_entropy(tz.reshape(-1, 7), tt.reshape(-1), ignore_index=-100)
    tl.backward()
    np.testing.assert_allclose(value, tl.item(), rtol=1e-13)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_sigmoid_bce_and_mse_match_torch():
    torch = require_torch()
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 6)) * 5
    y = rng.random((4, 6))
    bce = losses.SigmoidBCE()
    value = bce.forward(z, y)
    dz = bce.backward()
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.binary_cross_entropy_with_logits(tz, torch.tensor(y))
    tl.backward()
    np.testing.assert_allclose(value, tl.item(), rtol=1e-13)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-12, atol=1e-15)

    mse = losses.MSE()
    value = mse.forward(z, y)
    dz = mse.backward()
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.mse_loss(tz, torch.tensor(y))
    tl.backward()
    np.testing.assert_allclose(value, tl.item(), rtol=1e-13)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-12, atol=1e-15)
