"""Train a recurrent language model with truncated BPTT (Zaremba et al. 2014), and evaluate it.

    config = LMConfig(**PRESETS["zaremba-small"])
    result = train_lm(config, "runs/ptb-small")      # {"perplexity": ..., "loss": ..., ...}
    evaluate_lm("runs/ptb-small", split="test")

One epoch reads the training text once as ``batch`` parallel streams, ``bptt`` tokens at a
time (``data.batching``). The recurrent state is carried from one window to the next, but the
gradient stops at the window start; the state is reset at the start of every epoch and of
every evaluation. Each window: forward, softmax cross-entropy, backward, clip the global
gradient norm, one optimizer step. After each epoch: validation, one line in metrics.jsonl,
best.npz when the validation loss improved, last.npz, curves.png, then the learning rate of
the next epoch (StepDecay: lr * decay ** max(epoch - decay_start, 0)).

**Resume.** last.npz is also written every ``checkpoint_every`` windows (or
``checkpoint_seconds`` seconds) inside an epoch. It holds the model, the optimizer state, the
schedule, the position (epoch, next window), the carried state, the epoch's running loss, the
dropout generators' states and the wall time so far, so ``train_lm(..., resume=True)`` after a
kill continues exactly where that checkpoint stood and, with the same seed, ends at the same
numbers as a run that was never interrupted.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass

from .. import initializers
from ..data import corpora
from ..data.batching import BPTTBatches
from ..data.vocab import Vocab
from ..losses import SoftmaxCrossEntropy
from ..metrics import bits_per_char, perplexity
from ..models.lm import LanguageModel
from ..optim import StepDecay, clip_grad_norm
from ..optim import get as get_optimizer
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import RunDir, atomic_write_text, check_finite_loss


@dataclass
class LMConfig:
    """Everything that defines a language-model run (stored in RUN_DIR/config.json)."""

    # data
    dataset: str | None = "ptb"        # "ptb" or "shakespeare"; ignored when text is given
    text: str | None = None            # a user's corpus (UTF-8 file); split by `split` unless
    valid_text: str | None = None      # ... valid / test files are given
    test_text: str | None = None
    level: str | None = None           # "word" or "char"; None: the dataset's own (ptb word, text char)
    data_dir: str | None = None        # folder holding the dataset; None: $RNNLAB_DATA, then the cache
    split: tuple = (0.9, 0.05, 0.05)   # train / valid / test fractions of a single text file
    limit: int | None = None           # keep the first `limit` tokens of each split (smoke runs)
    # model
    cell: str = "lstm"                 # lstm | gru | rnn
    layers: int = 2
    hidden: int = 200
    emb: int | None = None             # None: same as hidden
    dropout: float = 0.0               # Zaremba dropout on the non-recurrent connections
    variational: bool = False          # one dropout mask per sequence, shared over time
    tie_weights: bool = False          # output layer = embedding matrix (needs emb == hidden)
    init_scale: float | None = 0.1     # every weight ~ U(-s, s); None: Keras defaults
    # optimization
    optimizer: str = "sgd"             # sgd | adam | adamw
    lr: float = 1.0
    lr_decay: float = 0.5              # multiply lr by this after each epoch >= decay_start
    decay_start: int = 4
    clip: float | None = 5.0           # global gradient-norm clipping (0 or None: off)
    # Zaremba et al.'s loss is summed over the window's steps and averaged over the batch, so
    # its gradient is bptt times that of the per-token mean; their lr 1 and clip 5 assume it.
    sum_over_time: bool = False
    bptt: int = 20                     # truncated-BPTT window (unroll length)
    batch: int = 20                    # parallel streams
    epochs: int = 13
    eval_batch: int = 1                # streams for the final valid/test figures (paper: 1)
    # run
    seed: int = 0
    checkpoint_every: int | None = None    # windows between mid-epoch checkpoints (None: by time)
    checkpoint_seconds: float = 60.0       # seconds between mid-epoch checkpoints
    max_minutes: float | None = None       # stop (validate, save) once this much training time passed
    preset: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "LMConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if "split" in values and values["split"] is not None:
            values["split"] = tuple(values["split"])
        return cls(**values)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["split"] = list(self.split)
        return data


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
    """LMConfig from the defaults, then a preset, then the overrides that are not None."""
    values = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        values.update(PRESETS[preset], preset=preset)
    values.update({k: v for k, v in overrides.items() if v is not None})
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
    """
    batches = BPTTBatches(ids, batch, bptt)
    loss_fn = SoftmaxCrossEntropy()
    was_training = model.training
    model.eval()
    model.reset_states()
    total, count = 0.0, 0
    try:
        for x, y in _bar(batches, progress, desc=desc, unit="win"):
            if not carry_state:
                model.reset_states()
            loss = loss_fn.forward(model.forward(x), y)
            total += loss * loss_fn.count
            count += loss_fn.count
    finally:
        model.reset_states()
        model.train(was_training)
    mean = total / count
    return {"loss": mean, "perplexity": perplexity(mean), "tokens": count}


