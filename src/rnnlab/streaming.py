"""One step at batch 1 without the layers' per-call work: a language model streamed token by token.

Why: ``LanguageModel.generate`` (what ``rnnlab sample`` runs) calls the model's ``forward`` on a
(1, 1) window per token, and each layer call checks its input, sizes buffers for a sequence,
projects the inputs as one GEMM "for all steps" and copies its states: at batch 1 that is most of
a step (``rnnlab bench --config stream``: 110 us against 8 us of products for one 128-unit LSTM
layer). ``StreamingLM`` keeps what a step needs packed once, in buffers of its own:

- per layer, the input and the state side by side in one vector ``[x, h]`` and, for an LSTM, the
  kernels stacked as ``[W; U]`` (D + H, 4H), so the gates' pre-activations are one vector-matrix
  product plus the bias; for a GRU (reset_after) the two products stay apart (the candidate
  needs ``r * (h U_h + b_h)``);
- with numba (the ``fast`` extra) a step of a layer is one compiled call (the product written as
  row updates, contiguous along the output, then the gates), the output layer another; without
  it, the same arithmetic in NumPy on the same buffers (``np.matmul(..., out=)``, no allocation).

The equations are ``layers/steps.py``'s (LSTM i, f, g, o; GRU z, r, h with the recurrent bias
inside the reset: reset_after), the gates' sigmoid written as the library's one,
``0.5 (tanh(x / 2) + 1)``; tests/test_streaming.py proves ``step`` equal to
``LanguageModel.forward`` on (1, 1) windows with the state carried, in float64 (1e-12), on both
paths. In float32 the sums run in another order than the BLAS's: the logits agree to rounding,
not bit for bit, so ``generate`` keeps the layers (its samples stay those of the layers);
``StreamingLM`` is what a server or a loop that streams a trained model uses.

The weights are copied when the ``StreamingLM`` is made: build a new one after training further.
Only the NumPy backend; LSTM and GRU (reset_after) layers; tied or untied output.
"""
from __future__ import annotations

import numpy as np

from . import backend

try:  # optional: without numba the NumPy form below runs
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

USE_NUMBA = None   # None: when numba imports; True/False forces one path (the tests run both)


def _numpy_matvec(v, M, bias, out):
    np.matmul(v, M, out=out)
    out += bias


def _numpy_lstm(xh, W, b, z, c, h_next, D, H):
    _numpy_matvec(xh, W, b, z)
    gates = 0.5 * (np.tanh(0.5 * z) + 1.0)       # i, f, (unused), o
    g = np.tanh(z[2 * H:3 * H])
    c *= gates[H:2 * H]
    c += gates[:H] * g
    xh[D:] = gates[3 * H:] * np.tanh(c)
    h_next[:] = xh[D:]


def _numpy_gru(x, h, W, U, b_in, b_rec, xz, hz, h_next, H):
    _numpy_matvec(x, W, b_in, xz)
    _numpy_matvec(h, U, b_rec, hz)
    z = 0.5 * (np.tanh(0.5 * (xz[:H] + hz[:H])) + 1.0)
    r = 0.5 * (np.tanh(0.5 * (xz[H:2 * H] + hz[H:2 * H])) + 1.0)
    hh = np.tanh(xz[2 * H:] + r * hz[2 * H:])
    h[:] = z * h + (1.0 - z) * hh
    h_next[:] = h


if numba is not None:
    @numba.njit(cache=True, nogil=True)
    def _matvec(v, M, bias, out):
        """out = v M + bias, by rows of M (contiguous along the output: vectorised)."""
        out[:] = bias
        for k in range(v.shape[0]):
            vk = v[k]
            row = M[k]
            for j in range(out.shape[0]):
                out[j] += vk * row[j]

    @numba.njit(cache=True, nogil=True)
    def _compiled_lstm(xh, W, b, z, c, h_next, D, H):
        _matvec(xh, W, b, z)
        for j in range(H):
            i = 0.5 * (np.tanh(0.5 * z[j]) + 1.0)
            f = 0.5 * (np.tanh(0.5 * z[H + j]) + 1.0)
            g = np.tanh(z[2 * H + j])
            o = 0.5 * (np.tanh(0.5 * z[3 * H + j]) + 1.0)
            c[j] = f * c[j] + i * g
            h = o * np.tanh(c[j])
            xh[D + j] = h
            h_next[j] = h

    @numba.njit(cache=True, nogil=True)
    def _compiled_gru(x, h, W, U, b_in, b_rec, xz, hz, h_next, H):
        _matvec(x, W, b_in, xz)
        _matvec(h, U, b_rec, hz)
        for j in range(H):
            z = 0.5 * (np.tanh(0.5 * (xz[j] + hz[j])) + 1.0)
            r = 0.5 * (np.tanh(0.5 * (xz[H + j] + hz[H + j])) + 1.0)
            hh = np.tanh(xz[2 * H + j] + r * hz[2 * H + j])
            h[j] = z * h[j] + (1.0 - z) * hh
            h_next[j] = h[j]
