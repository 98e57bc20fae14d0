"""Models in and out of rnnlab: Keras, PyTorch, ONNX.

- ``layout``: one recurrent layer's weights between the Keras layout (rnnlab's) and PyTorch's
  ``nn.RNN/LSTM/GRU`` (pure NumPy; the functions below are re-exported here).
- ``keras``: ``load_keras(path)`` reads a Keras 3 ``.keras`` (or ``.weights.h5`` with its
  config) of a Sequential model into the equivalent rnnlab ``Sequential`` (needs h5py).
- ``pytorch``: ``to_torch(model)`` / ``from_torch(module)``: a whole ``LanguageModel`` or
  ``Sequential`` as an equivalent ``torch.nn.Module`` and back (needs torch).
- ``onnx_export``: ``export_onnx(model, path)``: language model, Sequential classifier, seq2seq
  encoder and decoder step as ONNX graphs with the standard LSTM/GRU/RNN operators (needs onnx).

Importing this package imports none of torch, h5py or onnx: each is imported by the function
that needs it, which names the missing package (``pip install 'rnnlab[interop]'``).
"""
from __future__ import annotations

from .layout import (GATES, KINDS, PERM, copy_from_torch, copy_to_torch, grads_from_torch, keras_to_torch,
                     kind_of, layers_from_torch, torch_state_dict, torch_to_keras)


class UnsupportedError(ValueError):
    """A layer, model or option that has no equivalent on the other side; the message names it."""


def load_keras(path, config=None, max_params=None):
    """A Keras 3 model file as an rnnlab model: see ``rnnlab.interop.keras.load_keras``
    (``max_params``: the largest model read, ``keras.MAX_PARAMS`` unless given)."""
    from .keras import MAX_PARAMS, load_keras as _load

    return _load(path, config=config, max_params=MAX_PARAMS if max_params is None else max_params)


def to_torch(model):
    """An rnnlab model as an equivalent ``torch.nn.Module``: see ``rnnlab.interop.pytorch``."""
    from .pytorch import to_torch as _to

    return _to(model)


def from_torch(module, config=None):
    """A module made by ``to_torch`` (possibly trained in PyTorch), or a state dict with
    ``config``, back as an rnnlab model: see ``rnnlab.interop.pytorch``."""
    from .pytorch import from_torch as _from

    return _from(module, config=config)


def export_onnx(model, path, **kwargs):
    """Write an rnnlab model as ONNX: see ``rnnlab.interop.onnx_export.export_onnx``."""
    from .onnx_export import export_onnx as _export

    return _export(model, path, **kwargs)


def require(module: str, purpose: str):
    """Import an optional package or raise an ImportError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the {module} package: pip install 'rnnlab[interop]'") from err


__all__ = ["GATES", "KINDS", "PERM", "kind_of", "keras_to_torch", "torch_to_keras", "torch_state_dict",
           "copy_from_torch", "copy_to_torch", "grads_from_torch", "layers_from_torch", "UnsupportedError",
           "load_keras", "to_torch", "from_torch", "export_onnx", "require"]
