"""rnnlab: recurrent neural networks from scratch on NumPy (CuPy on a GPU)."""
__version__ = "0.1.0"

from .backend import set_backend, backend_name, set_floatx, floatx, to_numpy
from . import backend, initializers, layers
from . import losses, optim, optimizers
from . import callbacks
from .models import Sequential, Model, load
