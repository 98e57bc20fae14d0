"""Models: ``Model`` (a layer made of layers, with summary and save), ``Sequential``, ``load``;
the task models (imported here so that ``load`` finds their classes in the registry)."""
from .base import Model, Sequential, load
from .lm import LanguageModel
from .seq2seq import Seq2Seq, Encoder, Decoder, AttentionDecoder
from .stack import RecurrentStack, SequencePooling
from .classifier import SequenceClassifier
from .tagger import Tagger
from .captioner import Captioner
