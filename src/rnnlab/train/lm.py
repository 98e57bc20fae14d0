"""Train a recurrent language model with truncated BPTT (Zaremba et al. 2014), and evaluate it.

    config = LMConfig(**PRESETS["zaremba-small"])
    result = train_lm(config, "runs/ptb-small")      # TrainResult: result["perplexity"], .history
    evaluate_lm("runs/ptb-small", split="test")

The loop is ``train/loop.py``'s ``Trainer``; this module supplies ``LMTask`` (its windows, its
loss and backward, its validation, its carried state) and the functions around a run.

One epoch reads the training text once as ``batch`` parallel streams, ``bptt`` tokens at a
time (``data.batching``). The recurrent state is carried from one window to the next, but the
gradient stops at the window start; the state is reset at the start of every epoch and of
every evaluation. Each window: forward, softmax cross-entropy, backward, clip the global
gradient norm, one optimizer step. After each epoch: validation, one line in metrics.jsonl,
best.npz when the validation loss improved, last.npz, curves.png, then the learning rate of
the next epoch (StepDecay: lr * decay ** max(epoch - decay_start, 0)).

**Resume.** last.npz is also written every ``checkpoint_every`` windows (or
``checkpoint_seconds`` seconds) inside an epoch. It holds the model, the optimizer state, the
schedule, the position (epoch, next window: ``batch``), the carried state, the epoch's running loss, the
dropout generators' states and the wall time so far, so ``train_lm(..., resume=True)`` after a
kill continues exactly where that checkpoint stood and, with the same seed, ends at the same
numbers as a run that was never interrupted.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import distributed as dist
from .. import initializers, validate
from ..checkpoint import load_checkpoint
from ..data import corpora
from ..data.batching import BPTTBatches
from ..data.memory import check_memory, padded_batch_bytes
from ..data.vocab import Vocab
from ..fileio import atomic_write_text
from ..losses import SoftmaxCrossEntropy
from ..metrics import bits_per_char, perplexity
from ..models.base import eval_mode
from ..models.lm import LanguageModel
from ..optim import StepDecay
from ..optim import get as get_optimizer
from .config import (CELLS, DATA, MAX_MINUTES_HELP, MODEL, PATIENCE_DEFAULT, TaskConfig, checkpoint_of,
                     checkpoint_source, optimizer_name, setting)
from .loop import Callback, RunDir, Task, TrainResult, train_from_config
from .task import log


def corpus_name(owner: str, name: str, value) -> str:
    """A known corpus by any of its names, in any case (``corpora.DATASET_ALIASES``)."""
    if not isinstance(value, str) or value.lower() not in corpora.DATASET_ALIASES:
        validate.fail(owner, f"{name} must be one of {', '.join(corpora.DATASET_ALIASES)} (any case), got {value!r}")
    return value


def lm_split(owner: str, name: str, value) -> tuple[float, ...]:
    """A split (``validate.fractions``) that leaves text to validate and to test on: the
    validation loss picks best.npz and the test figures are the run's result."""
    parts = validate.fractions(owner, name, value)
    if parts[1] == 0 or parts[2] == 0:
        validate.fail(owner, f"{name} must leave a validation and a test part (both > 0), got {value!r}")
    return parts


