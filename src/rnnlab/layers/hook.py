"""The one hook between the readable modules and the speed package, ``rnnlab.layers.fast``.

The readable modules (``recurrent.py``, ``core.py``, ``losses.py``) never import the speed
package: they ask this registry for a fast form by name and run their own plain form when it
has none. ``rnnlab.layers`` imports ``rnnlab.layers.fast`` last, which registers its forms here
(each returns None where it does not apply: switched off with ``RNNLAB_FAST=0`` or
``fast.set_enabled(False)``, another backend, an unsupported dtype):

    "recurrent_loop"   loop_for(layer) -> the layer's fast loop (``fast.loops``) or None
    "softmax_exp"      softmax_exp(z, e, s, z_t, rows, t) -> True once it wrote the loss's exponentials
    "dense_build"      build(layer) -> True once it stacked a Dense layer's kernel and bias
    "dense_forward"    forward(layer, x2) -> x2 W + b
    "dense_backward"   backward(layer, x2, dh) -> True once it wrote dW, db
"""
from __future__ import annotations

_registered: dict = {}


def register(name: str, function) -> None:
    """Called by ``rnnlab.layers.fast``: ``function`` is the fast form of ``name``."""
    _registered[name] = function


def fast_form(name: str, *args):
    """The registered fast form of ``name`` called with ``args``, or None (none registered,
    or it does not apply to these arguments)."""
    function = _registered.get(name)
    return None if function is None else function(*args)
