"""``Bidirectional``: a recurrent layer run forwards and a copy of it backwards, merged."""
from __future__ import annotations

from .. import backend
from .. import validate
from .base import Layer, ShapeError, layer_from_dict, layer_to_dict
from .recurrent import _Recurrent


class Bidirectional(Layer):
    """Runs ``layer`` forwards and a copy of it backwards over the sequence, and merges the two.

    The backward copy is built from ``layer.get_config()`` with ``go_backwards`` flipped (its
    own weights); its output sequence is reversed back so that step t of both lines up with
    x_t. With a mask or lengths (right padding), the backward pass starts at each sequence's
    last real step, as PyTorch's packed bidirectional layers.

    ``merge_mode``: "concat" (B, [T,] 2H), "sum", "ave", "mul" (B, [T,] H), or None (a tuple
    (y_forward, y_backward); then ``backward`` takes a pair of gradients).
    ``params`` = the forward layer's, then the backward layer's. With ``return_state`` the
    layer returns ``(y, *forward_states, *backward_states)``; ``initial_state`` and
    ``backward(dy, dstates)`` take the states in that order, and ``dinitial_state`` lists them so.

    The two directions run one after the other, or at once where the forward layer's loop says
    so (``loop().run_pair``: the compiled fast loops run them on two threads, with the bits of
    one after the other).
    """

    MERGE_MODES = ("concat", "sum", "ave", "mul", None)

    def __init__(self, layer, merge_mode="concat", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got {type(layer).__name__}")
        validate.choice(self.describe(), "merge_mode", merge_mode, self.MERGE_MODES)
        self.merge_mode = merge_mode
        config = layer.get_config()
        config.update(name=f"backward_{layer.name}", go_backwards=not layer.go_backwards)
        if layer.seed is not None:
            config["seed"] = layer.seed + 1  # the two directions must not start equal
        self.forward_layer = layer
        self.backward_layer = type(layer).from_config(config)
        self.sublayers = [self.forward_layer, self.backward_layer]
        self.units = layer.units
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.dinitial_state = None
        if layer.built:
            self.build(layer.input_shape)

    def build(self, input_shape):
        super().build(input_shape)
        for sub in self.sublayers:
            if not sub.built:
                sub.build(input_shape)

    def reset_states(self) -> None:
        for sub in self.sublayers:
            sub.reset_states()

    def _both(self, forward_call, backward_call):
        """(forward_call(), backward_call()), as the forward layer's loop runs a pair."""
        return self.forward_layer.loop().run_pair(forward_call, backward_call)

    def _aligned(self, layer, seq):
        """A go_backwards layer's sequence in input order (a view; reversal is its own inverse)."""
        return seq[:, ::-1] if layer.go_backwards and self.return_sequences else seq

    def forward(self, x, mask=None, initial_state=None, lengths=None):
        xp = backend.xp
        self.check_dtype(x)
        if getattr(x, "ndim", None) != 3:
            raise ShapeError(f"{self.describe()}: expected a 3-D input (batch, time, features), "
                             f"got shape {tuple(getattr(x, 'shape', ()))}")
        self.maybe_build(x)
        # mask and lengths checked here too, so that an error names this layer, not a direction
        context = f" for input of shape {tuple(x.shape)}"
        if mask is not None and lengths is not None:
            raise ValueError(f"{self.describe()}: give a mask or lengths, not both")
        if mask is not None:
            mask = self.check_mask(mask, tuple(x.shape[:2]), context=context)
        if lengths is not None:
            lengths = self.check_lengths(lengths, x.shape[0], x.shape[1], context)
        n = self.forward_layer.N_STATES
        init_f = init_b = None
        if initial_state is not None:
            if len(initial_state) != 2 * n:
                raise ShapeError(f"{self.describe()}: initial_state must list {n} forward then {n} backward "
                                 f"state array(s), got {len(initial_state)}")
            init_f, init_b = list(initial_state[:n]), list(initial_state[n:])
        outs = [out if isinstance(out, tuple) else (out,) for out in self._both(
            lambda: self.forward_layer.forward(x, mask=mask, initial_state=init_f, lengths=lengths),
            lambda: self.backward_layer.forward(x, mask=mask, initial_state=init_b, lengths=lengths))]
        y_f, y_b = self._aligned(self.forward_layer, outs[0][0]), self._aligned(self.backward_layer, outs[1][0])
        self._y = (y_f, y_b)
        if self.merge_mode == "concat":
            y = (xp.concatenate([y_f, y_b], axis=-1),)
        elif self.merge_mode == "sum":
            y = (y_f + y_b,)
        elif self.merge_mode == "ave":
            y = (0.5 * (y_f + y_b),)
        elif self.merge_mode == "mul":
            y = (y_f * y_b,)
        else:
            y = (xp.ascontiguousarray(y_f), xp.ascontiguousarray(y_b))
        states = (*outs[0][1:], *outs[1][1:])
        result = y + states
        return result if len(result) > 1 else result[0]

    def backward(self, dy, dstates=None):
        H = self.units
        y_f, y_b = self._y
        if self.merge_mode == "concat":
            dy_f, dy_b = dy[..., :H], dy[..., H:]
        elif self.merge_mode == "sum":
            dy_f = dy_b = dy
        elif self.merge_mode == "ave":
            dy_f = dy_b = 0.5 * dy
        elif self.merge_mode == "mul":
            dy_f, dy_b = dy * y_b, dy * y_f
        else:
            dy_f, dy_b = dy
        n = self.forward_layer.N_STATES
        dstates = list(dstates) if dstates is not None else []
        dstates += [None] * (2 * n - len(dstates))
        dx, dx_b = self._both(
            lambda: self.forward_layer.backward(self._aligned(self.forward_layer, dy_f), dstates[:n]),
            lambda: self.backward_layer.backward(self._aligned(self.backward_layer, dy_b), dstates[n:]))
        dx += dx_b
        self.dinitial_state = self.forward_layer.dinitial_state + self.backward_layer.dinitial_state
        return dx

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        y = shape[0] if self.return_state else shape
        H = self.units
        if self.merge_mode == "concat":
            ys = [(*y[:-1], 2 * H)]
        elif self.merge_mode is None:
            ys = [y, y]
        else:
            ys = [y]
        if self.return_state:
            return ys + [(H,)] * (2 * self.forward_layer.N_STATES)
        return ys if len(ys) > 1 else ys[0]

    def get_config(self):
        return {**super().get_config(), "layer": layer_to_dict(self.forward_layer), "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = layer_from_dict(config["layer"])
        return cls(**config)
