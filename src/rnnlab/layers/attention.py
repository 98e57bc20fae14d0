"""Attention over encoder states: Bahdanau (additive) and Luong (dot, general).

A decoder state (the *query* q) looks at every encoder state (the *keys* k_1..k_S, which are
also the values) and takes their weighted mean, the *context*:

    s_j = score(q, k_j)                      one score per source position j
    a   = softmax(s)   (padding masked out)  attention weights, summing to 1 over j
    c   = sum_j a_j k_j                      context vector

with the scores

    Bahdanau (additive, 2015):  score(q, k) = v . tanh(q W_q + k W_k)     W_q (Hq, A), W_k (Hk, A), v (A,)
    Luong dot (2015):           score(q, k) = q . k                       (needs Hq == Hk)
    Luong general:              score(q, k) = q W k^T                     W (Hq, Hk)

Shapes: keys (B, S, Hk) with an optional source ``mask`` (B, S) (True = a real token; padded
positions get weight exactly 0); query (B, Hq) for one decoder step or (B, T, Hq) for all T
steps at once; context of the query's shape with Hk features; weights (B, [T,] S).

Two ways to use a layer:

- ``forward(query, keys, mask)`` / ``backward(dcontext)``, the usual pair: backward returns
  dL/dquery and leaves dL/dkeys in ``self.dkeys`` (as recurrent layers leave
  ``dinitial_state``).
- In a decoder loop where step t's query depends on step t-1's context (Bahdanau):
  ``begin(keys, mask)`` once (projects the keys once, not per step), ``step(q_t)`` per step,
  then ``step_backward(dc_t)`` for the steps in *reverse* order and ``end_backward()``, which
  returns dL/dkeys summed over all steps and completes ``grads``.
- Inference: ``prepared = prepare(keys, mask)`` (a dict of batch-first arrays a beam search
  can select rows of), then ``context, weights = attend(q_t, prepared)`` per step; no caching.

The weights of the last call are in ``self.attention_weights``.
"""
from __future__ import annotations

from .. import backend
from .. import validate
from .base import Layer, ShapeError
from .core import softmax

_NEG = -1e9  # added to the scores of padded positions: exp(-1e9 - max) is exactly 0