else:  # pragma: no cover
    _matvec = _compiled_lstm = _compiled_gru = None


def compiled() -> bool:
    """Whether steps run as compiled calls (numba imports and ``USE_NUMBA`` is not False)."""
    if USE_NUMBA is None:
        return numba is not None
    if USE_NUMBA and numba is None:
        raise RuntimeError("streaming.USE_NUMBA = True, but numba is not installed (pip install 'rnnlab[fast]')")
    return bool(USE_NUMBA)


class StreamingLM:
    """A ``LanguageModel`` one token at a time at batch 1: ``step(token)`` -> logits (V,), the
    state carried inside (``reset()`` zeroes it). The logits are a buffer of this object,
    overwritten by the next step (copy them to keep them)."""

    def __init__(self, model):
        from .interop.pytorch import lm_output_layer

        if backend.backend_name() != "numpy":
            raise ValueError("StreamingLM runs on the NumPy backend")
        if model.cell not in ("lstm", "gru"):
            raise ValueError(f"StreamingLM: LSTM and GRU layers only, got {model.cell!r}")
        self.cell, self.hidden, H = model.cell, model.hidden, model.hidden
        embeddings = model.embedding.embeddings
        dtype = embeddings.dtype
        self.embeddings = np.array(embeddings)
        self.layers = []
        for k, rnn in enumerate(model.rnns):
            D = model.emb if k == 0 else H
            W, U = np.asarray(rnn.kernel), np.asarray(rnn.recurrent_kernel)
            if self.cell == "lstm":
                layer = {"W": np.ascontiguousarray(np.concatenate([W, U])), "b": np.array(rnn.bias),
                         "xh": np.zeros(D + H, dtype), "z": np.empty(4 * H, dtype), "c": np.zeros(H, dtype)}
            else:
                if not getattr(rnn, "reset_after", False):
                    raise ValueError("StreamingLM: GRU layers with reset_after=True only")
                layer = {"W": np.ascontiguousarray(W), "U": np.ascontiguousarray(U), "b_in": np.array(rnn.bias[0]),
                         "b_rec": np.array(rnn.bias[1]), "x": np.zeros(D, dtype), "h": np.zeros(H, dtype),
                         "xz": np.empty(3 * H, dtype), "hz": np.empty(3 * H, dtype)}
            layer["D"] = D
            self.layers.append(layer)
        output = lm_output_layer(model)
        if output is None:   # tied: logits = h E^T + b
            self.out_W, self.out_b = np.ascontiguousarray(self.embeddings.T), np.array(model.output_bias)
        else:
            self.out_W, self.out_b = np.ascontiguousarray(output.kernel), np.array(output.bias)
        self.h_top = np.zeros(H, dtype)
        self.logits = np.empty(self.out_W.shape[1], dtype)
        # where each layer writes its new h besides its own state: the next layer's input
        for k, layer in enumerate(self.layers):
            if k + 1 < len(self.layers):
                nxt = self.layers[k + 1]
                layer["h_next"] = nxt["xh"][:H] if self.cell == "lstm" else nxt["x"]
            else:
                layer["h_next"] = self.h_top

    def reset(self) -> None:
        """Zero the carried state."""
        for layer in self.layers:
            for name in ("xh", "c", "x", "h"):
                if name in layer:
                    layer[name][...] = 0

    def step(self, token: int) -> np.ndarray:
        """Feed one token id; the next token's logits (V,), this object's buffer."""
        fast = compiled()
        H = self.hidden
        first = self.layers[0]
        first["xh" if self.cell == "lstm" else "x"][:first["D"]] = self.embeddings[token]
        for layer in self.layers:
            if self.cell == "lstm":
                (_compiled_lstm if fast else _numpy_lstm)(layer["xh"], layer["W"], layer["b"], layer["z"], layer["c"],
                                                          layer["h_next"], layer["D"], H)
            else:
                (_compiled_gru if fast else _numpy_gru)(layer["x"], layer["h"], layer["W"], layer["U"], layer["b_in"],
                                                        layer["b_rec"], layer["xz"], layer["hz"], layer["h_next"], H)
        (_matvec if fast else _numpy_matvec)(self.h_top, self.out_W, self.out_b, self.logits)
        return self.logits