@dataclass
class LMConfig(TaskConfig):
    """Everything that defines a language-model run (stored in RUN_DIR/config.json)."""

    RUN_KEYS = ("vocab_size", "corpus")

    # data
    dataset: str | None = setting("ptb", "a known corpus (default: the preset's, else ptb); found under "
                                  "$RNNLAB_DATA or downloaded", check=corpus_name, choices=("ptb", "shakespeare"),
                                  group=DATA, positional=True)  # ignored when text is given
    text: str | None = setting(None, "your own UTF-8 corpus instead of a dataset", group=DATA, metavar="FILE")
    valid_text: str | None = setting(None, "validation text (default: cut from --text)", group=DATA,
                                     flag="--valid", metavar="FILE")
    test_text: str | None = setting(None, "test text (default: cut from --text)", group=DATA, flag="--test",
                                    metavar="FILE")
    split: tuple = setting((0.9, 0.05, 0.05), "fractions of a single --text file for train,valid,test; valid and "
                           "test must not be empty", check=lm_split, group=DATA, metavar="TR,VA,TE")
    level: str | None = setting(None, "tokens: words (PTB style) or characters (default: the dataset's; char "
                                "for --text)", choices=("word", "char"), group=DATA)
    data_dir: str | None = setting(None, "folder holding the dataset (default $RNNLAB_DATA, then the cache)",
                                   group=DATA, metavar="DIR")
    limit: int | None = setting(None, "use only the first N tokens of each split (smoke runs)",
                                check=validate.positive_int, group=DATA, metavar="N")
    # model
    cell: str = setting("lstm", "recurrent cell", check=validate.cell, choices=CELLS, group=MODEL)
    layers: int = setting(2, "stacked recurrent layers", check=validate.positive_int, group=MODEL)
    hidden: int = setting(200, "units of each recurrent layer", check=validate.positive_int, group=MODEL)
    emb: int | None = setting(None, "embedding size (default: --hidden)", check=validate.positive_int,
                              group=MODEL)
    dropout: float = setting(0.0, "dropout between layers (Zaremba et al.)", check=validate.rate, group=MODEL)
    variational: bool = setting(False, "one dropout mask per sequence, shared over time steps", group=MODEL)
    tie_weights: bool = setting(False, "share the embedding and output matrices (needs --emb == --hidden)",
                                group=MODEL)
    init_scale: float | None = setting(0.1, "initialize every weight from U(-s, s)",
                                       check=validate.positive_float, group=MODEL)
    # optimization. Left at None, the optimizer follows the token level (word: sgd, char: adam;
    # the README's "Defaults" measured both), and lr, lr_decay and sum_over_time take the
    # optimizer's own defaults (OPTIMIZER_DEFAULTS); all are filled in when the config is made.
    optimizer: str | None = setting(None, "default: sgd at word level, adam at character level",
                                    check=optimizer_name, choices=("sgd", "adam", "adamw"))
    lr: float | None = setting(None, "learning rate (default: sgd 1.0, adam/adamw 2e-3)",
                               check=validate.positive_float)
    lr_decay: float | None = setting(None, "multiply the lr by this after each epoch >= --decay-start (default: "
                                     "sgd 0.5, adam/adamw 1 = constant)", check=validate.decay_factor)
    decay_start: int = setting(4, "epochs at the initial lr before decaying", check=validate.non_negative_int)
    clip: float | None = setting(5.0, "global gradient-norm clipping (0: none)", check=validate.non_negative_float)
    # Zaremba et al.'s loss is summed over the window's steps and averaged over the batch, so
    # its gradient is bptt times that of the per-token mean; their lr 1 and clip 5 assume it.
    # None: True under SGD (lr 1 then means what the paper's does), False under Adam (which
    # divides the scale out anyway, so the summed loss would only change what clip 5 cuts).
    sum_over_time: bool | None = setting(
        None, "gradient of the loss summed over the window's steps, as Zaremba et al. (default under sgd, so "
              "lr 1 means the paper's rate)", off_flag="--mean-over-time",
        off_help="gradient of the mean loss per token (default under adam/adamw)")
    bptt: int = setting(20, "truncated-BPTT window length", check=validate.positive_int)
    batch: int = setting(20, "parallel streams", check=validate.positive_int)
    epochs: int = setting(13, "passes over the training text (with --max-minutes and no --epochs: until the "
                          "budget or early stopping)", check=validate.positive_int, resumable=True,
                          flag_default_none=True)
    eval_batch: int = setting(1, "streams for the final valid/test figures (paper: 1)", check=validate.positive_int)
    # run
    seed: int = setting(0, "seed of the weights, dropout and batch order", check=validate.non_negative_int)
    checkpoint_every: int | None = setting(None, "save last.npz every this many windows (default: every 60 s)",
                                           check=validate.positive_int, resumable=True, metavar="WINDOWS")
    checkpoint_seconds: float = setting(60.0, "seconds between mid-epoch checkpoints",
                                        check=validate.non_negative_float, resumable=True, flag=None)
    max_minutes: float | None = setting(None, MAX_MINUTES_HELP, check=validate.positive_float, resumable=True)
    patience: int | None = setting(None, "stop after this many epochs without a better validation loss "
                                   f"{PATIENCE_DEFAULT}", check=validate.positive_int, resumable=True)
    preset: str | None = setting(None, "a published configuration; other flags override its values",
                                 choices=("zaremba-small", "zaremba-medium", "char-shakespeare"), group=MODEL)

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer is None:
            self.optimizer = "adam" if self.token_level() == "char" else "sgd"
        if self.optimizer in OPTIMIZER_DEFAULTS:
            for key, value in OPTIMIZER_DEFAULTS[self.optimizer].items():
                if getattr(self, key) is None:
                    setattr(self, key, value)

    def token_level(self) -> str:
        """The level the corpus is read at: ``level``, else the data's own (a ``text`` file and
        Tiny Shakespeare: characters; PTB: words)."""
        if self.level is not None:
            return self.level
        if self.text is not None or corpora.DATASET_ALIASES.get((self.dataset or "").lower()) == "shakespeare":
            return "char"
        return "word"


