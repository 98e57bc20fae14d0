"""Optimizers, clipping and schedules: update rules by hand, state round trips, conventions."""
import math

import numpy as np
import pytest

from rnnlab import optim


def _problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)]
    grads_seq = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(6)]
    return params, grads_seq


def test_sgd_plain_and_momentum_by_hand(float64):
    p = np.array([1.0, -2.0])
    g = np.array([0.5, 0.25])
    optim.SGD(lr=0.1).step([p], [g])
    np.testing.assert_allclose(p, [0.95, -2.025])
    p = np.array([1.0])
    opt = optim.SGD(lr=0.1, momentum=0.9)
    opt.step([p], [np.array([1.0])])            # v = 1
    opt.step([p], [np.array([1.0])])            # v = 0.9 + 1 = 1.9
    np.testing.assert_allclose(p, [1.0 - 0.1 - 0.19])
    p = np.array([1.0])
    opt = optim.SGD(lr=0.1, momentum=0.9, nesterov=True)
    opt.step([p], [np.array([1.0])])            # v = 1, step g + 0.9 v = 1.9
    np.testing.assert_allclose(p, [1.0 - 0.19])


def test_adam_first_step_moves_each_weight_by_lr(float64):
    # bias correction makes the first step exactly lr * sign(g) (up to eps)
    p = np.array([0.0, 0.0, 0.0])
    optim.Adam(lr=0.01, eps=1e-12).step([p], [np.array([3.0, -0.2, 1e-3])])
    np.testing.assert_allclose(p, [-0.01, 0.01, -0.01], rtol=1e-6)


def test_adamw_decays_weights_even_with_zero_gradient():
    p = np.array([2.0], dtype=np.float32)
    optim.AdamW(lr=0.1, weight_decay=0.5).step([p], [np.zeros(1, dtype=np.float32)])
    np.testing.assert_allclose(p, [2.0 * (1 - 0.05)], rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1), lambda: optim.SGD(0.1, momentum=0.9, weight_decay=0.01),
                                  lambda: optim.Adam(0.01), lambda: optim.AdamW(0.01)])
def test_float32_stays_float32_and_grads_are_untouched(make):
    params, grads_seq = _problem(np.float32)
    grads = [g.copy() for g in grads_seq[0]]
    opt = make()
    opt.lr = np.float64(opt.lr)                 # a NumPy float64 lr must not upcast anything
    opt.step(params, grads)
    assert all(p.dtype == np.float32 for p in params)
    assert all(np.array_equal(g, g0) for g, g0 in zip(grads, grads_seq[0]))


@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.9, nesterov=True),
                                  lambda: optim.Adam(0.01, betas=(0.8, 0.99), weight_decay=0.1),
                                  lambda: optim.AdamW(0.01, weight_decay=0.1)])
def test_state_dict_round_trip_continues_identically(float64, make):
    params_a, grads_seq = _problem()
    params_b = [p.copy() for p in params_a]
    a = make()
    for grads in grads_seq:
        a.step(params_a, grads)
    b = make()
    for grads in grads_seq[:3]:
        b.step(params_b, grads)
    arrays, meta = b.state_dict()
    arrays = {k: np.array(v) for k, v in arrays.items()}
    import json
    meta = json.loads(json.dumps(meta))         # what a checkpoint stores
    c = optim.from_state_dict(arrays, meta)
    assert type(c) is type(b) and c.t == 3
    for grads in grads_seq[3:]:
        c.step(params_b, grads)
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(pa, pb)


def test_load_state_dict_restores_lr_and_rejects_other_optimizer():
    opt = optim.SGD(lr=1.0, momentum=0.5)
    opt.lr = 0.25
    arrays, meta = opt.state_dict()
    fresh = optim.SGD(lr=1.0, momentum=0.5)
    fresh.load_state_dict(arrays, meta)
    assert fresh.lr == 0.25
    with pytest.raises(ValueError, match="Adam.*SGD"):
        optim.Adam().load_state_dict(arrays, meta)


def test_step_with_a_different_parameter_list_is_an_error():
    opt = optim.SGD(0.1, momentum=0.9)
    opt.step([np.zeros(3)], [np.ones(3)])
    with pytest.raises(ValueError, match=r"parameter 0 has shape \(4,\).*\(3,\)"):
        opt.step([np.zeros(4)], [np.ones(4)])


