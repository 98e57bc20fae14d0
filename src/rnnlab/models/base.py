"""Models: ``Model`` (a layer made of layers, with summary and save) and ``Sequential``.

    import rnnlab as rl
    from rnnlab import layers as L
    model = rl.Sequential([L.Input((20, 6)), L.SimpleRNN(16, return_sequences=True),
                           L.SimpleRNN(32), L.Flatten(), L.Dense(1)])
    y = model.forward(x)        # (B, 20, 6) -> (B, 1)
    dx = model.backward(dy)     # fills every layer's grads, returns dL/dx
    model.summary()             # the Keras table
    model.save("model.npz"); model2 = rl.load("model.npz")

A model is a ``Layer`` whose parts sit in ``self.sublayers``: ``params``/``grads`` then list
every part's arrays in order, ``train()``/``eval()`` reach every part, and ``save``/``load``
rebuild it from its JSON config (``get_config``) through the layer registry (every subclass of
``Layer``, so every ``Model`` subclass, registers itself by class name when it is defined).
"""
from __future__ import annotations

import contextlib
import functools
import inspect

from .. import validate
from ..layers.base import Layer, ShapeError, layer_from_dict, layer_to_dict
from ..layers.core import Input

# Keras 2's table for sequential models: 65 characters, columns ending at 45%, 85%, 100%.
LINE_LENGTH = 65
POSITIONS = (0.45, 0.85, 1.0)