def _bar(iterable, progress: bool, **kwargs):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def _plot(run: RunDir, rows: list[dict], title: str) -> None:
    try:
        from ..plots import plot_curves

        plot_curves(rows, run.curves_path, keys=("train_loss", "valid_loss"), title=title,
                    ylabel="loss (nats per token)")
    except RuntimeError as err:  # matplotlib is optional
        warnings.warn(f"no curves.png: {err}", stacklevel=2)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _save_last(run, model, optimizer, schedule, position: dict) -> None:
    """last.npz: everything ``resume`` needs to continue from this exact point."""
    state = {**position, "schedule": schedule.state_dict(), "carried": model.states,
             "rng": model.rng_state()}
    save_checkpoint(run.last_path, model, optimizer, state=state)


# ---- training -----------------------------------------------------------------------------


def train_lm(config: LMConfig | None, run_dir, resume: bool = False, progress: bool = True,
             overrides: dict | None = None, on_window=None) -> dict:
    """Train (or, with ``resume``, continue) a language model in ``run_dir``; returns the final
    figures: test ``perplexity``, ``loss``, ``tokens`` (+ ``bits_per_char`` for characters),
    ``valid_perplexity``, ``epochs``, ``wall_s`` ...

    With ``resume`` the run's stored config is used (``config`` may be None); ``overrides``
    may change its ``epochs``, ``max_minutes``, ``checkpoint_every`` or ``checkpoint_seconds``.
    ``on_window(epoch, window)``, when given, is called after every training window (tests
    use it to interrupt a run).
    """
    run = RunDir(run_dir, create=not resume)
    if resume:
        config = _resumed_config(run, overrides or {})
    elif config is None:
        raise ValueError("train_lm: a new run needs a config")
    elif run.config_path.exists():
        raise ValueError(f"{run.path} already holds a run ({run.config_path}): continue it with --resume "
                         f"or choose another --out")

    # -- data
    corpus = load_corpus(config)
    vocab_path = run.path / "vocab.json"
    if resume and vocab_path.exists() and Vocab.load(vocab_path).itos != corpus.vocab.itos:
        raise ValueError(f"{vocab_path} does not match the vocabulary of the corpus the run was "
                         f"configured with: was the data changed?")
    level = corpus.level
    _log(f"rnnlab train lm: {corpus.summary()}")
    train_batches = BPTTBatches(corpus.train, config.batch, config.bptt)

    # -- model, optimizer, schedule
    initializers.seed(config.seed)
    model = build_model(config, len(corpus.vocab))
    optimizer = build_optimizer(config)
    schedule = StepDecay(optimizer, config.lr_decay, config.decay_start)
    loss_fn = SoftmaxCrossEntropy()
    if not resume:
        atomic_write_text(vocab_path, json.dumps(corpus.vocab.to_json(), ensure_ascii=False))
        run.write_config({"task": "lm", **config.to_dict(), "level": level,
                          "vocab_size": len(corpus.vocab), "corpus": corpus.name,
                          "params": model.count_params()})

    # -- where we are: epoch (1-based), next window, the epoch's running loss, best valid loss
    position = {"epoch": 1, "window": 0, "epoch_nll": 0.0, "epoch_tokens": 0, "step": 0,
                "best_valid": None, "wall_s": 0.0, "rows": 0}
    if resume and run.last_path.exists():
        ckpt = load_checkpoint(run.last_path)
        model.set_weights(ckpt.model.get_weights())
        optimizer.load_state_dict(ckpt.optimizer_arrays, ckpt.optimizer_meta)
        state = ckpt.state
        schedule.load_state_dict(state["schedule"])
        model.set_states(state["carried"])
        model.set_rng_state(state["rng"])
        position = {k: state[k] for k in position}
        # rows logged after this checkpoint was written belong to the lost part: drop them
        run.truncate_metrics(position["rows"])
        _log(f"rnnlab train lm: resuming {run.path} at epoch {position['epoch']}, window "
             f"{position['window']} of {len(train_batches)}")
    elif resume:
        _log(f"rnnlab train lm: {run.last_path} does not exist yet: starting {run.path} from the beginning")
        run.truncate_metrics(0)
    optimizer.lr = schedule.lr_at(position["epoch"])
    _log(f"rnnlab train lm: {model.count_params():,} parameters, {len(train_batches)} windows of "
         f"{config.batch} x {config.bptt} per epoch, {config.optimizer} lr {optimizer.lr:g}")

    t_start = time.perf_counter()
    wall_before = position["wall_s"]
    out_of_time = False

    def wall() -> float:
        return wall_before + time.perf_counter() - t_start

    def budget_left() -> bool:  # a new run trains at least one window, whatever the budget
        return config.max_minutes is None or wall() < 60.0 * config.max_minutes or position["step"] == 0

    while position["epoch"] <= config.epochs and budget_left():
        epoch = position["epoch"]
        model.train()
        if position["window"] == 0:  # a fresh epoch starts from a zero state
            model.reset_states()
        optimizer.lr = schedule.lr_at(epoch)
        bar = _epoch_bar(progress, len(train_batches), position["window"], epoch, config.epochs)
        t_epoch, tokens_epoch, last_ckpt = time.perf_counter(), 0, time.perf_counter()
        for window in range(position["window"], len(train_batches)):
            x, y = train_batches[window]
            # forward, loss; the state carried from the previous window is the starting point
            logits = model.forward(x)
            loss = loss_fn.forward(logits, y)
            check_finite_loss(loss, f"epoch {epoch}, window {window + 1}/{len(train_batches)}")
            # backward (stops at the window start), clip, update
            dlogits = loss_fn.backward()
            if config.sum_over_time:
                dlogits *= x.shape[1]
            model.backward(dlogits)
            norm = clip_grad_norm(model.grads, config.clip or None)
            check_finite_loss(norm, f"epoch {epoch}, window {window + 1} (gradient norm)")
            optimizer.step(model.params, model.grads)

            position["epoch_nll"] += loss * loss_fn.count
            position["epoch_tokens"] += loss_fn.count
            position["step"] += 1
            position["window"] = window + 1
            tokens_epoch += loss_fn.count
            if bar is not None:
                bar.update(1)
                if window % 10 == 0 or window + 1 == len(train_batches):
                    rate = tokens_epoch / max(time.perf_counter() - t_epoch, 1e-9)
                    bar.set_postfix_str(f"ppl {math.exp(position['epoch_nll'] / position['epoch_tokens']):.2f}"
                                        f" {rate:,.0f} tok/s lr {optimizer.lr:.3g}", refresh=False)
            if not budget_left() and position["window"] < len(train_batches):
                out_of_time = True
                break
            due = (position["window"] % config.checkpoint_every == 0) if config.checkpoint_every else \
                (time.perf_counter() - last_ckpt >= config.checkpoint_seconds)
            if due and position["window"] < len(train_batches):
                _save_last(run, model, optimizer, schedule, {**position, "wall_s": wall()})
                last_ckpt = time.perf_counter()
            if on_window is not None:
                on_window(epoch, window + 1)
        if bar is not None:
            bar.close()

        # -- end of the epoch (or of the time budget): validate, log, checkpoint, decay lr
        carried = model.states  # validation resets the state; a stop mid-epoch must keep it
        train_loss = position["epoch_nll"] / max(position["epoch_tokens"], 1)
        valid = evaluate(model, corpus.valid, config.batch, config.bptt, progress=progress, desc="valid")
        row = {"epoch": epoch, "train_loss": train_loss, "train_ppl": perplexity(train_loss),
               "valid_loss": valid["loss"], "valid_ppl": valid["perplexity"], "lr": optimizer.lr,
               "tokens": position["epoch_tokens"], "step": position["step"],
               "tokens_per_s": tokens_epoch / max(time.perf_counter() - t_epoch, 1e-9), "wall_s": wall()}
        if level == "char":
            row["valid_bpc"] = bits_per_char(valid["loss"])
        if out_of_time:
            row["partial"] = position["window"] / len(train_batches)
        # a row for part of this epoch (an earlier run stopped by its time budget) is superseded
        run.filter_metrics(lambda r: not (r.get("partial") and r.get("epoch") == epoch))
        run.log_metrics(row)
        position["rows"] = len(run.read_metrics())
        _log(f"epoch {epoch}/{config.epochs}: train ppl {row['train_ppl']:.2f}, valid ppl "
             f"{row['valid_ppl']:.2f} (loss {valid['loss']:.4f}), lr {optimizer.lr:g}, "
             f"{row['tokens_per_s']:,.0f} tok/s, {row['wall_s']:.0f} s")
        if position["best_valid"] is None or valid["loss"] < position["best_valid"]:
            position["best_valid"] = valid["loss"]
            save_checkpoint(run.best_path, model, state={"epoch": epoch, "valid_loss": valid["loss"]})
        if out_of_time:
            # keep the mid-epoch position: a resume with a larger budget goes on from here
            model.set_states(carried)
            _log(f"rnnlab train lm: time budget of {config.max_minutes:g} min used up in epoch {epoch}")
        else:
            schedule.epoch_end(epoch)
            position.update(epoch=epoch + 1, window=0, epoch_nll=0.0, epoch_tokens=0)
            model.reset_states()
        _save_last(run, model, optimizer, schedule, {**position, "wall_s": wall()})
        _plot(run, run.read_metrics(), f"{config.preset or corpus.name}: {config.cell} "
                                       f"{config.layers}x{config.hidden}")

    # -- final figures: the best model on valid and test, state carried, eval_batch streams
    result = evaluate_checkpoint(run.best_path if run.best_path.exists() else run.last_path, corpus,
                                 config, progress=progress)
    epochs_done = max((r["epoch"] for r in run.read_metrics()), default=0)
    result.update(epochs=epochs_done, wall_s=round(wall(), 3), run_dir=str(run.path))
    atomic_write_text(run.path / "results.json", json.dumps(result, indent=2) + "\n")
    return result


