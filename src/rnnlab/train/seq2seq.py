"""Training and evaluating sequence-to-sequence models (``rnnlab train seq2seq``, ``eval``,
``translate``).

    config = Seq2SeqConfig(generated="dates", n=20000, attention="luong", epochs=6)
    result = train_seq2seq(config, "runs/dates")      # dict: exact_match, token_accuracy, bleu ...
    translate("runs/dates", ["september 27, 1994"])   # [{"source", "translation", ...}]

The data is a TSV of pairs (``pairs``, with ``valid``/``test`` files or split by ``split``
fractions) or generated (``generated`` "dates", "addition" or "copy", with ``n`` and
``data_seed``). Each epoch: shuffled batches (``bucket``: of similar lengths); teacher-forced softmax
cross-entropy over the real target tokens; backward; global-norm clipping; an optimizer
step. After each epoch the validation split is decoded greedily (exact match, token accuracy,
BLEU) and one row goes to ``RUN_DIR/metrics.jsonl``; ``last.npz`` is saved every epoch and
``best.npz`` whenever the validation loss improves. At the end the best model is evaluated on
the test split. ``config.json`` holds the configuration and both vocabularies, so a run
directory is all that ``translate`` and ``eval`` need.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import initializers
from ..data import generated
from ..data.pairs import PairData, detokenize, read_pairs, split_pairs, tokenize
from ..data.vocab import Vocab
from ..losses import SoftmaxCrossEntropy
from ..metrics import corpus_bleu, exact_match, token_accuracy
from ..models.seq2seq import Seq2Seq
from ..optim import StepDecay, clip_grad_norm, get as get_optimizer
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import RunDir, check_finite_loss


@dataclass
class Seq2SeqConfig:
    # data
    pairs: str | None = None          # TSV file of source<TAB>target[<TAB>...] lines
    valid: str | None = None          # separate validation / test files (else split `pairs`)
    test: str | None = None
    generated: str | None = None      # or generated data: "dates", "addition", "copy"
    n: int = 20000                    # pairs to generate
    data_seed: int = 0                # seed of the generated data and of the split
    split: tuple = (0.8, 0.1, 0.1)    # train / valid / test fractions when splitting
    swap: bool = False                # read the 2nd column as the source
    limit: int | None = None          # read at most this many pairs from `pairs`
    level: str = "char"               # "char" or "word" tokens
    lower: bool = False
    max_src_len: int | None = None    # drop training pairs with longer source/target (tokens)
    max_tgt_len: int | None = None
    min_freq: int = 1
    max_vocab: int | None = None
    # model
    attention: str = "none"           # "none", "bahdanau", "luong"
    score: str = "dot"                # Luong score: "dot" or "general"
    cell: str = "lstm"
    layers: int = 1
    emb: int = 16
    hidden: int = 128
    reverse: bool = False
    peeky: bool = False
    bidirectional: bool = False
    dropout: float = 0.0
    # optimisation
    epochs: int = 10
    batch: int = 128
    bucket: bool = True               # batches of similar lengths (less padding, less varied batches)
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_decay: float = 1.0              # multiply lr by this after every epoch >= decay_start
    decay_start: int = 1
    clip: float = 5.0
    seed: int = 0
    # evaluation
    beam: int = 1
    length_penalty: float = 1.0
    max_decode_len: int | None = None  # default: longest training target + 10
    eval_limit: int | None = None      # decode at most this many validation pairs per epoch
    progress: bool = True

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Seq2SeqConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown seq2seq config keys {unknown}")
        d = dict(d)
        if "split" in d:
            d["split"] = tuple(d["split"])
        return cls(**d)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
        pairs = read_pairs(config.pairs, swap=config.swap, limit=config.limit)
    # the length limits apply to the training pairs; a held-out split cut from the same file
    # is cut after filtering, so it has the same distribution
    pairs = _filter_long(pairs, config)
    if config.valid or config.test:
        if not (config.valid and config.test):
            raise ValueError("give both --valid and --test files, or neither (then --split divides --pairs)")
        return (pairs, read_pairs(config.valid, swap=config.swap), read_pairs(config.test, swap=config.swap))
    train, valid, test = split_pairs(pairs, config.split, seed=config.data_seed)
    return train, valid, test


def _filter_long(pairs, config):
    if config.max_src_len is None and config.max_tgt_len is None:
        return pairs
    keep = []
    for s, t in pairs:
        if config.max_src_len is not None and len(tokenize(s, config.level, config.lower)) > config.max_src_len:
            continue
        if config.max_tgt_len is not None and len(tokenize(t, config.level, config.lower)) > config.max_tgt_len:
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


# ---- evaluation -----------------------------------------------------------------------------------


def teacher_forced_loss(model, data: PairData, batch_size: int = 256) -> float:
    """Mean cross-entropy per target token (incl. the end token) with teacher forcing."""
    loss = SoftmaxCrossEntropy()
    total = count = 0.0
    was_training = model.training
    model.eval()
    try:
        for b in data.batches(batch_size):
            value = loss.forward(model.forward(b.src, b.tgt_in, b.src_mask), b.tgt_out, b.tgt_mask)
            total += value * loss.count
            count += loss.count
    finally:
        model.train(was_training)
    return total / max(count, 1)


def decode_data(model, data: PairData, batch_size: int = 256, max_len: int = 50, beam: int = 1,
                length_penalty: float = 1.0) -> tuple[list, list]:
    """Decoded target token lists for every pair of ``data`` (in order), and their attention."""
    outputs = [None] * len(data)
    attention = [None] * len(data)
    # beams multiply the rows of a batch: keep the work per batch about the same
    step = max(1, batch_size // max(beam, 1))
    for b in data.batches(step):
        result = model.translate_batch(b.src, b.src_mask, max_len=max_len, beam_width=beam,
                                       length_penalty=length_penalty)
        for row, i in enumerate(b.index):
            outputs[i] = data.tgt_vocab.decode(result.tokens[row])
            a = result.attention[row]
            # drop the batch's padding columns: (output steps, this source's length)
            attention[i] = a[:, :len(data.src_ids[i])] if a is not None else None
    return outputs, attention


def evaluate(model, data: PairData, batch_size: int = 256, max_len: int = 50, beam: int = 1,
             length_penalty: float = 1.0, with_loss: bool = True) -> dict:
    """Loss (teacher forcing), and exact match, token accuracy, BLEU of the decoded outputs."""
    predictions, _ = decode_data(model, data, batch_size, max_len, beam, length_penalty)
    references = data.tgt_tokens
    level = data.level
    result = {
        "exact_match": exact_match(predictions, references),
        "token_accuracy": token_accuracy(predictions, references),
        "bleu": corpus_bleu([detokenize(p, level) for p in predictions], [detokenize(r, level) for r in references]),
        "n": len(data),
    }
    if with_loss:
        result["loss"] = teacher_forced_loss(model, data, batch_size)
    result["predictions"] = [detokenize(p, level) for p in predictions]
    return result


# ---- training -------------------------------------------------------------------------------------


def train_seq2seq(config: Seq2SeqConfig, run_dir=None, examples: int = 5) -> dict:
    """Train a seq2seq model as ``config`` says; write the run to ``run_dir`` (when given).

    Returns the test figures of the best model (``exact_match``, ``token_accuracy``, ``bleu``,
    ``loss``) plus ``valid_*`` figures, ``epochs``, ``wall_s``, ``params`` and a few
    ``examples`` (source, reference, prediction) from the test split.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    initializers.seed(config.seed)
    train_pairs, valid_pairs, test_pairs = load_splits(config)
    train = PairData.build(train_pairs, config.level, config.lower, config.min_freq, config.max_vocab)
    valid = PairData(valid_pairs, train.src_vocab, train.tgt_vocab, config.level, config.lower)
    test = PairData(test_pairs, train.src_vocab, train.tgt_vocab, config.level, config.lower)
    eval_valid = valid if not config.eval_limit or len(valid) <= config.eval_limit else PairData(
        valid_pairs[:config.eval_limit], train.src_vocab, train.tgt_vocab, config.level, config.lower)
    max_len = config.max_decode_len or (max(len(t) for t in train.tgt_ids) + 10)
    _log(f"seq2seq: {len(train)} train / {len(valid)} valid / {len(test)} test pairs; vocab "
         f"{len(train.src_vocab)} -> {len(train.tgt_vocab)} ({config.level} level)")

    model = build_model(config, train.src_vocab, train.tgt_vocab)
    optimizer = get_optimizer(config.optimizer, lr=config.lr)
    schedule = StepDecay(optimizer, config.lr_decay, config.decay_start) if config.lr_decay < 1.0 else None
    loss_fn = SoftmaxCrossEntropy()
    run = RunDir(run_dir) if run_dir is not None else None
    if run is not None:
        if run.metrics_path.exists():
            run.metrics_path.unlink()  # a fresh run: no rows from an earlier one
        run.write_config({"task": "seq2seq", **config.to_dict(), "src_vocab": train.src_vocab.to_json(),
                          "tgt_vocab": train.tgt_vocab.to_json(), "max_decode_len": max_len})
    rng = np.random.default_rng(config.seed)
    best_loss = math.inf
    best_weights = None
    rows = []
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total = count = 0.0
        n_batches = math.ceil(len(train) / config.batch)
        batches = train.batches(config.batch, shuffle=True, rng=rng, bucket=config.bucket)
        bar = tqdm(batches, total=n_batches, file=sys.stderr, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                   disable=not config.progress, dynamic_ncols=True)
        for step, b in enumerate(bar, start=1):
            logits = model.forward(b.src, b.tgt_in, b.src_mask)
            value = loss_fn.forward(logits, b.tgt_out, b.tgt_mask)
            check_finite_loss(value, f"epoch {epoch}, step {step}")
            model.backward(loss_fn.backward())
            if config.clip:
                clip_grad_norm(model.grads, config.clip)
            optimizer.step(model.params, model.grads)
            total += value * loss_fn.count
            count += loss_fn.count
            if step % 10 == 0:
                bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        train_s = time.perf_counter() - t0
        figures = evaluate(model, eval_valid, max_len=max_len, with_loss=False)
        valid_loss = teacher_forced_loss(model, valid)
        row = {"epoch": epoch, "train_loss": total / count, "valid_loss": valid_loss,
               "valid_exact_match": figures["exact_match"], "valid_token_accuracy": figures["token_accuracy"],
               "valid_bleu": figures["bleu"], "lr": optimizer.lr, "train_s": round(train_s, 2),
               "epoch_s": round(time.perf_counter() - t0, 2)}
        rows.append(row)
        _log(f"epoch {epoch}: train loss {row['train_loss']:.4f}, valid loss {valid_loss:.4f}, "
             f"valid exact match {100 * row['valid_exact_match']:.2f}%, BLEU {row['valid_bleu']:.2f} "
             f"({row['epoch_s']:.1f} s)")
        improved = valid_loss < best_loss
        if schedule is not None:
            schedule.epoch_end(epoch)
        if improved:
            best_loss = valid_loss
            best_weights = model.get_weights()
        if run is not None:
            run.log_metrics(row)
            state = {"epoch": epoch, "best_valid_loss": best_loss}
            save_checkpoint(run.last_path, model, optimizer, state)
            if improved:
                save_checkpoint(run.best_path, model, None, state)
    if best_weights is not None:
        model.set_weights(best_weights)
    model.eval()
    final = evaluate(model, test, max_len=max_len, beam=config.beam, length_penalty=config.length_penalty)
    if run is not None:
        _plot_curves(run, rows)
    result = {"exact_match": final["exact_match"], "token_accuracy": final["token_accuracy"],
              "bleu": final["bleu"], "loss": final["loss"], "test_pairs": len(test),
              "valid_exact_match": rows[-1]["valid_exact_match"] if rows else None,
              "valid_loss": best_loss if rows else None, "epochs": config.epochs,
              "params": model.count_params(), "wall_s": round(time.perf_counter() - start, 2),
              "examples": [{"source": s, "reference": t, "prediction": p}
                           for (s, t), p in list(zip(test.pairs, final["predictions"]))[:examples]]}
    if run is not None:
        result["run_dir"] = str(run.path)
    result["model"] = model
    result["data"] = {"train": train, "valid": valid, "test": test, "max_len": max_len}
    return result


