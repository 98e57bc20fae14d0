"""Models: ``Model`` (a layer made of layers, with summary and save), ``Sequential``, ``load``."""
from .base import Model, Sequential, load
from .lm import LanguageModel
from .seq2seq import Seq2Seq, Encoder, Decoder, AttentionDecoder
