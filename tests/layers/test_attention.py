"""Attention layers: float64 gradient checks (query, keys, weights; with padding masks) and behaviour."""
import numpy as np
import pytest

from gradcheck import check_layer_gradients, numerical_grad, rel_error
from rnnlab.layers import ShapeError
from rnnlab.layers.attention import BahdanauAttention, LuongAttention

B, S, T, H = 3, 5, 4, 6
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)


def make(kind):
    if kind == "bahdanau":
        return BahdanauAttention(7, seed=0)
    return LuongAttention(score=kind, seed=0)


def check_all_gradients(layer, query, keys, mask, with_weights=False):
    """Every parameter, the query and the keys against central differences."""
    rng = np.random.default_rng(1)
    out = layer.forward(query, keys, mask)
    r_ctx = rng.standard_normal(out.shape)
    r_w = rng.standard_normal(layer.attention_weights.shape) if with_weights else None

    def loss():
        c = layer.forward(query, keys, mask)
        total = (c * r_ctx).sum()
        if with_weights:
            total += (layer.attention_weights * r_w).sum()
        return float(total)

    loss()
    dq = layer.backward(r_ctx, r_w)
    errors = {"query": rel_error(dq, numerical_grad(loss, query)),
              "keys": rel_error(layer.dkeys, numerical_grad(loss, keys))}
    analytic = [g.copy() for g in layer.grads]
    for i, p in enumerate(layer.params):
        errors[f"param{i}"] = rel_error(analytic[i], numerical_grad(loss, p))
    assert max(errors.values()) < 1e-6, errors
    return errors


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
@pytest.mark.parametrize("steps", [None, T])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_gradients(float64, kind, steps, masked):
    rng = np.random.default_rng(0)
    query = rng.standard_normal((B, H) if steps is None else (B, steps, H))
    keys = rng.standard_normal((B, S, H))
    layer = make(kind)
    errors = check_all_gradients(layer, query, keys, MASK if masked else None, with_weights=True)
    assert len(errors) == 2 + {"bahdanau": 3, "dot": 0, "general": 1}[kind]


@pytest.mark.parametrize("kind", ["bahdanau", "general"])
def test_attention_with_check_layer_gradients_and_different_sizes(float64, kind):
    rng = np.random.default_rng(2)
    keys = rng.standard_normal((B, S, 8))  # keys wider than the query: general and additive allow it
    layer = make(kind)
    check_layer_gradients(layer, rng.standard_normal((B, T, H)), {"keys": keys, "mask": MASK})


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_padding_gets_zero_weight_and_does_not_change_context(float64, kind):
    rng = np.random.default_rng(3)
    query, keys = rng.standard_normal((B, T, H)), rng.standard_normal((B, S, H))
    layer = make(kind)
    context = layer.forward(query, keys, MASK)
    weights = layer.attention_weights
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0)
    assert (weights[~np.broadcast_to(MASK[:, None, :], weights.shape)] == 0).all()
    # garbage in the padded keys must not matter
    keys2 = keys.copy()
    keys2[~MASK] = 1e3
    np.testing.assert_allclose(layer.forward(query, keys2, MASK), context, atol=1e-12)
    # one real token: all weight on it, context equals that key
    np.testing.assert_allclose(context[2], np.repeat(keys[2, :1], T, axis=0))


def test_luong_dot_scores_are_inner_products(float64):
    rng = np.random.default_rng(4)
    query, keys = rng.standard_normal((B, H)), rng.standard_normal((B, S, H))
    layer = LuongAttention("dot")
    context = layer.forward(query, keys)
    s = np.einsum("bh,bsh->bs", query, keys)
    a = np.exp(s - s.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    np.testing.assert_allclose(layer.attention_weights, a)
    np.testing.assert_allclose(context, np.einsum("bs,bsh->bh", a, keys))


@pytest.mark.parametrize("kind", ["bahdanau", "general"])
def test_step_loop_equals_all_steps_at_once(float64, kind):
    """Per-step use (begin / step / step_backward / end_backward) gives the same values and grads."""
    rng = np.random.default_rng(5)
    query, keys = rng.standard_normal((B, T, H)), rng.standard_normal((B, S, H))
    dctx = rng.standard_normal((B, T, H))
    layer = make(kind)
    full = layer.forward(query, keys, MASK)
    dq_full = layer.backward(dctx)
    dkeys_full, grads_full = layer.dkeys.copy(), [g.copy() for g in layer.grads]

    layer.begin(keys, MASK)
    steps = [layer.step(query[:, t]) for t in range(T)]
    np.testing.assert_allclose(np.stack(steps, axis=1), full)
    dq = [layer.step_backward(dctx[:, t]) for t in reversed(range(T))][::-1]
    np.testing.assert_allclose(np.stack(dq, axis=1), dq_full)
    np.testing.assert_allclose(layer.end_backward(), dkeys_full)
    for g, g_full in zip(layer.grads, grads_full):
        np.testing.assert_allclose(g, g_full)


def test_bad_shapes_name_the_layer():
    layer = LuongAttention("dot", name="att")
    keys = np.zeros((2, 5, 4), dtype=np.float32)
    with pytest.raises(ShapeError, match=r"att.*mask of shape \(2, 4\).*\(2, 5, 4\)"):
        layer.forward(np.zeros((2, 4), dtype=np.float32), keys, np.ones((2, 4), dtype=bool))
    with pytest.raises(ShapeError, match=r"att.*same size.*3 and 4"):
        layer.forward(np.zeros((2, 3), dtype=np.float32), keys)
    with pytest.raises(ShapeError, match=r"keys.*\(2, 5\)"):
        BahdanauAttention(3).forward(np.zeros((2, 4)), np.zeros((2, 5)))


def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    layer = BahdanauAttention(4, seed=0)
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    k = rng.standard_normal((2, 5, 4)).astype(np.float32)
    c = layer.forward(q, k, MASK[:2])
    dq = layer.backward(np.ones_like(c))
    assert c.dtype == dq.dtype == layer.dkeys.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads)


def test_config_round_trip():
    from rnnlab.layers import layer_from_dict, layer_to_dict
    layer = layer_from_dict(layer_to_dict(BahdanauAttention(5, name="add")))
    assert isinstance(layer, BahdanauAttention) and layer.units == 5 and layer.name == "add"
    layer = layer_from_dict(layer_to_dict(LuongAttention("general")))
    assert layer.score == "general"


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_prepare_and_attend_equal_forward(float64, kind):
    rng = np.random.default_rng(6)
    query, keys = rng.standard_normal((B, H)), rng.standard_normal((B, S, H))
    layer = make(kind)
    context = layer.forward(query, keys, MASK)
    prepared = layer.prepare(keys, MASK)
    rows = np.array([2, 0, 0])  # a beam search selects rows of the prepared arrays
    ctx2, weights2 = layer.attend(query[rows], {k: v[rows] for k, v in prepared.items()})
    np.testing.assert_allclose(ctx2, context[rows])
    np.testing.assert_allclose(weights2, layer.attention_weights[rows])