class Model(Layer):
    """A layer made of layers: ``summary()``, ``count_params()``, ``save(path)``.

    ``Sequential`` covers a plain chain. For anything else (several inputs, carried state,
    attention, a decoder loop), subclass ``Model``: create the parts in ``__init__`` and append
    them to ``self.sublayers`` (that alone makes ``params``, ``grads``, ``train()``/``eval()``,
    ``summary()`` and ``save()`` see them), then write ``forward`` (cache what backward needs)
    and ``backward`` (the chain rule, parts in reverse, returning dL/d(input)) by hand, and
    ``get_config`` (the constructor's arguments) so ``rnnlab.load`` can rebuild it.
    A worked example, a sequence classifier::

        import rnnlab as rl
        from rnnlab import layers as L

        class Classifier(rl.Model):
            '''ids (B, T), 0 = padding -> class logits (B, C).'''

            def __init__(self, vocab_size, emb=32, hidden=64, classes=2, **kwargs):
                super().__init__(**kwargs)          # name, trainable
                self.vocab_size, self.emb, self.hidden, self.classes = vocab_size, emb, hidden, classes
                self.embedding = L.Embedding(vocab_size, emb, mask_zero=True)
                self.rnn = L.LSTM(hidden)           # many-to-one: each sequence's last valid state
                self.head = L.Dense(classes)
                self.sublayers += [self.embedding, self.rnn, self.head]

            def forward(self, ids):
                mask = self.embedding.compute_mask(ids)          # (B, T) bool
                h = self.rnn.forward(self.embedding.forward(ids), mask=mask)
                return self.head.forward(h)

            def backward(self, dlogits):
                dh = self.head.backward(dlogits)
                self.embedding.backward(self.rnn.backward(dh))
                return None                                      # integer ids: no gradient

            def get_config(self):
                return {**super().get_config(), "vocab_size": self.vocab_size, "emb": self.emb,
                        "hidden": self.hidden, "classes": self.classes}

        model = Classifier(1000)
        loss = rl.losses.SoftmaxCrossEntropy()
        opt = rl.optim.Adam(1e-3)
        value = loss.forward(model.forward(ids), labels)
        model.backward(loss.backward())
        rl.optim.clip_grad_norm(model.grads, 5.0)
        opt.step(model.params, model.grads)
        model.summary()                  # rows: embedding, lstm, dense (after the first forward)
        model.save("clf.npz")            # rl.load("clf.npz") gives a Classifier back

    ``summary()`` shows each part's output shape from the input shape it was built with, or
    ``multiple`` when that shape cannot be computed (a part used at several shapes).
    """

    def forward(self, x, **kwargs):
        raise NotImplementedError(f"{self.describe()}: a custom Model writes its own forward "
                                  f"(see the Model docstring)")

    def backward(self, dout):
        raise NotImplementedError(f"{self.describe()}: a custom Model writes its own backward "
                                  f"(see the Model docstring)")

    def compute_output_shape(self, input_shape):
        raise NotImplementedError(f"{self.describe()} does not define compute_output_shape")

    # ---- counting ---------------------------------------------------------------------------
    def _param_counts(self) -> tuple[int, int]:
        """(total, trainable) over distinct arrays: a shared (tied) weight counts once; a
        weight is trainable when its layer and every layer above it are."""
        seen: set[int] = set()
        total = trainable = 0

        def walk(layer: Layer, parent_trainable: bool):
            nonlocal total, trainable
            is_trainable = parent_trainable and layer.trainable
            for p in layer._params:
                if id(p) in seen:
                    continue
                seen.add(id(p))
                total += int(p.size)
                if is_trainable:
                    trainable += int(p.size)
            for sub in layer.sublayers:
                walk(sub, is_trainable)

        walk(self, True)
        return total, trainable

    def count_params(self) -> int:
        """Number of parameters (distinct arrays; a tied weight counts once)."""
        return self._param_counts()[0]

    # ---- summary ----------------------------------------------------------------------------
    def _summary_layers(self) -> list[Layer]:
        return [layer for layer in self.sublayers if not isinstance(layer, Input)]

    def _check_built_for_summary(self) -> None:
        layers = self._summary_layers()
        if layers and not any(layer.built for layer in layers):
            raise ValueError(f"{self.describe()} is not built yet, so its shapes and parameter counts "
                             f"are unknown: run forward on one batch first")

    def summary_rows(self) -> list[dict]:
        """One dict per row of the table: name, class_name, output_shape (None for the batch;
        a string such as "multiple" when unknown), params, trainable."""
        self._check_built_for_summary()
        rows = []
        for layer in self._summary_layers():
            rows.append({"name": layer.name, "class_name": type(layer).__name__,
                         "output_shape": _output_shape(layer),
                         "params": layer.count_params() if layer.built else None,
                         "trainable": bool(layer.trainable)})
        return rows

    def summary(self, print_fn=print, line_length: int = LINE_LENGTH, positions=POSITIONS) -> str:
        """Print the Keras 2 summary table one line at a time through ``print_fn`` (None: do not
        print) and return it as one string.

        Columns end at 45%, 85% and 100% of ``line_length`` (29, 55, 65 for the default 65),
        every row starts with a space, the layer rows are followed by a blank line; the Input
        layer is not a row. Per-layer counts are plain, the totals use thousands separators.
        """
        rows = self.summary_rows()
        total, trainable = self._param_counts()
        ends = [int(line_length * p) for p in positions] if positions[-1] <= 1 else list(positions)
        lines = [f'Model: "{self.name}"', "_" * line_length]
        lines += _table_row(["Layer (type)", "Output Shape", "Param #"], ends)
        lines.append("=" * line_length)
        for row in rows:
            params = row["params"] if row["params"] is not None else "0 (unused)"
            lines += _table_row([f"{row['name']} ({row['class_name']})", _shape_str(row["output_shape"]),
                                 params], ends)
            lines.append(" " * line_length)
        lines.append("=" * line_length)
        lines.append(f"Total params: {total:,}")
        lines.append(f"Trainable params: {trainable:,}")
        lines.append(f"Non-trainable params: {total - trainable:,}")
        lines.append("_" * line_length)
        if print_fn is not None:
            for line in lines:
                print_fn(line)
        return "\n".join(lines)

    def summary_dict(self) -> dict:
        """The summary as data (what ``rnnlab summary --json`` prints)."""
        rows = self.summary_rows()
        total, trainable = self._param_counts()
        return {"name": self.name, "class_name": type(self).__name__, "total_params": total,
                "trainable_params": trainable, "non_trainable_params": total - trainable,
                "layers": rows}

    # ---- Keras-style training (train/fit.py, on the one training loop) -------------------
    def compile(self, optimizer="adam", loss=None, metrics=None) -> None:
        """Fix optimizer ("adam", "sgd", "adamw" or an ``rnnlab.optim`` object), loss (Keras's name
        or a loss object) and metrics (["accuracy", "mae", ...]) for fit/evaluate."""
        keras_training("compile")(self, optimizer, loss, metrics)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, clipnorm=None, seed=0):
        """Train on arrays as Keras's ``fit``; returns a ``History`` (``history.history["loss"]``)."""
        return keras_training("fit")(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                                     validation_data, shuffle, clipnorm, seed)

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, return_dict=False):
        """The compiled loss (and metrics: [loss, ...]) over (x, y), batched, in eval mode."""
        return keras_training("evaluate")(self, x, y, batch_size, verbose, return_dict)

    def predict(self, x, batch_size=None, verbose=0):
        """The outputs for ``x`` as one NumPy array, batched (32), in eval mode."""
        return keras_training("predict")(self, x, batch_size, verbose)

    # ---- saving -----------------------------------------------------------------------------
    def save(self, path, optimizer=None, state=None):
        """Write a checkpoint (weights, JSON config, optionally optimizer state and a JSON
        ``state`` dict) atomically to ``path``; ``rnnlab.load(path)`` rebuilds the model."""
        from ..checkpoint import save_checkpoint

        return save_checkpoint(path, self, optimizer=optimizer, state=state)