# Measured defaults per optimizer (README, "Defaults"): SGD as Zaremba et al. (lr 1 on the loss
# summed over the window, halved after every epoch from the 4th); Adam at 2e-3 on the per-token
# mean with a constant rate (a halving schedule made for SGD starves Adam within a few epochs).
# At word level SGD did better (PTB, 2 epochs), at character level Adam (Tiny Shakespeare).
OPTIMIZER_DEFAULTS = {
    "sgd": dict(lr=1.0, lr_decay=0.5, sum_over_time=True),
    "adam": dict(lr=2e-3, lr_decay=1.0, sum_over_time=False),
    "adamw": dict(lr=2e-3, lr_decay=1.0, sum_over_time=False),
}


PRESETS = {
    # Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network Regularization", PTB.
    "zaremba-small": dict(dataset="ptb", level="word", cell="lstm", layers=2, hidden=200, emb=200,
                          bptt=20, batch=20, init_scale=0.1, optimizer="sgd", lr=1.0, lr_decay=0.5,
                          decay_start=4, epochs=13, clip=5.0, dropout=0.0, sum_over_time=True),
    "zaremba-medium": dict(dataset="ptb", level="word", cell="lstm", layers=2, hidden=650, emb=650,
                           bptt=35, batch=20, init_scale=0.05, optimizer="sgd", lr=1.0, lr_decay=0.8,
                           decay_start=6, epochs=39, clip=5.0, dropout=0.5, sum_over_time=True),
    # Tiny Shakespeare, characters, for a 60-minute budget on a 2-core CPU. A trial on a shared
    # machine (one BLAS thread, ~5,000-6,600 chars/s) reached validation loss 1.507 nats/char
    # after 2.8 epochs (9 minutes); the decay from epoch 4 on then trades speed for the last bits.
    "char-shakespeare": dict(dataset="shakespeare", level="char", cell="lstm", layers=2, hidden=384,
                             emb=64, bptt=64, batch=32, init_scale=0.08, optimizer="adam", lr=2e-3,
                             lr_decay=0.8, decay_start=3, epochs=20, clip=5.0, dropout=0.2,
                             eval_batch=8, max_minutes=60.0),
}


def make_config(preset: str | None = None, **overrides) -> LMConfig:
    """LMConfig from the defaults, then a preset, then the overrides that are not None.

    An override of the optimizer drops the preset's optimizer-bound values (lr, lr_decay,
    sum_over_time) that were not overridden too: ``--preset zaremba-small --optimizer adam``
    trains at Adam's default rate, not at SGD's lr 1. Without a preset or an optimizer, the
    token level chooses it (``LMConfig.token_level``: word sgd, char adam)."""
    values = {}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        values.update(PRESETS[preset], preset=preset)
        if overrides.get("optimizer", values.get("optimizer")) != values.get("optimizer"):
            for key in OPTIMIZER_DEFAULTS["sgd"]:
                values.pop(key, None)
    values.update(overrides)
    return LMConfig.from_dict(values)


# ---- building blocks ----------------------------------------------------------------------


