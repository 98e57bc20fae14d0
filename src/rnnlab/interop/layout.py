"""Recurrent weights between the Keras layout (rnnlab's) and PyTorch's ``nn.RNN/LSTM/GRU``.

Pure NumPy: torch is imported only inside the two helpers that write into or read from a
torch module's tensors, never when this module is imported.

Layouts for one layer and direction (D input features, H units):

=========  ===========================================  ==========================================
           Keras / rnnlab                               PyTorch (suffix ``_l{k}``, ``_reverse``)
=========  ===========================================  ==========================================
kernel     W (D, G*H), gate blocks on the columns        ``weight_ih`` (G*H, D) = W^T, gates on rows
recurrent  U (H, G*H)                                    ``weight_hh`` (G*H, H) = U^T
bias       SimpleRNN, LSTM: b (G*H,)                     ``bias_ih`` and ``bias_hh`` (G*H,) each,
           GRU(reset_after=True): (2, G*H), row 0 input,  always added together for RNN and LSTM
           row 1 recurrent
=========  ===========================================  ==========================================

Gate orders: LSTM Keras i, f, c, o = PyTorch i, f, g, o (the same); GRU Keras z, r, h,
PyTorch r, z, n (blocks 0 and 1 swap). PyTorch's GRU computes n = tanh(W_in x + b_in +
r * (W_hn h + b_hn)), which is Keras ``reset_after=True`` exactly; ``reset_after=False``
(r applied before the recurrent product) has no PyTorch equivalent and is refused.

Keras -> PyTorch puts the whole SimpleRNN/LSTM bias into ``bias_ih`` and zeros ``bias_hh``;
PyTorch -> Keras adds the two. For *gradients* (``gradients=True``) the Keras bias gradient is
dL/d bias_ih (which equals dL/d bias_hh), not their sum.

    from rnnlab import interop
    state = interop.keras_to_torch("lstm", layer.get_weights(), layer=0)   # {"weight_ih_l0": ...}
    weights = interop.torch_to_keras("gru", torch_gru.state_dict(), layer=1, reverse=True)
    layers = interop.layers_from_torch(torch_lstm)       # stacked / Bidirectional rnnlab layers
    interop.copy_to_torch(layers, torch_lstm)            # and back
"""
from __future__ import annotations

import numpy as np

from ..layers.kinds import GATES, KINDS, cell_kind

# PyTorch gate block k holds Keras gate block PERM[kind][k]
PERM = {"rnn": [0], "lstm": [0, 1, 2, 3], "gru": [1, 0, 2]}


def kind_of(kind_or_layer) -> str:
    """'rnn', 'lstm' or 'gru' from a name ("LSTM", "SimpleRNN", "gru", ...), an rnnlab layer or
    cell, or a torch module (nn.RNN/LSTM/GRU and their Cell versions): ``layers.kinds.cell_kind``,
    with the error message this module always gave."""
    try:
        return cell_kind(kind_or_layer)
    except ValueError:
        name = kind_or_layer if isinstance(kind_or_layer, str) else type(kind_or_layer).__name__
        raise ValueError(f"unknown recurrent kind {name!r}: use one of {KINDS} (or SimpleRNN, LSTM, GRU)") from None


def _suffix(layer, reverse) -> str:
    if layer is None:
        if reverse:
            raise ValueError("reverse=True needs a layer index (PyTorch names it weight_ih_l{k}_reverse)")
        return ""  # nn.RNNCell / LSTMCell / GRUCell
    return f"_l{int(layer)}" + ("_reverse" if reverse else "")