def _plot_curves(run: RunDir, rows) -> None:
    try:
        from ..plots import plot_curves
        plot_curves(rows, run.curves_path, keys=("train_loss", "valid_loss", "valid_exact_match"),
                    title="seq2seq training")
    except RuntimeError as err:  # matplotlib missing
        _log(f"warning: no curves plot: {err}")


# ---- loading a run ---------------------------------------------------------------------------------


class Translator:
    """A trained run directory, ready to translate text: ``Translator(run_dir)(["text"])``."""

    def __init__(self, run_dir, checkpoint: str = "best"):
        run = RunDir(run_dir) if Path(run_dir).is_dir() else None
        if run is None:
            raise FileNotFoundError(f"run directory {run_dir} does not exist")
        self.config_dict = run.read_config()
        if self.config_dict.get("task") != "seq2seq":
            raise ValueError(f"{run.config_path} is a {self.config_dict.get('task')!r} run, not seq2seq")
        keys = {f.name for f in dataclasses.fields(Seq2SeqConfig)}
        self.config = Seq2SeqConfig.from_dict({k: v for k, v in self.config_dict.items() if k in keys})
        # config.json's "task" is the run kind ("seq2seq"); the data fields are the config's own
        self.src_vocab = Vocab.from_json(self.config_dict["src_vocab"])
        self.tgt_vocab = Vocab.from_json(self.config_dict["tgt_vocab"])
        path = run.best_path if checkpoint == "best" and run.best_path.exists() else run.last_path
        if not path.exists():
            raise FileNotFoundError(f"{run.path} holds no checkpoint (best.npz / last.npz): did training finish "
                                    f"an epoch?")
        self.model = load_checkpoint(path).model
        self.model.eval()
        self.max_len = int(self.config_dict.get("max_decode_len") or 50)

    def data(self, pairs) -> PairData:
        return PairData(pairs, self.src_vocab, self.tgt_vocab, self.config.level, self.config.lower)

    def __call__(self, texts, beam: int = 1, length_penalty: float = 1.0, max_len: int | None = None) -> list[dict]:
        texts = list(texts)
        if not texts:
            return []
        data = self.data([(t, "") for t in texts])
        outputs, attention = decode_data(self.model, data, max_len=max_len or self.max_len, beam=beam,
                                         length_penalty=length_penalty)
        results = []
        for text, src_tokens, out, attn in zip(texts, data.src_tokens, outputs, attention):
            results.append({"source": text, "translation": detokenize(out, self.config.level),
                            "source_tokens": src_tokens, "tokens": out, "attention": attn})
        return results


