"""Data: vocabularies, corpora, generated datasets, sentence pairs, batching, and the task data
(labelled sentences, .ts series, CoNLL-U tagging, captions)."""
from .generated import dates, addition, copy_pairs, adding_problem, copy_task, write_tsv
from .pairs import read_pairs, PairData, split_pairs, tokenize, detokenize
from .corpora import Corpus, DataError, load_ptb, load_shakespeare, load_text, load_corpus
from .batching import BPTTBatches, batchify
from .padding import length_buckets, pad_ids, pad_vectors, pad_chars, cap_lengths
from .labeled import ClassificationData, ClassSplit, load_tsv_classification, load_sst2, read_labeled_tsv
from .timeseries import read_ts, load_ts_classification, load_ts_dataset, standardization
from .conllu import read_conllu, load_tagging, load_ud_english_ewt, TaggingData
from .captions import load_digits, compose_digit_captions, load_feature_captions, CaptionData