def _host(a) -> np.ndarray:
    """A NumPy array from a NumPy array, a torch tensor (detached, on the CPU) or a CuPy array."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    elif hasattr(a, "get") and not isinstance(a, np.ndarray):
        a = a.get()
    return np.asarray(a)


def _reorder(a, kind, axis=0):
    """Permute gate blocks of ``a`` along ``axis`` from Keras order to PyTorch order."""
    G = GATES[kind]
    H = a.shape[axis] // G
    blocks = np.split(a, G, axis=axis) if H * G == a.shape[axis] else None
    if blocks is None:
        raise ValueError(f"{kind}: axis {axis} of shape {a.shape} is not {G} gate blocks")
    return np.concatenate([blocks[k] for k in PERM[kind]], axis=axis)


def _unreorder(a, kind, axis=0):
    """Inverse of ``_reorder`` (PyTorch order to Keras order)."""
    G = GATES[kind]
    blocks = np.split(a, G, axis=axis)
    inverse = [PERM[kind].index(k) for k in range(G)]
    return np.concatenate([blocks[k] for k in inverse], axis=axis)


def keras_to_torch(kind, weights, layer: int | None = 0, reverse: bool = False) -> dict:
    """Keras ``[kernel, recurrent_kernel, bias]`` of one layer/direction -> PyTorch tensors by name.

    ``layer``: the index k in ``weight_ih_l{k}`` (None for the unsuffixed names of nn.*Cell);
    ``reverse``: the ``_reverse`` direction of a bidirectional module. Returns NumPy arrays
    ``{"weight_ih_l0": (G*H, D), "weight_hh_l0": (G*H, H), "bias_ih_l0": (G*H,), "bias_hh_l0": (G*H,)}``.
    """
    kind = kind_of(kind)
    if len(weights) != 3:
        raise ValueError(f"keras_to_torch({kind!r}): expected [kernel, recurrent_kernel, bias], "
                         f"got {len(weights)} arrays")
    kernel, recurrent, bias = (_host(w) for w in weights)
    GH = GATES[kind] * recurrent.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != GH or recurrent.shape != (GH // GATES[kind], GH):
        raise ValueError(f"keras_to_torch({kind!r}): kernel {kernel.shape} and recurrent_kernel {recurrent.shape} "
                         f"do not form a {kind} layer (expected (D, {GATES[kind]}*H) and (H, {GATES[kind]}*H))")
    if kind == "gru":
        if bias.shape != (2, GH):
            raise ValueError(f"keras_to_torch('gru'): bias of shape {bias.shape} is a GRU with reset_after=False "
                             f"(r applied before the recurrent product), which has no PyTorch equivalent; "
                             f"PyTorch's nn.GRU is Keras GRU(reset_after=True) with bias (2, {GH})")
        b_ih, b_hh = _reorder(bias[0], kind), _reorder(bias[1], kind)
    else:
        if bias.shape != (GH,):
            raise ValueError(f"keras_to_torch({kind!r}): expected a bias of shape ({GH},), got {bias.shape}")
        b_ih, b_hh = bias.copy(), np.zeros_like(bias)
    s = _suffix(layer, reverse)
    return {f"weight_ih{s}": np.ascontiguousarray(_reorder(kernel.T, kind)),
            f"weight_hh{s}": np.ascontiguousarray(_reorder(recurrent.T, kind)),
            f"bias_ih{s}": b_ih, f"bias_hh{s}": b_hh}


def torch_to_keras(kind, state_dict, layer: int | None = 0, reverse: bool = False,
                   gradients: bool = False) -> list:
    """PyTorch tensors of one layer/direction (from a ``state_dict`` or any mapping of names to
    arrays or tensors) -> Keras ``[kernel, recurrent_kernel, bias]`` as NumPy arrays.

    A module built with ``bias=False`` gives a zero bias. ``gradients=True`` maps gradients
    instead of weights (the SimpleRNN/LSTM bias gradient is then dL/d bias_ih, not a sum).
    """
    kind = kind_of(kind)
    s = _suffix(layer, reverse)
    names = [f"weight_ih{s}", f"weight_hh{s}"]
    missing = [n for n in names if n not in state_dict]
    if missing:
        raise KeyError(f"torch_to_keras({kind!r}): the state dict has no {missing} "
                       f"(has {sorted(state_dict)[:8]}{'...' if len(state_dict) > 8 else ''})")
    w_ih, w_hh = _host(state_dict[names[0]]), _host(state_dict[names[1]])
    GH = w_ih.shape[0]
    if GH % GATES[kind] or w_hh.shape != (GH, GH // GATES[kind]):
        raise ValueError(f"torch_to_keras({kind!r}): weight_ih {w_ih.shape} and weight_hh {w_hh.shape} do not "
                         f"form a {kind} layer")
    zeros = np.zeros(GH, dtype=w_ih.dtype)
    b_ih = _host(state_dict[f"bias_ih{s}"]) if f"bias_ih{s}" in state_dict else zeros
    b_hh = _host(state_dict[f"bias_hh{s}"]) if f"bias_hh{s}" in state_dict else zeros
    kernel = np.ascontiguousarray(_unreorder(w_ih, kind).T)
    recurrent = np.ascontiguousarray(_unreorder(w_hh, kind).T)
    if kind == "gru":
        bias = np.stack([_unreorder(b_ih, kind), _unreorder(b_hh, kind)])
    elif gradients:
        bias = b_ih.copy()
    else:
        bias = b_ih + b_hh
    return [kernel, recurrent, bias]


# ---- whole stacks: torch nn.RNN/LSTM/GRU <-> a list of rnnlab layers ---------------------------


def _directions(layer):
    """The (sublayer, reverse) pairs of one rnnlab stack entry."""
    from ..layers.bidirectional import Bidirectional
    from ..layers.recurrent import _Recurrent

    if isinstance(layer, Bidirectional):
        return [(layer.forward_layer, False), (layer.backward_layer, True)]
    if isinstance(layer, _Recurrent):
        return [(layer, False)]
    raise TypeError(f"interop: expected SimpleRNN, LSTM, GRU or Bidirectional layers, got {type(layer).__name__}")


def _check_layer_kind(sub, kind):
    if kind_of(sub) != kind:
        raise ValueError(f"interop: {sub.describe()} is not a {kind} layer")
    if kind == "gru" and not sub.reset_after:
        raise ValueError(f"interop: {sub.describe()} has reset_after=False, which has no PyTorch equivalent "
                         f"(nn.GRU is GRU(reset_after=True))")
    if kind == "rnn" and sub.activation not in ("tanh", "relu"):
        raise ValueError(f"interop: {sub.describe()} uses activation {sub.activation!r}; nn.RNN has tanh or relu")


def torch_state_dict(layers, kind=None) -> dict:
    """A stack of built rnnlab layers (layer k of a torch module = ``layers[k]``, a recurrent
    layer or a ``Bidirectional``) -> the torch module's state dict as NumPy arrays."""
    out = {}
    for k, layer in enumerate(layers):
        for sub, reverse in _directions(layer):
            kind = kind or kind_of(sub)
            _check_layer_kind(sub, kind)
            out.update(keras_to_torch(kind, sub.get_weights(), layer=k, reverse=reverse))
    return out


