"""layers/fast/orientation.py: the per-step product's orientation is a rule of the shapes, never a timing."""
import numpy as np

from rnnlab.bench import CONFIGS
from rnnlab.layers import LSTM
from rnnlab.layers.fast import FastLoop, loop_for, orientation


def test_the_rule_picks_the_transposed_product_for_few_rows_and_a_large_weight():
    picks = {name: (orientation.transposed_products(c.batch, c.hidden, 4 * c.hidden),
                    orientation.transposed_products(c.batch, 4 * c.hidden, c.hidden)) for name, c in CONFIGS.items()}
    assert picks == {"ptb-small": (False, False), "ptb-medium": (True, True), "char": (True, True),
                     "long-small": (False, False)}
    assert not orientation.transposed_products(65, 650, 2600)        # many rows: plain
    assert orientation.compiled_weight_transposed("forward", 10, 650, 2600)
    assert not orientation.compiled_weight_transposed("backward", 10, 650, 2600)
    assert not orientation.compiled_weight_transposed("forward", 32, 512, 2048)


def test_a_layer_asks_the_rule_for_each_product(monkeypatch):
    """The choice is the rule's answer for the shape (so two processes agree however busy the
    machine): the layer asks it for each of its two products."""
    from rnnlab.layers.fast import base
    monkeypatch.setattr(FastLoop, "COMPILED", False)     # the compiled loops ask their own rule
    asked = []
    monkeypatch.setattr(base, "transposed_products", lambda B, K, N: asked.append((B, K, N)) or True)
    layer = LSTM(3, return_sequences=True, seed=0)
    layer.forward(np.ones((2, 4, 5), np.float32))
    layer.backward(np.ones((2, 4, 3), np.float32))
    # forward: h (2, 3) @ U (3, 12); backward: dz (2, 12) @ U^T (12, 3)
    assert sorted(set(asked)) == [(2, 3, 12), (2, 12, 3)]
    assert loop_for(layer)._transposed(2, 3, 12) is True
