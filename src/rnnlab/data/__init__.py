"""Data: vocabularies, corpora, generated datasets, sentence pairs, batching."""
from .generated import dates, addition, copy_pairs, adding_problem, copy_task, write_tsv
from .pairs import read_pairs, PairData, split_pairs, tokenize, detokenize
from .corpora import Corpus, DataError, load_ptb, load_shakespeare, load_text, load_corpus
from .batching import BPTTBatches, batchify
