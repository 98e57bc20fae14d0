"""The optimizers under Keras's module name (as ``keras.optimizers``): ``SGD``, ``Adam``,
``AdamW``, each taking ``learning_rate=`` (Keras) or ``lr=`` (PyTorch), and ``get(name)``.
They live in optim.py, with the clipping and the learning-rate schedules."""
from .optim import SGD, Adam, AdamW, Optimizer, get

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "get"]