def translate(run_dir, texts, beam: int = 1, plot=None, length_penalty: float = 1.0) -> list[dict]:
    """Translate ``texts`` with the best model of ``run_dir``; with ``plot`` (a PNG path) save the
    attention heatmap of the first text (attention models only)."""
    translator = Translator(run_dir)
    results = translator(texts, beam=beam, length_penalty=length_penalty)
    if plot is not None and results:
        save_attention_plot(results[0], plot)
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


def evaluate_run(args) -> dict:
    """``rnnlab eval RUN_DIR [--pairs FILE | --split test] [--beam K] [--checkpoint best|last]``
    for a seq2seq run directory: exact match, token accuracy, BLEU, loss on the pairs."""
    run_dir = getattr(args, "run_dir", None)
    translator = Translator(run_dir, checkpoint=getattr(args, "checkpoint", None) or "best")
    beam = int(getattr(args, "beam", None) or 1)
    pairs_path = getattr(args, "pairs", None)
    if pairs_path:
        pairs, where = read_pairs(pairs_path, swap=translator.config.swap), str(pairs_path)
    else:  # the run's own split, rebuilt from its config (same seed, same pairs)
        split = getattr(args, "split", None) or "test"
        pairs = dict(zip(("train", "valid", "test"), load_splits(translator.config)))[split]
        where = f"the run's {split} split"
    data = translator.data(pairs)
    t0 = time.perf_counter()
    figures = evaluate(translator.model, data, max_len=translator.max_len, beam=beam,
                       length_penalty=float(getattr(args, "length_penalty", None) or 1.0))
    predictions = figures.pop("predictions")
    print(f"{len(data)} pairs from {where}: exact match {100 * figures['exact_match']:.2f}%, "
          f"token accuracy {100 * figures['token_accuracy']:.2f}%, BLEU {figures['bleu']:.2f}, "
          f"loss {figures['loss']:.4f}")
    figures["examples"] = [{"source": s, "reference": t, "prediction": p}
                           for (s, t), p in list(zip(data.pairs, predictions))[:5]]
    figures.update({"run_dir": str(run_dir), "pairs": where, "beam": beam,
                    "wall_s": round(time.perf_counter() - t0, 2)})
    return figures
