"""rnnlab layers: ``from rnnlab import layers as L`` then ``L.LSTM(64, return_sequences=True)``."""
from .base import Layer, ShapeError, LAYER_CLASSES, layer_from_dict, layer_to_dict
from .core import Input, Dense, Embedding, Flatten, Dropout, Activation
from .attention import BahdanauAttention, LuongAttention
from .cells import RNNCell, LSTMCell, GRUCell
from .recurrent import SimpleRNN, LSTM, GRU
from .bidirectional import Bidirectional
from .kinds import KINDS, GATES, N_STATES, cell_kind, layer_class, cell_class
from . import fast   # the speed package: registers the fast loops with recurrent.py (its one hook)