RESUME_OVERRIDES = ("epochs", "max_minutes", "checkpoint_every", "checkpoint_seconds")


def _resumed_config(run: RunDir, overrides: dict) -> LMConfig:
    stored = run.read_config()
    if stored.get("task") != "lm":
        raise ValueError(f"{run.config_path} is a {stored.get('task')!r} run, not a language model")
    config = LMConfig.from_dict(stored)
    # a resumed run may be given more epochs or another time budget; nothing else changes
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(config, k) != v}
    unknown = set(changed) - set(RESUME_OVERRIDES)
    if unknown:
        raise ValueError(f"a resumed run keeps its config; only {', '.join(RESUME_OVERRIDES)} can change, "
                         f"not {', '.join(sorted(unknown))}")
    if changed:
        config = dataclasses.replace(config, **changed)
        run.write_config({**stored, **config.to_dict()})
    return config


def _epoch_bar(progress: bool, total: int, initial: int, epoch: int, epochs: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="win",
                file=sys.stderr, dynamic_ncols=True)


# ---- evaluation and sampling --------------------------------------------------------------


def _figures(loss: float, tokens: int, level: str) -> dict:
    out = {"loss": loss, "perplexity": perplexity(loss), "tokens": tokens}
    if level == "char":
        out["bits_per_char"] = bits_per_char(loss)
    return out