# ---- Keras-style training: the functions train/fit.py registers ---------------------------
#
# compile / fit / evaluate / predict run on the training loop, which lives in train/; models/
# never imports train/ (train/ builds on models/). So train/fit.py hands its four functions
# over with ``register_keras_training`` when it is imported, and ``import rnnlab`` imports it.

KERAS_METHODS = ("compile", "fit", "evaluate", "predict")
_keras_training: dict = {}


def register_keras_training(**functions) -> None:
    """Install what ``Model.compile`` / ``fit`` / ``evaluate`` / ``predict`` call, by method name:
    each function takes the model first, then that method's arguments in order."""
    unknown = set(functions) - set(KERAS_METHODS)
    if unknown:
        raise ValueError(f"register_keras_training: no Model method {', '.join(sorted(unknown))}; "
                         f"the methods are {', '.join(KERAS_METHODS)}")
    _keras_training.update(functions)


def keras_training(method: str):
    """The registered function behind ``Model.<method>``."""
    try:
        return _keras_training[method]
    except KeyError:
        raise RuntimeError(f"Model.{method} runs on rnnlab's training loop, which is not loaded: "
                           f"import rnnlab (or rnnlab.train.fit) first") from None


@contextlib.contextmanager
def eval_mode(model):
    """``model`` in eval mode (no dropout) inside, its previous mode restored after, also when
    the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def load(path) -> Model:
    """Rebuild a model saved with ``Model.save`` / ``save_checkpoint`` and load its weights."""
    from ..checkpoint import load_checkpoint

    return load_checkpoint(path).model


# ---- Sequential ---------------------------------------------------------------------------


class Sequential(Model):
    """A chain of layers: y = f_n(...f_2(f_1(x))), dx = f_1'(...f_n'(dy)).

    With an ``Input(shape)`` first, every layer is built at once from the shapes
    (``compute_output_shape``), so ``summary()`` works before any data; without one, each layer
    builds on the first ``forward``. ``forward(x, mask=None)`` passes ``mask`` (B, T) to the
    layers whose ``forward`` takes a ``mask`` argument; a layer with ``compute_mask`` (an
    ``Embedding(mask_zero=True)``) starts a mask, and the mask is dropped once an output no
    longer has the (B, T) leading axes (e.g. after a many-to-one recurrent layer).
    ``backward(dout)`` runs the layers in reverse and returns dL/dx (None when the first layer
    takes integer ids). Layers that return tuples (``return_state=True``) belong in a custom
    ``Model``.
    """

    def __init__(self, layers=None, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise validate.ArgumentError(f"Sequential: layers must be a list of layers, got {layers!r}")
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the Input layer (as Keras ``model.layers``)."""
        return self._summary_layers()

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.describe()}: add() takes a Layer, got {type(layer).__name__}")
        if isinstance(layer, Input):
            if self.sublayers:
                raise ValueError(f"{self.describe()}: an Input layer can only come first")
            self.sublayers.append(layer)
            self.build(layer.shape)
            return
        if self.built:
            # build the new layer now from the chain's current output shape
            shape = self.compute_output_shape(self.input_shape)
            if not layer.built:
                layer.build(shape)
        self.sublayers.append(layer)

    def build(self, input_shape) -> None:
        """Build every layer from ``input_shape`` (batch excluded), following the shapes."""
        super().build(input_shape)
        shape = tuple(input_shape)
        for layer in self.sublayers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.sublayers:
            shape = layer.compute_output_shape(shape)
        return shape

    def forward(self, x, mask=None):
        if not self.built:
            # the layers build themselves on their first forward; remember the model's input
            Layer.build(self, tuple(x.shape[1:]))
        for layer in self.sublayers:
            x_in = x
            if mask is not None and _accepts_mask(type(layer)):
                x = layer.forward(x, mask=mask)
            else:
                x = layer.forward(x)
            if isinstance(x, tuple):
                raise ValueError(f"{self.describe()}: {layer.describe()} returned {len(x)} arrays "
                                 f"(return_state=True?); a Sequential passes one array from layer to "
                                 f"layer: write a custom Model for this")
            compute_mask = getattr(layer, "compute_mask", None)
            if compute_mask is not None:
                new_mask = compute_mask(x_in)
                if new_mask is not None:
                    mask = new_mask
            if mask is not None and not (x.ndim > mask.ndim and tuple(x.shape[:mask.ndim]) == tuple(mask.shape)):
                mask = None  # the time axis is gone (many-to-one, Flatten): nothing left to mask
        return x

    def backward(self, dout):
        for i in range(len(self.sublayers) - 1, -1, -1):
            layer = self.sublayers[i]
            dout = layer.backward(dout)
            if dout is None and i > 0:
                raise ValueError(f"{self.describe()}: {layer.describe()} returned no input gradient "
                                 f"(an Embedding must come first)")
        return dout

    def get_config(self) -> dict:
        config = {**super().get_config(), "layers": [layer_to_dict(layer) for layer in self.sublayers]}
        has_input = bool(self.sublayers) and isinstance(self.sublayers[0], Input)
        if self.built and not has_input:
            config["build_input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        specs = config.pop("layers", [])
        if not isinstance(specs, list):
            raise ValueError(f"Sequential config: 'layers' must be a list of {{'class_name', 'config'}}, "
                             f"got {type(specs).__name__}")
        build_input_shape = config.pop("build_input_shape", None)
        layers = []
        for i, spec in enumerate(specs):
            try:
                layers.append(layer_from_dict(spec))
            except ValueError as err:
                raise ValueError(f"Sequential config: layers[{i}]: {err}") from err
        model = cls(layers, **config)
        if build_input_shape is not None and not model.built:
            model.build(tuple(build_input_shape))
        return model


@functools.lru_cache(maxsize=None)
def _accepts_mask(cls) -> bool:
    """Whether ``cls.forward`` names a ``mask`` parameter (not merely **kwargs)."""
    try:
        return "mask" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


# ---- the table ----------------------------------------------------------------------------


def _plain_shape(shape):
    """A shape with Python ints (NumPy ints would print as np.int64(...))."""
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) for s in shape):
        return [_plain_shape(s) for s in shape]  # several outputs
    return tuple(None if d is None else int(d) for d in shape)


