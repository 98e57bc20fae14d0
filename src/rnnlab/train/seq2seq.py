"""Training and evaluating sequence-to-sequence models (``rnnlab train seq2seq``, ``eval``,
``translate``).

    config = Seq2SeqConfig(generated="dates", n=20000, attention="luong", epochs=6)
    result = train_seq2seq(config, "runs/dates")      # TrainResult: result["exact_match"], .history
    result = train_seq2seq(config, pairs=(train, valid, test))   # pairs in memory, no folder
    translate("runs/dates", ["september 27, 1994"])   # [{"source", "translation", ...}]

The data is a TSV of pairs (``pairs``, with ``valid``/``test`` files or split by ``split``
fractions) or generated (``generated`` "dates", "addition" or "copy", with ``n`` and
``data_seed``), or given in memory (``pairs=``). The loop is ``train/loop.py``'s ``Trainer``;
this module supplies ``Seq2SeqTask``. Each epoch: shuffled batches (``bucket``: of similar
lengths); teacher-forced softmax cross-entropy over the real target tokens; backward;
global-norm clipping; an optimizer step. After each epoch the validation split is decoded
greedily (exact match, token accuracy, BLEU) and one row goes to ``RUN_DIR/metrics.jsonl``;
``last.npz`` is saved every epoch (and every ``checkpoint_every`` batches or
``checkpoint_seconds``), ``best.npz`` whenever the validation loss improves; ``resume``
continues exactly, ``max_minutes`` stops cleanly. At the end the best model is evaluated on the
test split. ``config.json`` holds the configuration and both vocabularies, so a run directory
is all that ``translate`` and ``eval`` need.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import distributed as dist
from .. import initializers, validate
from ..data import generated
from ..data.memory import PREDICTION_BUDGET, PREDICTION_ROWS, check_memory
from ..data.pairs import (MAX_CHARS, PairData, check_batch_memory, detokenize, pair_batch_bytes, read_pairs,
                          split_pairs, tokenize)
from ..data.vocab import Vocab
from ..losses import SoftmaxCrossEntropy
from ..metrics import bleu_applies, corpus_bleu, exact_match, token_accuracy
from ..models.base import eval_mode
from ..models.seq2seq import Seq2Seq
from ..optim import ReduceLROnPlateau, StepDecay, get as get_optimizer
from ..checkpoint import load_checkpoint
from .config import CELLS, DATA, MODEL, TrainingConfig, checkpoint_of, checkpoint_source, setting
from .loop import RunDir, Task, TrainResult, train_from_config
from .task import log


LEVELS = ("char", "word")

# Without --epochs (and without --max-minutes) `train seq2seq` stops after this many epochs with
# no gain of min_delta in the validation loss, so a small corpus trains long enough (3,000
# pairs: 38 updates an epoch) and a large one stops when it stops learning.
DEFAULT_PATIENCE = 3
# The plateau schedule's floor, as a fraction of the starting rate: low enough for the last
# fine steps, high enough that the rate never becomes a standstill inside a time budget.
PLATEAU_FLOOR = 0.01
SCHEDULES = ("plateau", "step")


def separator(owner: str, name: str, value) -> str | None:
    """A pairs files' separator: "tab" (or a backslash-t) is a tab; any other non-empty string
    is itself (None: chosen per file, ``data/pairs.py``'s ``pair_separator``)."""
    if value in ("tab", "\\t"):
        return "\t"
    return validate.text(owner, name, value)


@dataclass
class Seq2SeqConfig(TrainingConfig):
    RUN_KEYS = ("src_vocab", "tgt_vocab", "decode_cap")
    # runs from before the plateau schedule halved the rate every epoch and stopped on any gain
    EARLIER_RUNS = {"lr_schedule": "step", "min_delta": 0.0}
    # the fields that choose the data: runs to ensemble agree on them (train/ensemble.py)
    DATA_FIELDS = ("pairs", "sep", "valid", "test", "generated", "n", "data_seed", "split", "swap", "limit",
                   "level", "src_level", "tgt_level", "lower", "max_src_len", "max_tgt_len", "max_line_chars",
                   "min_freq", "max_vocab")

    # data
    pairs: str | None = setting(None, "TSV of source<TAB>target[<TAB>...] lines (a file without tabs: the book's "
                                "fixed-width source_target lines)", group=DATA, metavar="FILE")
    sep: str | None = setting(None, "what separates source and target in the pairs files (tab, or any string: "
                              "each line splits at its first one; default: a tab, or '_' in a file without tabs, "
                              "as the book's date.txt)", check=separator, group=DATA)
    valid: str | None = setting(None, "validation pairs (with --test; else --split)", group=DATA,
                                metavar="FILE")
    test: str | None = setting(None, "test pairs", group=DATA, metavar="FILE")
    generated: str | None = setting(None, "generated data instead of --pairs", choices=tuple(generated.GENERATORS),
                                    group=DATA)
    n: int = setting(20000, "pairs to generate with --generated", check=validate.positive_int, group=DATA)
    data_seed: int = setting(0, "seed of generated data and of the split", check=validate.non_negative_int,
                             group=DATA)
    split: tuple = setting((0.8, 0.1, 0.1), "fractions to split --pairs into", check=validate.fractions,
                           group=DATA, metavar="TRAIN,VALID,TEST")
    swap: bool = setting(False, "the second column is the source", group=DATA)
    limit: int | None = setting(None, "read at most this many pairs", check=validate.positive_int, group=DATA)
    level: str = setting("char", "token level of both sides", choices=LEVELS, group=DATA)
    src_level: str | None = setting(None, "token level of the source (default --level)", choices=LEVELS,
                                    group=DATA)
    tgt_level: str | None = setting(None, "token level of the target (default --level)", choices=LEVELS,
                                    group=DATA)
    lower: bool = setting(False, "lowercase the text", group=DATA)
    max_src_len: int | None = setting(None, "drop pairs with a longer source (tokens; --pairs is filtered before "
                                      "splitting)", check=validate.positive_int, group=DATA)
    max_tgt_len: int | None = setting(None, "drop pairs with a longer target (tokens)", check=validate.positive_int,
                                      group=DATA)
    max_line_chars: int | None = setting(MAX_CHARS, "skip (and report) pairs-file lines with a source or target "
                                         "longer than this (characters)", check=validate.positive_int, group=DATA)
    min_freq: int = setting(1, "rarer tokens become <unk>", check=validate.positive_int, group=DATA)
    max_vocab: int | None = setting(None, "vocabulary size limit (incl. specials)", check=validate.positive_int,
                                    group=DATA)
    # model (defaults: the demo's measured settings, GRU 128, general score, embedding 32;
    # with them the README's dates command reaches >= 99% test exact match in 4 epochs)
    attention: str = setting("luong", "attention over the encoder's outputs", choices=("none", "bahdanau", "luong"),
                             group=MODEL)
    score: str = setting("general", "Luong score function", choices=("dot", "general"), group=MODEL)
    cell: str = setting("gru", "recurrent cell", check=validate.cell, choices=CELLS, group=MODEL)
    layers: int = setting(1, "stacked recurrent layers", check=validate.positive_int, group=MODEL)
    emb: int = setting(32, "embedding size", check=validate.positive_int, group=MODEL)
    hidden: int = setting(128, "units of each recurrent layer", check=validate.positive_int, group=MODEL)
    reverse: bool = setting(False, "read the source backwards", group=MODEL)
    peeky: bool = setting(False, "feed the encoder vector to every decoder step", group=MODEL)
    # (one-way Luong attention left 10% of the book-format dates wrong, each a one-digit day:
    # "2," vs "20" needs the next character)
    bidirectional: bool = setting(True, "bidirectional encoder (default on)", group=MODEL,
                                  off_flag="--no-bidirectional", off_help="a one-way encoder")
    dropout: float = setting(0.0, "dropout rate", check=validate.rate, group=MODEL)
    # optimisation
    epochs: int = setting(40, "passes over the training pairs (default: until the validation loss gains less "
                          f"than --min-delta for {DEFAULT_PATIENCE} epochs, at most 40; with --max-minutes: until "
                          "the budget or early stopping)", check=validate.positive_int, resumable=True,
                          flag_default_none=True)
    batch: int = TrainingConfig.redefault("batch", 64)
    bucket: bool = setting(True, "batches of pairs of similar length (less padding, less varied batches)",
                           flag=None, off_flag="--no-bucket",
                           off_help="batches of random pairs instead of pairs of similar length (more padding; on "
                                    "small tasks with few lengths, such as addition, it trains much faster per "
                                    "epoch)")
    lr: float = TrainingConfig.redefault("lr", 3e-3)
    lr_schedule: str = setting("plateau", "plateau: multiply lr by --lr-decay after an epoch whose validation "
                               "loss gained less than --min-delta (at most down to 1/100 of --lr); step: after "
                               "every epoch >= --decay-start", choices=SCHEDULES)
    lr_decay: float = setting(0.5, "the schedule's factor (1: constant)", check=validate.decay_factor)
    decay_start: int = setting(3, "first epoch the step schedule decays after", check=validate.non_negative_int)
    min_delta: float = setting(1e-3, "gain of the validation loss (per target token) that counts as progress, "
                               "for the plateau schedule and --patience", check=validate.non_negative_float)
    patience: int | None = setting(None, "stop after this many epochs without a validation loss better by "
                                   f"--min-delta (default: {DEFAULT_PATIENCE} without --epochs, else never)",
                                   check=validate.positive_int, resumable=True)
    # evaluation
    beam: int = setting(1, "beam width of the final test decoding", check=validate.positive_int)
    length_penalty: float = setting(1.0, "beam search: finished hypotheses compared by log p / length ** "
                                    "this", check=validate.non_negative_float)
    max_decode_len: int | None = setting(None, "longest decoded output of every sentence (default: per sentence "
                                         "2 x source tokens + 10, at most the longest training target + 10)",
                                         check=validate.positive_int)
    eval_limit: int | None = setting(None, "decode at most this many validation pairs per epoch",
                                     check=validate.positive_int)


def levels(config: Seq2SeqConfig) -> tuple[str, str]:
    """(source level, target level): ``src_level`` / ``tgt_level`` where given, else ``level``."""
    return config.src_level or config.level, config.tgt_level or config.level


# ---- the decoding limit ------------------------------------------------------------------------

# A sentence's output stops after ``2 * source tokens + DECODE_MARGIN`` tokens (no task here
# needs more), and never after more than the run's cap (longest training target + margin).
DECODE_MARGIN = 10


def decode_limits(src_lengths, max_decode_len: int | None = None, cap: int | None = None) -> list[int]:
    """The longest output each source may get: ``max_decode_len`` when given, else
    ``min(2 * len(source) + 10, cap)``. An untrained model that never ends a sentence thus
    costs steps in proportion to its source, not to the longest target of the training set."""
    if max_decode_len:
        return [int(max_decode_len)] * len(src_lengths)
    return [max(1, min(2 * int(n) + DECODE_MARGIN, cap or 10**9)) for n in src_lengths]


# ---- data -----------------------------------------------------------------------------------------


def load_splits(config: Seq2SeqConfig) -> tuple[list, list, list]:
    """(train, valid, test) lists of (source, target) string pairs for ``config``."""
    if (config.pairs is None) == (config.generated is None):
        raise ValueError("give either a pairs file (--pairs FILE) or generated data (--generated dates|addition), "
                         "not both or neither")
    if config.generated is not None:
        if config.generated not in generated.GENERATORS:
            raise ValueError(f"unknown generated data {config.generated!r}; known: {sorted(generated.GENERATORS)}")
        pairs = generated.GENERATORS[config.generated](config.n, seed=config.data_seed)
    else:
        pairs = read_pairs(config.pairs, swap=config.swap, limit=config.limit, max_chars=config.max_line_chars,
                           sep=config.sep)
    # the length limits apply to the training pairs; a held-out split cut from the same file
    # is cut after filtering, so it has the same distribution
    pairs = _filter_long(pairs, config)
    if config.valid or config.test:
        if not (config.valid and config.test):
            raise ValueError("give both --valid and --test files, or neither (then --split divides --pairs)")
        return (pairs, *(read_pairs(f, swap=config.swap, max_chars=config.max_line_chars, sep=config.sep)
                         for f in (config.valid, config.test)))
    train, valid, test = split_pairs(pairs, config.split, seed=config.data_seed)
    return train, valid, test


def _filter_long(pairs, config):
    if config.max_src_len is None and config.max_tgt_len is None:
        return pairs
    keep = []
    src_level, tgt_level = levels(config)
    for s, t in pairs:
        if config.max_src_len is not None and len(tokenize(s, src_level, config.lower)) > config.max_src_len:
            continue
        if config.max_tgt_len is not None and len(tokenize(t, tgt_level, config.lower)) > config.max_tgt_len:
            continue
        keep.append((s, t))
    if not keep:
        raise ValueError(f"no training pair is within max_src_len={config.max_src_len}, "
                         f"max_tgt_len={config.max_tgt_len}")
    return keep


def build_model(config: Seq2SeqConfig, src_vocab: Vocab, tgt_vocab: Vocab) -> Seq2Seq:
    return Seq2Seq(len(src_vocab), len(tgt_vocab), emb=config.emb, hidden=config.hidden, cell=config.cell,
                   layers=config.layers, attention=config.attention, score=config.score, reverse=config.reverse,
                   peeky=config.peeky, bidirectional=config.bidirectional, dropout=config.dropout,
                   bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id, seed=config.seed, name="seq2seq")


def make_schedule(config: Seq2SeqConfig, optimizer):
    """The learning-rate schedule ``config.lr_schedule`` names, on ``optimizer``."""
    if config.lr_schedule == "step":
        return StepDecay(optimizer, config.lr_decay, config.decay_start)
    if config.lr_schedule != "plateau":
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; known: {', '.join(SCHEDULES)}")
    if config.lr_decay >= 1.0:  # a constant rate
        return StepDecay(optimizer, 1.0, config.decay_start)
    return ReduceLROnPlateau(optimizer, factor=config.lr_decay, patience=0, min_lr=config.lr * PLATEAU_FLOOR,
                             threshold=config.min_delta, monitor="valid_loss")


# ---- evaluation -----------------------------------------------------------------------------------


def teacher_forced_loss(model, data: PairData, batch_size: int = 256) -> float:
    """Mean cross-entropy per target token (incl. the end token) with teacher forcing (under
    mpiexec each rank takes its rows of every batch and the sums are reduced)."""
    loss = SoftmaxCrossEntropy()
    total = count = 0.0
    with eval_mode(model):
        for b in data.batches(batch_size):
            b = dist.shard_batch(b)
            if len(b) == 0:
                continue
            value = loss.forward(model.forward(b.src, b.tgt_in, b.src_mask), b.tgt_out, b.tgt_mask)
            total += value * loss.count
            count += loss.count
    total, count = dist.allreduce_sum([total, count])
    return total / max(count, 1)


def decode_data(model, data: PairData, batch_size: int = 256, max_len: int | None = None, beam: int = 1,
                length_penalty: float = 1.0, cap: int | None = None) -> tuple[list, list]:
    """Decoded target token lists for every pair of ``data`` (in order), and their attention.

    ``max_len``: the longest output of every sentence; None: each sentence's own limit from its
    source length (``decode_limits``, at most ``cap``). Batches hold sources of similar length,
    so a batch decodes about as many steps as its sentences need. Under mpiexec each rank
    decodes its rows of every batch; every rank gets them all."""
    outputs = [None] * len(data)
    attention = [None] * len(data)
    limits = decode_limits([len(s) for s in data.src_ids], max_len, cap)
    # beams multiply the rows of a batch: keep the work per batch about the same
    step = max(1, batch_size // max(beam, 1))
    for b in data.batches(step):
        b = dist.shard_batch(b)
        if len(b) == 0:
            continue
        result = model.translate_batch(b.src, b.src_mask, max_len=max(limits[i] for i in b.index),
                                       beam_width=beam, length_penalty=length_penalty)
        for row, i in enumerate(b.index):
            outputs[i] = data.tgt_vocab.decode(result.tokens[row][:limits[i]])
            a = result.attention[row]
            if a is not None:
                a = a[:limits[i] + 1]
            # drop the batch's padding columns: (output steps, this source's length)
            attention[i] = a[:, :len(data.src_ids[i])] if a is not None else None
    if dist.world().distributed:
        for i, out, a in dist.allgather_list([(i, outputs[i], attention[i]) for i in range(len(data))
                                              if outputs[i] is not None]):
            outputs[i], attention[i] = out, a
    return outputs, attention


def evaluate(model, data: PairData, batch_size: int = 256, max_len: int | None = None, beam: int = 1,
             length_penalty: float = 1.0, with_loss: bool = True, cap: int | None = None) -> dict:
    """Loss (teacher forcing), and exact match, token accuracy, BLEU of the decoded outputs.
    An empty ``data`` gives None for every figure (there is nothing to measure), not 0; so does
    BLEU on targets mostly under 4 words (``metrics.bleu_applies``: a sum, a date), where it
    would be 0 at any accuracy."""
    if len(data) == 0:
        empty = {"exact_match": None, "token_accuracy": None, "bleu": None, "target_level": data.tgt_level, "n": 0,
                 "predictions": []}
        return {**empty, "loss": None} if with_loss else empty
    predictions, _ = decode_data(model, data, batch_size, max_len, beam, length_penalty, cap)
    references = data.tgt_tokens
    level = data.tgt_level
    texts = [detokenize(p, level) for p in predictions]
    reference_texts = [detokenize(r, level) for r in references]
    result = {
        "exact_match": exact_match(predictions, references),
        "token_accuracy": token_accuracy(predictions, references),
        "bleu": corpus_bleu(texts, reference_texts) if bleu_applies(reference_texts) else None,
        "target_level": level,
        "n": len(data),
    }
    if with_loss:
        result["loss"] = teacher_forced_loss(model, data, batch_size)
    result["predictions"] = [detokenize(p, level) for p in predictions]
    return result


def describe_scores(figures: dict, brief: bool = False) -> str:
    """"exact match 99.10%, character accuracy 99.80%, BLEU 12.34" from a seq2seq report's
    figures: token accuracy is named for the target's tokens (characters or words), and a
    BLEU that does not apply (None: targets under 4 words) says why, once (``brief``: "BLEU
    n/a", for the line of every epoch)."""
    parts = [f"exact match {100 * figures['exact_match']:.2f}%"]
    if figures.get("token_accuracy") is not None:
        unit = "character" if figures.get("target_level") == "char" else "token"
        parts.append(f"{unit} accuracy {100 * figures['token_accuracy']:.2f}%")
    if figures.get("bleu") is not None:
        parts.append(f"BLEU {figures['bleu']:.2f}")
    else:
        parts.append("BLEU n/a" if brief else "no BLEU (most targets are under 4 words, and BLEU counts 4-grams "
                                               "of words: it would be 0 at any accuracy)")
    return ", ".join(parts)


# ---- training -------------------------------------------------------------------------------------


class Seq2SeqTask(Task):
    """Sequence to sequence on the loop: bucketed (or random) batches of pairs, reshuffled each
    epoch by a generator seeded by (seed, epoch), so a resumed epoch sees the same batches;
    teacher-forced cross-entropy over the real target tokens; at validation, greedy decoding of
    the validation pairs (exact match, token accuracy, BLEU) and the teacher-forced loss."""

    name = "seq2seq"

    def __init__(self, config: Seq2SeqConfig, pairs=None, examples: int = 5):
        self.config = config
        self.pairs = pairs            # (train, valid, test) lists of (source, target) in memory
        self.examples = examples
        self.loss_fn = SoftmaxCrossEntropy()

    def setup(self) -> None:
        config = self.config
        initializers.seed(config.seed)
        if self.pairs is not None:
            train_pairs, valid_pairs, test_pairs = (list(p) for p in self.pairs)
        else:
            train_pairs, valid_pairs, test_pairs = load_splits(config)
        # an empty test split is allowed (--split 0.9,0.1,0): its figures are reported as null
        for name, split in (("train", train_pairs), ("valid", valid_pairs)):
            if not split:
                raise ValueError(f"seq2seq: the {name} split holds no pairs")
        src_level, tgt_level = levels(config)
        self.train = PairData.build(train_pairs, src_level, config.lower, config.min_freq, config.max_vocab,
                                    tgt_level=tgt_level)
        vocabs = (self.train.src_vocab, self.train.tgt_vocab, src_level, config.lower)
        self.valid = PairData(valid_pairs, *vocabs, tgt_level=tgt_level)
        self.test = PairData(test_pairs, *vocabs, tgt_level=tgt_level)
        self.eval_valid = self.valid if not config.eval_limit or len(self.valid) <= config.eval_limit else \
            PairData(valid_pairs[:config.eval_limit], *vocabs, tgt_level=tgt_level)
        # the decoding limit: --max-decode-len for every sentence, else per sentence from its
        # source length (decode_limits), never past the longest training target + margin
        self.max_len = config.max_decode_len
        self.decode_cap = max(len(t) for t in self.train.tgt_ids) + DECODE_MARGIN
        level_text = src_level if src_level == tgt_level else f"{src_level} -> {tgt_level}"
        log(f"seq2seq: {len(self.train)} train / {len(self.valid)} valid / {len(self.test)} test pairs; vocab "
             f"{len(self.train.src_vocab)} -> {len(self.train.tgt_vocab)} ({level_text} level)")
        check_batch_memory(self.train, config.batch, config.hidden, config.emb, config.layers,
                           directions=2 if config.bidirectional else 1)
        self.model = build_model(config, self.train.src_vocab, self.train.tgt_vocab)
        self.optimizer = get_optimizer(config.optimizer, lr=config.lr)
        self.schedule = make_schedule(config, self.optimizer)

    def run_config(self) -> dict:
        return {"src_vocab": self.train.src_vocab.to_json(), "tgt_vocab": self.train.tgt_vocab.to_json(),
                "decode_cap": self.decode_cap}

    def check_resume(self, run) -> None:
        stored = run.read_config()
        if stored.get("src_vocab") != self.train.src_vocab.to_json() or \
                stored.get("tgt_vocab") != self.train.tgt_vocab.to_json():
            raise ValueError(f"{run.config_path}: the vocabularies of the pairs now differ from the run's: "
                             f"was the data changed?")

    def epoch_batches(self, epoch: int):
        rng = np.random.default_rng([self.config.seed, epoch])
        return list(self.train.batches(self.config.batch, shuffle=True, rng=rng, bucket=self.config.bucket))

    def train_step(self, batch) -> tuple[float, int]:
        logits = self.model.forward(batch.src, batch.tgt_in, batch.src_mask)
        loss = self.loss_fn.forward(logits, batch.tgt_out, batch.tgt_mask)
        self.model.backward(self.loss_fn.backward())
        return loss, self.loss_fn.count

    def validate(self) -> dict:
        figures = evaluate(self.model, self.eval_valid, max_len=self.max_len, with_loss=False, cap=self.decode_cap)
        return {"valid_loss": teacher_forced_loss(self.model, self.valid),
                "valid_exact_match": figures["exact_match"], "valid_token_accuracy": figures["token_accuracy"],
                "valid_bleu": figures["bleu"]}

    def train_metrics(self, mean_loss: float, count: int, seconds: float) -> dict:
        return {"train_s": round(seconds, 2)}

    def final_metrics(self, history: list[dict]) -> dict:
        """Test figures of the model the trainer restored (the best by ``monitor``), and the
        validation figures of that same checkpoint's epoch: every figure names its source."""
        final = evaluate(self.model, self.test, max_len=self.max_len, beam=self.config.beam,
                         length_penalty=self.config.length_penalty, cap=self.decode_cap)
        source, row = checkpoint_source(history, self.monitor, self.mode)
        return {"exact_match": final["exact_match"], "token_accuracy": final["token_accuracy"],
                "bleu": final["bleu"], "target_level": final["target_level"], "loss": final["loss"],
                "test_pairs": len(self.test), **source,
                "valid_exact_match": row.get("valid_exact_match"), "valid_loss": row.get("valid_loss"),
                "params": self.model.count_params(),
                "examples": [{"source": s, "reference": t, "prediction": p}
                             for (s, t), p in list(zip(self.test.pairs, final["predictions"]))[:self.examples]]}

    def describe_epoch(self, row: dict) -> str:
        scores = describe_scores({"exact_match": row["valid_exact_match"], "bleu": row["valid_bleu"]},
                                 brief=True)
        return (f"train loss {row['train_loss']:.4f}, valid loss {row['valid_loss']:.4f}, valid {scores} "
                f"({row['train_s']:.1f} s)")

    def curve_keys(self) -> tuple:
        return ("train_loss", "valid_loss", "valid_exact_match")


def train_seq2seq(config: Seq2SeqConfig | None, run_dir=None, examples: int = 5, *, pairs=None,
                  resume: bool = False, overwrite: bool = False, overrides: dict | None = None,
                  callbacks=()) -> TrainResult:
    """Train a seq2seq model as ``config`` says; write the run to ``run_dir`` (when given).

    ``pairs``: the data in memory, ``(train, valid, test)`` lists of (source, target) strings,
    instead of the files or generator the config names (a resume needs them again). With
    ``resume`` the run's stored config is used (``overrides`` may change ``epochs``,
    ``max_minutes``, ``checkpoint_every``, ``checkpoint_seconds``, ``patience``, ``progress``).

    Returns a ``TrainResult``: ``metrics`` holds the test figures of the best model
    (``exact_match``, ``token_accuracy``, ``bleu``, ``loss``) plus ``valid_*`` figures,
    ``epochs``, ``wall_s``, ``params`` and a few ``examples`` (source, reference, prediction)
    from the test split; ``result.model`` is the model, ``result.task`` holds the data
    (``train``, ``valid``, ``test`` PairData, ``max_len``).
    """
    return train_from_config("seq2seq", Seq2SeqConfig, lambda c: Seq2SeqTask(c, pairs=pairs, examples=examples),
                             config, run_dir, resume=resume, overwrite=overwrite, overrides=overrides,
                             path_keys=("pairs", "valid", "test"),
                             trainer_options={"callbacks": callbacks,
                                              "plot_title": "seq2seq training"})


# ---- loading a run ---------------------------------------------------------------------------------


class Translator:
    """A trained run directory, ready to translate text: ``Translator(run_dir)(["text"])``."""

    def __init__(self, run_dir, checkpoint: str = "best"):
        run = RunDir(run_dir, create=False)
        self.config_dict = run.read_config()
        if self.config_dict.get("task") != "seq2seq":
            raise ValueError(f"{run.config_path} is a {self.config_dict.get('task')!r} run, not seq2seq")
        self.config = Seq2SeqConfig.from_run_config(self.config_dict)
        # config.json's "task" is the run kind ("seq2seq"); the data fields are the config's own
        self.src_vocab = Vocab.from_json(self.config_dict["src_vocab"])
        self.tgt_vocab = Vocab.from_json(self.config_dict["tgt_vocab"])
        path = run.best_path if checkpoint == "best" and run.best_path.exists() else run.last_path
        if not path.exists():
            raise FileNotFoundError(f"{run.path} holds no checkpoint (best.npz / last.npz): did training finish "
                                    f"an epoch?")
        self.checkpoint = "best" if path == run.best_path else "last"
        loaded = load_checkpoint(path)
        self.checkpoint_state = loaded.state or {}
        self.model = loaded.model
        self.model.eval()
        # runs written before decode_cap existed stored their fixed limit as max_decode_len
        self.max_len = self.config.max_decode_len
        self.decode_cap = self.config_dict.get("decode_cap")
        self.src_level, self.tgt_level = levels(self.config)

    def split_pairs(self, split: str) -> list:
        """The (source, target) pairs of the run's own ``split``, rebuilt from its config (same
        seed, same pairs)."""
        if split not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {split!r}: use train, valid or test")
        return dict(zip(("train", "valid", "test"), load_splits(self.config)))[split]

    def data(self, pairs) -> PairData:
        return PairData(pairs, self.src_vocab, self.tgt_vocab, self.src_level, self.config.lower,
                        tgt_level=self.tgt_level)

    def batch_size(self, data: PairData, max_len: int | None = None) -> int:
        """Pairs per batch of ``data`` within the prediction budget (``data/memory.py``): each
        row padded to the longest source, and to the longest target or decoding limit; first a
        MemoryError when one such pair alone needs more than the memory available. (A beam's
        rows are taken from this number: ``decode_data``.)"""
        c = self.config
        src_len = max((len(s) for s in data.src_ids), default=1)
        limit = decode_limits([src_len], max_len or self.max_len, self.decode_cap)[0]
        tgt_len = max(limit, max((len(t) for t in data.tgt_ids), default=0)) + 1
        one = pair_batch_bytes(1, src_len, tgt_len, c.hidden, c.emb, c.layers, len(self.tgt_vocab),
                               2 if c.bidirectional else 1)
        check_memory(one, f"one pair of {src_len} source tokens and {tgt_len} output steps",
                     "give shorter sources")
        return int(max(1, min(PREDICTION_ROWS, PREDICTION_BUDGET // one)))

    def __call__(self, texts, beam: int = 1, length_penalty: float = 1.0, max_len: int | None = None) -> list[dict]:
        """Translations of ``texts``. A text longer than the run's ``max_line_chars`` (the
        longest line training read) is cut to it, with a line on stderr naming it."""
        texts = list(texts)
        if not texts:
            return []
        cap = self.config.max_line_chars
        long = [i for i, t in enumerate(texts) if cap is not None and len(t) > cap]
        if long:
            log(f"translate: {len(long)} text(s) longer than the run's max_line_chars of {cap} characters cut to "
                f"it: text " + ", ".join(str(i + 1) for i in long[:5]) + (", ..." if len(long) > 5 else ""))
        data = self.data([(t[:cap] if cap is not None else t, "") for t in texts])
        outputs, attention = decode_data(self.model, data, self.batch_size(data, max_len),
                                         max_len=max_len or self.max_len, beam=beam,
                                         length_penalty=length_penalty, cap=self.decode_cap)
        results = []
        for text, src_tokens, out, attn in zip(texts, data.src_tokens, outputs, attention):
            results.append({"source": text, "translation": detokenize(out, self.tgt_level),
                            "source_tokens": src_tokens, "tokens": out, "attention": attn})
        return results


def translate(run_dir, texts, beam: int = 1, plot=None, length_penalty: float = 1.0) -> list[dict]:
    """Translate ``texts`` with the best model of ``run_dir``; with ``plot`` (a PNG path) save the
    attention heatmap of the first text (attention models only)."""
    translator = Translator(run_dir)
    results = translator(texts, beam=beam, length_penalty=length_penalty)
    if plot is not None and results:
        from ..plots import plot_or_warn

        plot_or_warn(save_attention_plot, results[0], plot)  # the translations stand without matplotlib
    return results


def save_attention_plot(result: dict, path, title: str | None = None):
    """Heatmap of one translation's attention (rows: output tokens incl. <eos>)."""
    from ..plots import plot_attention

    if result.get("attention") is None:
        raise ValueError("this model has no attention (trained with --attention none): nothing to plot")
    weights = np.asarray(result["attention"])
    target = list(result["tokens"]) + ["<eos>"]
    weights = weights[:len(target)]
    target = target[:len(weights)]
    source = [t if t != " " else "␣" for t in result["source_tokens"]]
    return plot_attention(weights, source, target, path,
                          title=title or f"{result['source']} -> {result['translation']}")


def evaluate_run(run_dir, pairs=None, split: str = "test", beam: int = 1, length_penalty: float = 1.0,
                 checkpoint: str = "best", examples: int = 5) -> dict:
    """Exact match, token accuracy, BLEU and loss of a seq2seq run's model on ``pairs`` (a TSV
    path, or a list of (source, target)) or, without them, on the run's own ``split`` (rebuilt
    from its config: same seed, same pairs). Returns a dict; prints nothing."""
    translator = Translator(run_dir, checkpoint=checkpoint or "best")
    if pairs is not None and not isinstance(pairs, (list, tuple)):
        where = str(pairs)
        pairs = read_pairs(pairs, swap=translator.config.swap, sep=translator.config.sep)
    elif pairs is not None:
        where = "the given pairs"
    else:
        pairs = translator.split_pairs(split)
        where = f"the run's {split} split"
    data = translator.data(pairs)
    t0 = time.perf_counter()
    figures = evaluate(translator.model, data, translator.batch_size(data), max_len=translator.max_len, beam=beam,
                       length_penalty=length_penalty, cap=translator.decode_cap)
    figures.update(checkpoint_of(translator.checkpoint_state, translator.checkpoint))
    predictions = figures.pop("predictions")
    figures["examples"] = [{"source": s, "reference": t, "prediction": p}
                           for (s, t), p in list(zip(data.pairs, predictions))[:examples]]
    figures.update({"run_dir": str(run_dir), "pairs": where, "beam": beam,
                    "wall_s": round(time.perf_counter() - t0, 2)})
    return figures