def load_corpus(config: LMConfig) -> corpora.Corpus:
    return corpora.load_corpus(config.dataset, text=config.text, level=config.level,
                               data_dir=config.data_dir, split=config.split, valid=config.valid_text,
                               test=config.test_text, limit=config.limit)


def build_model(config: LMConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(vocab_size, emb=config.emb, hidden=config.hidden, layers=config.layers,
                         cell=config.cell, dropout=config.dropout, variational=config.variational,
                         tie_weights=config.tie_weights, init_scale=config.init_scale,
                         name="language_model", seed=config.seed)


def build_optimizer(config: LMConfig):
    return get_optimizer(config.optimizer, lr=config.lr)


def evaluate(model: LanguageModel, ids, batch: int, bptt: int, carry_state: bool = True,
             progress: bool = False, desc: str = "eval") -> dict:
    """Mean next-token loss (nats) over ``ids``: ``{"loss", "perplexity", "tokens"}``.

    The state starts from zeros and is carried across windows (``carry_state=False`` resets it
    before every window instead: what a model without truncated BPTT would see). Dropout off.
    Too few tokens to predict anything: loss and perplexity None (not measured), tokens 0.
    Under mpiexec each rank reads its share of the ``batch`` streams (none when there are
    fewer streams than ranks) and the sums are reduced: every rank returns the global figures.
    """
    if len(ids) < 2:
        return {"loss": None, "perplexity": None, "tokens": 0}
    batch = min(batch, max(1, (len(ids) - 1) // 2))
    batches = BPTTBatches(ids, batch, bptt)
    loss_fn = SoftmaxCrossEntropy()
    model.reset_states()
    total, count = 0.0, 0
    try:
        with eval_mode(model):
            for x, y in _bar(batches, progress, desc=desc, unit="win"):
                x, y = dist.shard(x, y, allow_empty=True)  # this rank's streams (all of them alone)
                if x.shape[0] == 0:
                    continue
                if not carry_state:
                    model.reset_states()
                loss = loss_fn.forward(model.forward(x), y)
                total += loss * loss_fn.count
                count += loss_fn.count
    finally:
        model.reset_states()
    total, count = dist.allreduce_sum([total, count])
    count = int(count)
    if count == 0:
        return {"loss": None, "perplexity": None, "tokens": 0}
    mean = total / count
    return {"loss": mean, "perplexity": perplexity(mean), "tokens": count}


def _bar(iterable, progress: bool | None, **kwargs):
    if not (sys.stderr.isatty() if progress is None else progress):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def looks_like_words(text: str) -> bool:
    """Whether ``text`` looks like a word-level corpus (PTB / WikiText style): it holds
    ``<unk>`` tokens, or nearly all its punctuation stands apart between spaces (" , ")."""
    if "<unk>" in text:
        return True
    marks = [i for i, ch in enumerate(text) if ch in ",.;:!?"]
    if len(marks) < 20:
        return False
    spaced = sum(1 for i in marks if (i == 0 or text[i - 1] == " ")
                 and (i + 1 == len(text) or text[i + 1] in " \n"))
    return spaced >= 0.8 * len(marks)


def level_notice(path) -> str:
    """What ``--text`` without ``--level`` trains on (characters), said before training starts;
    a warning when the text looks tokenized into words."""
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(1_000_000)
    if looks_like_words(head):
        return (f"warning: {path} looks like a word-level corpus (<unk> tokens or spaced punctuation), but "
                f"--text without --level trains at character level; give --level word for words")
    return "rnnlab train lm: --text without --level: character level (--level word for words)"


# ---- the task -----------------------------------------------------------------------------


class LMTask(Task):
    """Language modelling on the loop: batches are truncated-BPTT windows; the carried state
    is the task's own resumable state (it goes into every last.npz), reset at each epoch start;
    validation carries its own state from zeros and puts the training state back."""

    name = "lm"
    unit = "window"

    def __init__(self, config: LMConfig, corpus: corpora.Corpus | None = None, progress: bool = False):
        self.config = config
        self.corpus = corpus          # in memory; None: read as the config says
        self.progress = progress
        self.loss_fn = SoftmaxCrossEntropy()

    def setup(self) -> None:
        config = self.config
        if self.corpus is None:
            if config.text is not None and config.level is None:
                log(level_notice(config.text))
            self.corpus = load_corpus(config)
        log(f"rnnlab train lm: {self.corpus.summary()}")
        self.batches = BPTTBatches(self.corpus.train, config.batch, config.bptt)
        initializers.seed(config.seed)
        self.model = build_model(config, len(self.corpus.vocab))
        self.optimizer = build_optimizer(config)
        self.schedule = StepDecay(self.optimizer, config.lr_decay, config.decay_start)
        loss = "summed over the window" if config.sum_over_time else "mean per token"
        decay = f", x{config.lr_decay:g} per epoch from epoch {config.decay_start + 1}" if config.lr_decay != 1 else ""
        log(f"rnnlab train lm: {self.model.count_params():,} parameters, {len(self.batches)} windows of "
             f"{config.batch} x {config.bptt} per epoch, {config.optimizer} lr {config.lr:g}{decay} (loss {loss})")

    @property
    def level(self) -> str:
        return self.corpus.level

    def run_config(self) -> dict:
        return {"level": self.level, "vocab_size": len(self.corpus.vocab), "corpus": self.corpus.name}

    def write_files(self, run) -> None:
        atomic_write_text(run.path / "vocab.json", json.dumps(self.corpus.vocab.to_json(), ensure_ascii=False))

    def check_resume(self, run) -> None:
        vocab_path = run.path / "vocab.json"
        if vocab_path.exists() and Vocab.load(vocab_path).itos != self.corpus.vocab.itos:
            raise ValueError(f"{vocab_path} does not match the vocabulary of the corpus the run was "
                             f"configured with: was the data changed?")

    def epoch_batches(self, epoch: int):
        return self.batches  # the same windows every epoch (the streams are not shuffled)

    def start_epoch(self, epoch: int, batch: int) -> None:
        if batch == 0:  # a fresh epoch starts from a zero state
            self.model.reset_states()

    def train_step(self, batch) -> tuple[float, int]:
        x, y = batch
        # forward from the state carried from the previous window; backward stops at its start
        loss = self.loss_fn.forward(self.model.forward(x), y)
        dlogits = self.loss_fn.backward()
        if self.config.sum_over_time:
            dlogits *= x.shape[1]
        self.model.backward(dlogits)
        return loss, self.loss_fn.count

    def validate(self) -> dict:
        carried = self.model.states  # validation resets the state; training goes on from this one
        valid = evaluate(self.model, self.corpus.valid, self.config.batch, self.config.bptt,
                         progress=self.progress, desc="valid")
        self.model.set_states(carried)
        row = {"valid_loss": valid["loss"], "valid_ppl": valid["perplexity"]}
        if self.level == "char":
            row["valid_bpc"] = bits_per_char(valid["loss"])
        return row

    def train_metrics(self, mean_loss: float, count: int, seconds: float) -> dict:
        return {"train_ppl": perplexity(mean_loss), "tokens": count, "tokens_per_s": count / max(seconds, 1e-9)}

    def state_dict(self) -> dict:
        # under mpiexec each rank carries the state of its streams: the checkpoint holds them all
        states = self.model.states
        return {"carried": None if states is None else
                [[dist.allgather_rows(s) for s in layer] for layer in states]}

    def load_state_dict(self, state: dict) -> None:
        carried = state.get("carried")  # all streams; this rank takes its own (any N)
        self.model.set_states(None if carried is None else
                              [[dist.shard(s) for s in layer] for layer in carried])

    def final_metrics(self, history: list[dict]) -> dict:
        """Valid and test figures of the (best) model: state carried, ``eval_batch`` streams;
        ``checkpoint``, ``checkpoint_metric``, ``checkpoint_epoch`` say which model that is."""
        source, _ = checkpoint_source(history, self.monitor, self.mode)
        return {**evaluate_corpus(self.model, self.corpus, self.config, progress=self.progress), **source}

    def describe_epoch(self, row: dict) -> str:
        return (f"train ppl {row['train_ppl']:.2f}, valid ppl {row['valid_ppl']:.2f} (loss "
                f"{row['valid_loss']:.4f}), lr {row['lr']:g}, {row['tokens_per_s']:,.0f} tok/s, "
                f"{row['wall_s']:.0f} s")

    def postfix(self, mean_loss: float) -> str:
        return f"ppl {perplexity(mean_loss):.2f}"


# ---- training -----------------------------------------------------------------------------


class _OnWindow(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_batch_end(self, trainer, epoch, batch, loss):
        self.fn(epoch, batch)


def train_lm(config: LMConfig | None, run_dir=None, resume: bool = False, progress: bool | None = None,
             overrides: dict | None = None, on_window=None, corpus: corpora.Corpus | None = None,
             overwrite: bool = False, callbacks=()) -> TrainResult:
    """Train (or, with ``resume``, continue) a language model; with ``run_dir`` write the run
    folder there, without one train in memory. Returns a ``TrainResult`` whose ``metrics`` are
    the final figures: test ``perplexity``, ``loss``, ``tokens`` (+ ``bits_per_char`` for
    characters), ``valid_perplexity``, ``epochs``, ``wall_s`` (``result["perplexity"]`` works).

    ``corpus``: data in memory (a ``corpora.Corpus``) instead of the files the config names.
    With ``resume`` the run's stored config is used (``config`` may be None); ``overrides`` may
    change its ``epochs``, ``max_minutes``, ``checkpoint_every``, ``checkpoint_seconds`` or
    ``patience``. ``on_window(epoch, window)``, when given, is called after every training
    window (tests use it to interrupt a run). ``progress``: None shows bars when stderr is a
    terminal.
    """
    callbacks = [*callbacks, *([_OnWindow(on_window)] if on_window is not None else [])]

    def trainer_options(task):
        title = f"{task.config.preset or task.corpus.name}: {task.config.cell} {task.config.layers}x{task.config.hidden}"
        return {"progress": progress, "callbacks": callbacks, "plot_title": title}

    return train_from_config("lm", LMConfig, lambda c: LMTask(c, corpus=corpus, progress=bool(progress)), config,
                             run_dir, resume=resume, overwrite=overwrite, overrides=overrides,
                             path_keys=("text", "valid_text", "test_text", "data_dir"),
                             trainer_options=trainer_options)


# ---- evaluation and sampling --------------------------------------------------------------


def _figures(loss: float | None, tokens: int, level: str) -> dict:
    """Loss, perplexity (and bits per character); None for each when nothing was measured."""
    out = {"loss": loss, "perplexity": perplexity(loss) if loss is not None else None, "tokens": tokens}
    if level == "char":
        out["bits_per_char"] = bits_per_char(loss) if loss is not None else None
    return out


def evaluate_checkpoint(path, corpus: corpora.Corpus, config: LMConfig, progress: bool = False) -> dict:
    """Valid and test figures of the checkpoint at ``path`` (test ones at the top level)."""
    return evaluate_corpus(load_checkpoint(path).model, corpus, config, progress)


def evaluate_corpus(model, corpus: corpora.Corpus, config: LMConfig, progress: bool = False) -> dict:
    """Valid and test figures of ``model`` on ``corpus`` (test ones at the top level)."""
    batch = config.eval_batch
    valid = evaluate(model, corpus.valid, batch, config.bptt, progress=progress, desc="valid")
    test = evaluate(model, corpus.test, batch, config.bptt, progress=progress, desc="test")
    result = {**_figures(test["loss"], test["tokens"], corpus.level), "split": "test",
              "valid_loss": valid["loss"], "valid_perplexity": valid["perplexity"]}
    if corpus.level == "char":
        result["valid_bits_per_char"] = bits_per_char(valid["loss"]) if valid["loss"] is not None else None
    return result


def load_run(run_dir, checkpoint: str = "best"):
    """(config, vocab, model) of a finished or running language-model run."""
    config, vocab, loaded, _ = _load_run(run_dir, checkpoint)
    return config, vocab, loaded.model


def _load_run(run_dir, checkpoint: str = "best"):
    """(config, vocab, loaded checkpoint, "best" or "last": the one actually read)."""
    run = RunDir(run_dir, create=False)
    stored = run.read_config()
    if stored.get("task") != "lm":
        raise ValueError(f"{run.config_path} is a {stored.get('task')!r} run, not a language model")
    config = LMConfig.from_run_config(stored)
    path = run.best_path if checkpoint == "best" else run.last_path
    if not path.exists():
        other = run.last_path if checkpoint == "best" else run.best_path
        if not other.exists():
            raise FileNotFoundError(f"{run.path} holds no checkpoint yet (best.npz / last.npz)")
        path = other
    loaded = load_checkpoint(path)
    vocab = run_vocab(run.path, loaded.model, path)
    return config, vocab, loaded, "best" if path == run.best_path else "last"


def run_vocab(run_dir, model, source) -> Vocab:
    """The vocab.json of a run folder, checked (a ValueError naming the file) as a vocabulary
    and against the tokens ``model`` (read from ``source``) predicts."""
    path = Path(run_dir) / "vocab.json"
    vocab = Vocab.load(path)
    if getattr(model, "vocab_size", len(vocab)) != len(vocab):
        raise ValueError(f"{path} holds {len(vocab)} tokens but the model of {source} predicts "
                         f"{model.vocab_size}: the vocabulary does not belong to this run")
    return vocab


def evaluate_lm(run_dir, split: str = "test", text=None, batch: int | None = None,
                checkpoint: str = "best", progress: bool = False) -> dict:
    """Perplexity, loss, tokens (and bits per character) of a run's model on a split of its
    corpus or on another UTF-8 ``text`` file (tokenized with the run's level and vocabulary),
    with ``checkpoint`` (the one read: "best" by ``checkpoint_metric``, or "last") and its
    ``checkpoint_epoch``."""
    config, vocab, loaded, which = _load_run(run_dir, checkpoint)
    model = loaded.model
    level = config.level
    if text is not None:
        ids = corpora.encode(corpora.tokenize_lines(corpora.read_text(text), level), vocab)
        source = str(text)
    else:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {split!r}: use train, valid or test")
        corpus = load_corpus(config)
        if corpus.vocab.itos != vocab.itos:
            raise ValueError(f"the corpus of {run_dir} now gives another vocabulary than the run's "
                             f"vocab.json: was the data changed?")
        ids = getattr(corpus, split)
        source = split
    batch = batch or config.eval_batch
    if len(ids) // batch < 2:
        batch = 1
    check_memory(padded_batch_bytes(batch, config.bptt, config.emb or config.hidden, config.hidden, config.layers,
                                    outputs=len(vocab)),
                 f"a window of {batch} streams of {config.bptt} tokens", "lower --batch")
    result = evaluate(model, ids, batch, config.bptt, progress=progress, desc=source)
    return {**_figures(result["loss"], result["tokens"], level), "split": source,
            **checkpoint_of(loaded.state, which)}


def sample_lm(run_dir, prime: str = "", length: int = 200, temperature: float = 1.0,
              top_k: int | None = None, seed: int | None = 0, checkpoint: str = "best") -> dict:
    """Text generated by a run's model after ``prime``; the same seed gives the same text."""
    config, vocab, model = load_run(run_dir, checkpoint)
    level = config.level
    tokens = corpora.tokenize_lines(prime, level) if prime else []
    if level == "word" and tokens and not prime.endswith("\n"):
        tokens = tokens[:-1]  # tokenize_lines ends every line with <eos>; an open prime continues the line
    if not tokens:  # start as a new line / text would
        tokens = ["<eos>"] if level == "word" else (["\n"] if "\n" in vocab else [vocab.itos[-1]])
    ids = model.generate(vocab.encode(tokens), length, temperature=temperature, top_k=top_k, seed=seed)
    generated = corpora.detokenize_lines(vocab.decode(ids, strip_specials=False), level)
    if level == "word" and prime and not prime.endswith(("\n", " ")) and not generated.startswith("\n"):
        generated = " " + generated
    return {"text": prime + generated, "prime": prime, "generated": generated, "length": length,
            "temperature": temperature, "top_k": top_k, "seed": seed}