def _output_shape(layer: Layer):
    """(None, ...) output shape of a built layer from the input shape it was built with, a
    list of shapes for several outputs, or "multiple" when it cannot be computed."""
    if not layer.built or layer.input_shape is None:
        return "multiple"
    try:
        shape = _plain_shape(layer.compute_output_shape(layer.input_shape))
    except Exception:  # noqa: BLE001 - any failure means the shape is not a single known one
        return "multiple"
    if isinstance(shape, list):
        return [(None, *s) for s in shape]
    return (None, *shape)


def _shape_str(shape) -> str:
    return shape if isinstance(shape, str) else str(shape)


def _table_row(fields, ends) -> list[str]:
    """One table row as Keras 2 lays it out: each cell starts where the previous column ends
    (the first after one space), is cut to its width minus a 2-space gap (the last column
    has no gap) and padded to the column end; text that does not fit continues on the next
    line, breaking early after "),", "},", "]," or "',"."""
    cells = [str(f) for f in fields]
    lines = []
    while any(cells):
        line = ""
        for col, text in enumerate(cells):
            start = ends[col - 1] if col else 0
            gap = 0 if col == len(ends) - 1 else 2
            width = ends[col] - start - gap
            piece = text[:width]
            breaks = [piece.find(b) + len(b) for b in ("),", "},", "],", "',") if b in piece]
            if breaks:
                width = min(breaks)
                piece = piece[:width]
            if col == 0:
                line += " "
            line += piece + " " * gap
            cells[col] = text[width:]
            line += " " * (ends[col] - len(line))
        lines.append(line)
    return lines


__all__ = ["Model", "Sequential", "load", "eval_mode", "ShapeError"]