def evaluate_checkpoint(path, corpus: corpora.Corpus, config: LMConfig, progress: bool = False) -> dict:
    """Valid and test figures of the checkpoint at ``path`` (test ones at the top level)."""
    model = load_checkpoint(path).model
    batch = config.eval_batch
    valid = evaluate(model, corpus.valid, batch, config.bptt, progress=progress, desc="valid")
    test = evaluate(model, corpus.test, batch, config.bptt, progress=progress, desc="test")
    result = {**_figures(test["loss"], test["tokens"], corpus.level), "split": "test",
              "valid_loss": valid["loss"], "valid_perplexity": valid["perplexity"]}
    if corpus.level == "char":
        result["valid_bits_per_char"] = bits_per_char(valid["loss"])
    return result


def load_run(run_dir, checkpoint: str = "best"):
    """(config, vocab, model) of a finished or running language-model run."""
    run = RunDir(run_dir, create=False)
    stored = run.read_config()
    if stored.get("task") != "lm":
        raise ValueError(f"{run.config_path} is a {stored.get('task')!r} run, not a language model")
    config = LMConfig.from_dict(stored)
    config.level = stored.get("level", config.level)
    vocab = Vocab.load(run.path / "vocab.json")
    path = run.best_path if checkpoint == "best" else run.last_path
    if not path.exists():
        other = run.last_path if checkpoint == "best" else run.best_path
        if not other.exists():
            raise FileNotFoundError(f"{run.path} holds no checkpoint yet (best.npz / last.npz)")
        path = other
    return config, vocab, load_checkpoint(path).model