class _Attention(Layer):
    """Shared machinery: mask, caches of the steps, forward/backward through begin/step."""

    def build(self, input_shape, key_dim: int | None = None):
        super().build(input_shape)
        self.query_dim = int(input_shape[-1])
        self.key_dim = int(key_dim if key_dim is not None else input_shape[-1])

    def compute_output_shape(self, input_shape):
        """The context has the query's shape with the keys' feature size."""
        return (*tuple(input_shape)[:-1], self.key_dim if self.built else input_shape[-1])

    def begin(self, keys, mask=None):
        """Start attending over ``keys`` (B, S, Hk); resets the step caches and the gradients."""
        self._check_keys(keys, mask)
        self.keys, self.bias = keys, self.mask_bias(keys, mask)
        self.steps = []
        self._dkeys = None
        self._begin()

    def _check_keys(self, keys, mask):
        self.check_dtype(keys, "keys", kinds="f")
        if mask is not None:
            self.check_dtype(mask, "mask", kinds="bfiu")
        if keys.ndim != 3:
            raise ShapeError(f"{self.describe()}: expected keys (encoder states) of shape (batch, source_len, "
                             f"features), got {tuple(keys.shape)}")
        if self.built and keys.shape[-1] != self.key_dim:
            raise ShapeError(f"{self.describe()}: built for keys with {self.key_dim} features, "
                             f"got keys of shape {tuple(keys.shape)}")
        if mask is not None and tuple(mask.shape) != tuple(keys.shape[:2]):
            raise ShapeError(f"{self.describe()}: mask of shape {tuple(mask.shape)} does not match keys "
                             f"of shape {tuple(keys.shape)}; expected {tuple(keys.shape[:2])}")

    @staticmethod
    def mask_bias(keys, mask):
        """(B, 1, S) additive score bias: 0 on real tokens, -1e9 on padding (None without a mask)."""
        if mask is None:
            return None
        return backend.xp.where(mask.astype(bool), 0.0, _NEG).astype(keys.dtype)[:, None, :]

    def prepare(self, keys, mask=None) -> dict:
        """What inference needs to attend over ``keys``: a dict of arrays with the batch first
        (so a beam search can select rows of it); pass it to ``attend``. Caches nothing."""
        self._check_keys(keys, mask)
        if not self.built:
            raise RuntimeError(f"{self.describe()}: the layer must be built (run forward once) before prepare")
        return {"keys": keys, "keys_proj": self.project_keys(keys), "bias": self.mask_bias(keys, mask)}

    def attend(self, query, prepared: dict):
        """Context (B, Hk) and weights (B, S) for one query (B, Hq), without caching (inference)."""
        scores, _ = self._scores_with(query[:, None, :], prepared["keys_proj"])
        if prepared["bias"] is not None:
            scores += prepared["bias"]
        a = softmax(scores)
        return (a @ prepared["keys"])[:, 0], a[:, 0]

    def _check_query(self, q):
        self.check_dtype(q, "query", kinds="f")
        if q.ndim not in (2, 3) or q.shape[0] != self.keys.shape[0]:
            raise ShapeError(f"{self.describe()}: expected a query of shape (batch, features) or (batch, steps, "
                             f"features) with batch {self.keys.shape[0]} (keys {tuple(self.keys.shape)}), "
                             f"got {tuple(q.shape)}")
        if not self.built:
            self.build(tuple(q.shape[-1:]), self.keys.shape[-1])
            self._begin()
        if q.shape[-1] != self.query_dim:
            raise ShapeError(f"{self.describe()}: built for queries with {self.query_dim} features, "
                             f"got shape {tuple(q.shape)}")

    def _begin(self):
        self.keys_proj = self.project_keys(self.keys) if self.built else None
        self._dkeys_proj = None

    def _scores(self, q3):
        return self._scores_with(q3, self.keys_proj)

    def step(self, query, keep: bool = True):
        """Context (B, [T,] Hk) for ``query`` (B, [T,] Hq); weights go to ``attention_weights``."""
        if not hasattr(self, "keys"):
            raise RuntimeError(f"{self.describe()}: call begin(keys, mask) before step(query)")
        self._check_query(query)
        single = query.ndim == 2
        q3 = query[:, None, :] if single else query
        scores, aux = self._scores(q3)
        if self.bias is not None:
            scores += self.bias
        a = softmax(scores)
        context = a @ self.keys
        if keep:
            self.steps.append((q3, a, aux, single))
        self.attention_weights = a[:, 0] if single else a
        return context[:, 0] if single else context

    def step_backward(self, dcontext, dweights=None):
        """Backward of the most recent step not yet taken back; returns dL/dquery."""
        xp = backend.xp
        if not self.steps:
            raise RuntimeError(f"{self.describe()}: step_backward called more times than step")
        q3, a, aux, single = self.steps.pop()
        dc = dcontext[:, None, :] if single else dcontext
        if self._dkeys is None:
            self._dkeys = xp.zeros_like(self.keys)
            for g in self._grads:
                g[...] = 0
        # c = a K: the keys get a^T dc as values, the weights get dc K^T
        self._dkeys += a.transpose(0, 2, 1) @ dc
        da = dc @ self.keys.transpose(0, 2, 1)
        if dweights is not None:
            dw = dweights[0] if isinstance(dweights, (list, tuple)) else dweights
            da = da + (dw[:, None, :] if single else dw)
        ds = a * (da - (da * a).sum(axis=-1, keepdims=True))  # softmax backward; 0 where masked
        dq = self._scores_backward(q3, ds, aux)
        return dq[:, 0] if single else dq

    def end_backward(self):
        """Finish the backward pass over all steps: returns dL/dkeys and completes ``grads``."""
        xp = backend.xp
        if self._dkeys is None:  # no step was taken back: nothing flowed
            self._dkeys = xp.zeros_like(self.keys)
            for g in self._grads:
                g[...] = 0
        dkeys = self._dkeys + self._keys_backward()
        self._dkeys = None
        return dkeys

    def forward(self, query, keys, mask=None):
        """Context for all queries at once; see the module docstring for the shapes."""
        self.check_dtype(query, "query", kinds="f")
        self.check_finite(query, "query")
        self.begin(keys, mask)
        return self.step(query)

    def backward(self, dcontext, dweights=None):
        """Returns dL/dquery; dL/dkeys is left in ``self.dkeys``."""
        dq = self.step_backward(dcontext, dweights)
        self.dkeys = self.end_backward()
        return dq