def _module_info(module):
    kind = kind_of(module)
    if getattr(module, "proj_size", 0):
        raise ValueError(f"interop: nn.LSTM with proj_size={module.proj_size} has no Keras equivalent")
    return kind, int(getattr(module, "num_layers", 1)), bool(getattr(module, "bidirectional", False))


def copy_from_torch(module, layers) -> None:
    """Copy a torch ``nn.RNN/LSTM/GRU`` module's weights (or a state dict and the layers' kinds)
    into a list of rnnlab layers, one per torch layer (``Bidirectional`` for a bidirectional module)."""
    state = module.state_dict() if hasattr(module, "state_dict") else module
    for k, layer in enumerate(layers):
        for sub, reverse in _directions(layer):
            kind = kind_of(sub)
            _check_layer_kind(sub, kind)
            weights = torch_to_keras(kind, state, layer=k, reverse=reverse)
            if not sub.built:
                sub.build((None, weights[0].shape[0]))
            sub.set_weights(weights)


def copy_to_torch(layers, module) -> None:
    """Copy a list of rnnlab layers' weights into a torch module (in place, keeping its dtype)."""
    import torch  # only here: the rest of this module is NumPy

    state = torch_state_dict(layers, kind=_module_info(module)[0])
    target = module.state_dict()
    unknown = sorted(set(state) - set(target))
    if unknown:
        raise ValueError(f"interop: the torch module has no parameters {unknown}: the layer stack does not "
                         f"match it (layers, directions, bias)")
    with torch.no_grad():
        for name, value in state.items():
            if tuple(target[name].shape) != value.shape:
                raise ValueError(f"interop: {name} is {tuple(target[name].shape)} in the torch module, "
                                 f"{value.shape} from the rnnlab layers")
            target[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))


def grads_from_torch(module, layers=None) -> list:
    """The torch module's parameter gradients in Keras layout, flattened in the order of the
    rnnlab stack's ``params`` (layer 0 forward, [layer 0 backward], layer 1 ...)."""
    kind, num_layers, bidirectional = _module_info(module)
    grads = {name: p.grad for name, p in module.named_parameters() if p.grad is not None}
    out = []
    for k in range(num_layers):
        for reverse in ([False, True] if bidirectional else [False]):
            out += torch_to_keras(kind, grads, layer=k, reverse=reverse, gradients=True)
    return out


def layers_from_torch(module, return_sequences: bool = True, return_state: bool = False,
                      merge_mode: str = "concat", **kwargs) -> list:
    """rnnlab layers equivalent to a torch ``nn.RNN/LSTM/GRU`` (its weights copied): one per
    torch layer, wrapped in ``Bidirectional(merge_mode="concat")`` when the module is
    bidirectional. Feed them one after the other (batch first); ``kwargs`` go to each layer."""
    from ..layers import recurrent
    from ..layers.bidirectional import Bidirectional

    kind, num_layers, bidirectional = _module_info(module)
    H = int(module.hidden_size)
    D = int(module.input_size)
    layers = []
    for k in range(num_layers):
        if kind == "lstm":
            layer = recurrent.LSTM(H, return_sequences=return_sequences, return_state=return_state, **kwargs)
        elif kind == "gru":
            layer = recurrent.GRU(H, reset_after=True, return_sequences=return_sequences,
                                  return_state=return_state, **kwargs)
        else:
            layer = recurrent.SimpleRNN(H, activation=getattr(module, "nonlinearity", "tanh"),
                                        return_sequences=return_sequences, return_state=return_state, **kwargs)
        layer.build((None, D if k == 0 else H * (2 if bidirectional else 1)))
        if bidirectional:
            layer = Bidirectional(layer, merge_mode=merge_mode)
        layers.append(layer)
    copy_from_torch(module, layers)
    return layers
