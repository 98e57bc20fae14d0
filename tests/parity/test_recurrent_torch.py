"""Recurrent layers against torch.nn.RNN/LSTM/GRU in float64, weights copied with rnnlab.interop:
outputs, final states, dx and every weight gradient agree to 1e-9, also with variable lengths
(pack_padded_sequence) and bidirectional stacks."""
import numpy as np
import pytest

from gradcheck import require_torch
from rnnlab import interop
from rnnlab.layers import GRUCell, LSTMCell, RNNCell

# every test twice: the NumPy loops and the fused numba kernels (LSTM, GRU)
pytestmark = pytest.mark.usefixtures("both_kernel_paths")

TOL = 1e-9
B, T, D, H = 3, 6, 4, 5


def torch_module(torch, kind, num_layers, bidirectional, **kwargs):
    torch.manual_seed(0)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    return cls(D, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True, **kwargs)


def run_torch(torch, module, x, lengths, r_y, r_states):
    """Forward (packed when lengths are given), then backward of L = <r_y, y> + sum <r_s, s>."""
    tx = torch.tensor(x, requires_grad=True)
    if lengths is None:
        ty, states = module(tx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, states = module(packed)
        ty, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    states = states if isinstance(states, tuple) else (states,)
    module.zero_grad()
    loss = (ty * torch.tensor(r_y)).sum() + sum((s * torch.tensor(r)).sum() for s, r in zip(states, r_states))
    loss.backward()
    return ty.detach().numpy(), [s.detach().numpy() for s in states], tx.grad.numpy()


def run_rnnlab(layers, x, lengths, r_y, r_states, n_states, n_dirs):
    """The stack by composition; torch's h_n rows are indexed layer * n_dirs + direction."""
    h, finals = x, []
    kwargs = {} if lengths is None else {"lengths": lengths}
    for layer in layers:
        y, *states = layer.forward(h, **kwargs)
        finals.append(states)  # [h_f, (c_f), h_b, (c_b)]
        h = y
    states = [np.stack([finals[l][d * n_states + s] for l in range(len(layers)) for d in range(n_dirs)])
              for s in range(n_states)]
    dy = r_y
    for l in reversed(range(len(layers))):
        dstates = [r_states[s][l * n_dirs + d] for d in range(n_dirs) for s in range(n_states)]
        dy = layers[l].backward(dy, dstates)
    return h, states, dy


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("variable_lengths", [False, True])
def test_matches_torch(float64, kind, num_layers, bidirectional, variable_lengths):
    torch = require_torch()
    module = torch_module(torch, kind, num_layers, bidirectional)
    layers = interop.layers_from_torch(module, return_sequences=True, return_state=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D))
    lengths = np.array([6, 2, 4]) if variable_lengths else None
    n_dirs, n_states = (2 if bidirectional else 1), (2 if kind == "lstm" else 1)
    r_y = rng.standard_normal((B, T, H * n_dirs))
    r_states = [rng.standard_normal((num_layers * n_dirs, B, H)) for _ in range(n_states)]

    ty, tstates, tdx = run_torch(torch, module, x, lengths, r_y, r_states)
    y, states, dx = run_rnnlab(layers, x, lengths, r_y, r_states, n_states, n_dirs)

    np.testing.assert_allclose(y, ty, rtol=0, atol=TOL)
    for ours, theirs in zip(states, tstates):  # h_n, and c_n for the LSTM
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)
    np.testing.assert_allclose(dx, tdx, rtol=0, atol=TOL)
    ours = [g for layer in layers for g in layer.grads]
    theirs = interop.grads_from_torch(module)
    assert len(ours) == len(theirs) == 3 * num_layers * n_dirs
    for g, tg in zip(ours, theirs):
        np.testing.assert_allclose(g, tg, rtol=0, atol=TOL)
    if variable_lengths:
        assert (dx[1, 2:] == 0).all() and (y[1, 2:] == 0).all()


def test_relu_simple_rnn_matches_torch(float64):
    torch = require_torch()
    module = torch_module(torch, "rnn", 1, False, nonlinearity="relu")
    layers = interop.layers_from_torch(module, return_state=True)
    assert layers[0].activation == "relu"
    rng = np.random.default_rng(1)
    x, r_y, r_h = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H)), rng.standard_normal((1, B, H))
    ty, (th,), tdx = run_torch(torch, module, x, None, r_y, [r_h])
    y, (h,), dx = run_rnnlab(layers, x, None, r_y, [r_h], 1, 1)
    np.testing.assert_allclose(y, ty, atol=TOL)
    np.testing.assert_allclose(h, th, atol=TOL)
    np.testing.assert_allclose(dx, tdx, atol=TOL)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cells_match_torch_cells(float64, kind):
    torch = require_torch()
    torch.manual_seed(0)
    tcell = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind](D, H)
    cell = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}[kind](H)
    cell.build((D,))
    cell.set_weights(interop.torch_to_keras(kind, tcell.state_dict(), layer=None))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, D))
    states = [rng.standard_normal((B, H)) for _ in range(2 if kind == "lstm" else 1)]
    tx = torch.tensor(x, requires_grad=True)
    tstates = [torch.tensor(s, requires_grad=True) for s in states]
    tout = tcell(tx, tuple(tstates)) if kind == "lstm" else tcell(tx, tstates[0])
    tout = tout if isinstance(tout, tuple) else (tout,)
    r = [rng.standard_normal((B, H)) for _ in tout]
    sum((o * torch.tensor(w)).sum() for o, w in zip(tout, r)).backward()

    h, new = cell.forward(x, states)
    for ours, theirs in zip(new, tout):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=TOL)
    dx, dprev = cell.backward(np.zeros_like(h), r)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=TOL)
    for d, ts in zip(dprev, tstates):
        np.testing.assert_allclose(d, ts.grad.numpy(), atol=TOL)
    grads = {n: p.grad for n, p in tcell.named_parameters()}
    for g, tg in zip(cell.grads, interop.torch_to_keras(kind, grads, layer=None, gradients=True)):
        np.testing.assert_allclose(g, tg, atol=TOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_copy_to_torch_round_trip(float64, kind):
    """rnnlab weights -> torch module -> same outputs; and back into fresh layers, unchanged."""
    torch = require_torch()
    module = torch_module(torch, kind, 2, True)
    source = interop.layers_from_torch(torch_module(torch, kind, 2, True))
    for layer in source:  # new random weights, then into the module
        for p in layer.params:
            p[...] = np.random.default_rng(p.size).uniform(-0.5, 0.5, p.shape)
    interop.copy_to_torch(source, module)
    x = np.random.default_rng(3).standard_normal((B, T, D))
    ty, _ = module(torch.tensor(x))
    y = x
    for layer in source:
        y = layer.forward(y)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=TOL)
    back = interop.layers_from_torch(module)
    for a, b in zip([p for l in back for p in l.params], [p for l in source for p in l.params]):
        np.testing.assert_allclose(a, b, atol=1e-15)