def test_clip_grad_norm_scales_in_place_and_returns_norm_before():
    grads = [np.array([3.0, 0.0], dtype=np.float32), np.array([[4.0]], dtype=np.float32)]
    norm = optim.clip_grad_norm(grads, 1.0)
    assert isinstance(norm, float) and math.isclose(norm, 5.0, rel_tol=1e-6)
    np.testing.assert_allclose(grads[0], [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(grads[1], [[0.8]], rtol=1e-5)
    assert grads[0].dtype == np.float32
    small = [np.array([0.3, 0.4])]
    assert math.isclose(optim.clip_grad_norm(small, 1.0), 0.5)
    np.testing.assert_array_equal(small[0], [0.3, 0.4])       # below the limit: untouched
    assert math.isclose(optim.clip_grad_norm([np.array([6.0, 8.0])], None), 10.0)


def test_clip_grad_norm_with_nan_reports_nan_and_leaves_grads():
    grads = [np.array([np.nan, 1.0])]
    assert math.isnan(optim.clip_grad_norm(grads, 1.0))
    assert grads[0][1] == 1.0


def test_step_decay_follows_the_zaremba_convention():
    opt = optim.SGD(lr=1.0)
    sched = optim.StepDecay(opt, decay=0.5, start_epoch=4)
    lrs = []
    for epoch in range(1, 14):                  # zaremba-small: 13 epochs
        lrs.append(opt.lr)                      # the lr this epoch trains with
        sched.epoch_end(epoch)
    assert lrs[:4] == [1.0] * 4
    assert lrs[4:] == [0.5 ** k for k in range(1, 10)]
    assert [sched.lr_at(e) for e in range(1, 14)] == lrs
    # resuming after epoch 6 restores the lr of epoch 7
    opt2 = optim.SGD(lr=1.0)
    sched2 = optim.StepDecay(opt2, decay=0.1, start_epoch=1)
    state = dict(sched.state_dict(), last_epoch=6)
    sched2.load_state_dict(state)
    assert opt2.lr == 0.5 ** 3 and sched2.decay == 0.5


def test_reduce_lr_on_plateau_counts_patience_and_respects_min_lr():
    opt = optim.Adam(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=0.2)
    lrs = [sched.step(v) for v in [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 3.5, 3.6, 3.7, 3.8, float("nan"), 9.0]]
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]
    import json
    state = json.loads(json.dumps(sched.state_dict()))
    other = optim.ReduceLROnPlateau(optim.Adam(lr=0.2))
    other.load_state_dict(state)
    assert other.best == 3.0 and other.patience == 1 and other.bad_epochs == sched.bad_epochs
    fresh_state = optim.ReduceLROnPlateau(opt).state_dict()
    json.dumps(fresh_state)                     # no infinity in JSON before the first step
    assert optim.ReduceLROnPlateau(opt, patience=0).step(1.0) == opt.lr


def test_reduce_lr_on_plateau_as_an_epoch_schedule():
    """The trainer's interface (lr_at, epoch_end with the epoch's row): a loss that still falls
    keeps the rate however many epochs pass; one that creeps down by less than the threshold
    halves it, never below min_lr."""
    opt = optim.Adam(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, min_lr=0.3, threshold=1e-3)
    for epoch, loss in enumerate([4.0, 3.0, 2.0, 1.5, 1.2], start=1):
        sched.epoch_end(epoch, {"valid_loss": loss})
    assert sched.lr_at(6) == opt.lr == 1.0          # a step decay from epoch 3 would be at 1/8
    sched.epoch_end(6, {"valid_loss": 1.2 - 1e-4})   # a gain below the threshold: a plateau
    assert opt.lr == 0.5
    sched.epoch_end(7, {"valid_loss": 1.0})
    assert opt.lr == 0.5
    for epoch in (8, 9):
        sched.epoch_end(epoch, {"valid_loss": 1.0})
    assert opt.lr == 0.3                            # the floor
    sched.epoch_end(10, {"train_loss": 0.1})        # a row without the monitored loss changes nothing
    assert opt.lr == 0.3 and sched.best == 1.0


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_every_optimizer_takes_keras_learning_rate_and_rnnlab_optimizers_has_it(name):
    import rnnlab
    from rnnlab import optimizers

    cls = getattr(optimizers, name)
    assert cls is getattr(optim, name) and rnnlab.optimizers is optimizers
    assert cls(learning_rate=0.25).lr == 0.25 == cls(lr=0.25).lr
    assert cls(lr=0.5, learning_rate=0.5).lr == 0.5
    with pytest.raises(TypeError, match=f"{name}: give the learning rate once"):
        cls(lr=0.1, learning_rate=0.2)
    assert cls().lr == (1.0 if name == "SGD" else 1e-3)
    assert optimizers.get(name, learning_rate=0.125).lr == 0.125
