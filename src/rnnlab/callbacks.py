"""Keras-style callbacks for ``model.fit`` (as ``keras.callbacks``): ``EarlyStopping``,
``ModelCheckpoint``, and ``Callback`` (the one loop's hooks) to write your own.
They live in train/keras_callbacks.py."""
from .train.keras_callbacks import Callback, EarlyStopping, ModelCheckpoint

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]