class BahdanauAttention(_Attention):
    """Additive attention: score(q, k) = v . tanh(q W_q + k W_k).

    Weights: ``query_kernel`` W_q (Hq, A), ``key_kernel`` W_k (Hk, A), ``score_vector`` v (A,),
    with A = ``units``. ``begin`` computes k W_k once for all steps. With
    e = tanh(q W_q + k W_k) (B, T, S, A) and ds the gradient of the scores (B, T, S):

        dv   = sum_{b,t,j} ds e                 dpre = ds v (1 - e^2)
        dW_q = q^T sum_j dpre                   dq   = (sum_j dpre) W_q^T
        dW_k = k^T sum_t dpre                   dk  += (sum_t dpre) W_k^T
    """

    def __init__(self, units: int, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = validate.positive_int("BahdanauAttention", "units", units)
        self.kernel_initializer = validate.initializer("BahdanauAttention", "kernel_initializer", kernel_initializer)

    def build(self, input_shape, key_dim=None):
        super().build(input_shape, key_dim)
        self.query_kernel = self.add_weight("query_kernel", (self.query_dim, self.units), self.kernel_initializer)
        self.key_kernel = self.add_weight("key_kernel", (self.key_dim, self.units), self.kernel_initializer)
        self.score_vector = self.add_weight("score_vector", (self.units,), self.kernel_initializer)

    def project_keys(self, keys):
        return keys @ self.key_kernel

    def _scores_with(self, q3, keys_proj):
        e = backend.xp.tanh((q3 @ self.query_kernel)[:, :, None, :] + keys_proj[:, None, :, :])
        return e @ self.score_vector, e

    def _scores_backward(self, q3, ds, e):
        units = self.units
        self._grads[2] += ds.reshape(-1) @ e.reshape(-1, units)
        dpre = ds[..., None] * self.score_vector
        dpre *= 1.0 - e * e
        dq_proj = dpre.sum(axis=2)
        if self._dkeys_proj is None:
            self._dkeys_proj = dpre.sum(axis=1)
        else:
            self._dkeys_proj += dpre.sum(axis=1)
        self._grads[0] += q3.reshape(-1, self.query_dim).T @ dq_proj.reshape(-1, units)
        return dq_proj @ self.query_kernel.T

    def _keys_backward(self):
        if self._dkeys_proj is None:
            return 0.0
        dkp, self._dkeys_proj = self._dkeys_proj, None
        self._grads[1][...] = self.keys.reshape(-1, self.key_dim).T @ dkp.reshape(-1, self.units)
        return dkp @ self.key_kernel.T

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_initializer": self.kernel_initializer if isinstance(self.kernel_initializer, str)
                else "glorot_uniform"}


class LuongAttention(_Attention):
    """Multiplicative attention: ``score="dot"``: q . k; ``score="general"``: q W k^T.

    Weight (general only): ``kernel`` W (Hq, Hk). ``begin`` computes k W^T once, so each step is
    s = q (k W^T)^T. With ds the gradient of the scores (B, T, S) and kw = k W^T:

        dq = ds kw          dkw = ds^T q          dW = dkw^T k          dk += dkw W
    """

    def __init__(self, score: str = "dot", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.score = validate.choice("LuongAttention", "score", score, ("dot", "general"))
        self.kernel_initializer = validate.initializer("LuongAttention", "kernel_initializer", kernel_initializer)

    def build(self, input_shape, key_dim=None):
        super().build(input_shape, key_dim)
        if self.score == "dot" and self.query_dim != self.key_dim:
            raise ShapeError(f"{self.describe()}: dot score needs queries and keys of the same size, got "
                             f"{self.query_dim} and {self.key_dim} features (use score='general')")
        if self.score == "general":
            self.kernel = self.add_weight("kernel", (self.query_dim, self.key_dim), self.kernel_initializer)

    def project_keys(self, keys):
        return keys @ self.kernel.T if self.score == "general" else keys

    def _scores_with(self, q3, keys_proj):
        return q3 @ keys_proj.transpose(0, 2, 1), None

    def _scores_backward(self, q3, ds, aux):
        dkp = ds.transpose(0, 2, 1) @ q3
        if self._dkeys_proj is None:
            self._dkeys_proj = dkp
        else:
            self._dkeys_proj += dkp
        return ds @ self.keys_proj

    def _keys_backward(self):
        if self._dkeys_proj is None:
            return 0.0
        dkp, self._dkeys_proj = self._dkeys_proj, None
        if self.score == "dot":
            return dkp
        self._grads[0][...] = dkp.reshape(-1, self.query_dim).T @ self.keys.reshape(-1, self.key_dim)
        return dkp @ self.kernel

    def get_config(self):
        return {**super().get_config(), "score": self.score,
                "kernel_initializer": self.kernel_initializer if isinstance(self.kernel_initializer, str)
                else "glorot_uniform"}