def evaluate_lm(run_dir, split: str = "test", text=None, batch: int | None = None,
                checkpoint: str = "best", progress: bool = False) -> dict:
    """Perplexity, loss, tokens (and bits per character) of a run's model on a split of its
    corpus or on another UTF-8 ``text`` file (tokenized with the run's level and vocabulary)."""
    config, vocab, model = load_run(run_dir, checkpoint)
    level = config.level
    if text is not None:
        ids = corpora.encode(corpora.tokenize(corpora.read_text(text), level), vocab)
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
    result = evaluate(model, ids, batch, config.bptt, progress=progress, desc=source)
    return {**_figures(result["loss"], result["tokens"], level), "split": source}


def sample_lm(run_dir, prime: str = "", length: int = 200, temperature: float = 1.0,
              top_k: int | None = None, seed: int | None = 0, checkpoint: str = "best") -> dict:
    """Text generated by a run's model after ``prime``; the same seed gives the same text."""
    config, vocab, model = load_run(run_dir, checkpoint)
    level = config.level
    tokens = corpora.tokenize(prime, level) if prime else []
    if level == "word" and tokens and not prime.endswith("\n"):
        tokens = tokens[:-1]  # tokenize ends every line with <eos>; an open prime continues the line
    if not tokens:  # start as a new line / text would
        tokens = ["<eos>"] if level == "word" else (["\n"] if "\n" in vocab else [vocab.itos[-1]])
    ids = model.generate(vocab.encode(tokens), length, temperature=temperature, top_k=top_k, seed=seed)
    generated = corpora.detokenize(vocab.decode(ids, strip_specials=False), level)
    if level == "word" and prime and not prime.endswith(("\n", " ")) and not generated.startswith("\n"):
        generated = " " + generated
    return {"text": prime + generated, "prime": prime, "generated": generated, "length": length,
            "temperature": temperature, "top_k": top_k, "seed": seed}
