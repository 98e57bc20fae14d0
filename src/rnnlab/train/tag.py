"""Many-to-many, one output per step: part-of-speech tagging (``rnnlab train tag``, ``predict``).

    config = TagConfig(ud_ewt=True)                       # or conllu="train.conllu", valid=..., test=...
    result = train_tag(config, "runs/upos")     # result["accuracy"], ["unseen_accuracy"], ["per_tag"]
    tag_sentences("runs/upos", ["The old man the boats ."])   # [{"words", "tags"}]

Model: ``models/tagger.py``'s ``Tagger`` (word embedding + a character BiRNN over each word's
spelling, then a BiLSTM, or with ``bidirectional=False`` a one-way LSTM that can tag a sentence
as it arrives). The loss is the softmax cross-entropy over the real words (masked padding). The
monitored metric is the validation accuracy; at the end the best model is evaluated on the test
split: accuracy overall, per tag, on words unseen in training, the majority baseline (every
word gets the most frequent training tag); a unidirectional tagger also streams the first
``stream_check`` test sentences word by word and reports whether every tag equals the tag of
running the sentence whole (``streaming_identical``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend, validate
from ..data.conllu import TaggingData, load_tagging, load_ud_english_ewt, tag_arrays
from ..data.labeled import word_tokenize
from ..data.memory import budget_batches, padded_batch_bytes
from ..data.padding import pad_chars, pad_ids
from ..metrics import accuracy, per_class_accuracy, subset_accuracy
from ..models.tagger import Tagger
from .config import CELLS, DATA, MODEL, setting
from .supervised import (SupervisedConfig, SupervisedTask, drop_words, host_softmax, load_run, run_task,
                         stored_names, stored_vocab)
from .task import log


@dataclass
class TagConfig(SupervisedConfig):
    RUN_KEYS = ("word_vocab", "char_vocab", "tags")
    MONITORS = ("valid_loss", "valid_accuracy", "valid_unseen_accuracy")
    PATH_FIELDS = ("conllu", "valid", "test")
    DATA_FIELDS = PATH_FIELDS + ("ud_ewt", "min_freq", "lowercase", "max_len", "max_word_len")

    # data: conllu (+ valid, test) or ud_ewt
    conllu: str | None = setting(None, "CoNLL-U training file (with --valid and --test)", group=DATA,
                                 metavar="TRAIN")
    valid: str | None = setting(None, "CoNLL-U validation file", group=DATA, metavar="FILE")
    test: str | None = setting(None, "CoNLL-U test file", group=DATA, metavar="FILE")
    ud_ewt: bool = setting(False, "UD English EWT from $RNNLAB_DATA/ud-english-ewt (else downloaded)", group=DATA)
    min_freq: int = setting(2, "rarer training words become <unk> (the char RNN spells them)",
                            check=validate.positive_int, group=DATA)
    lowercase: bool = setting(True, "lowercase words", flag=None, off_flag="--cased",
                              off_help="keep the case of words (default: lowercase; characters always keep it)",
                              group=DATA)
    max_len: int | None = setting(250, "cut longer sentences (reported with their lines): bounds memory",
                                  check=validate.positive_int, group=DATA)
    max_word_len: int = setting(20, "characters of a word the char RNN reads", check=validate.positive_int,
                                group=DATA)
    # model
    emb: int = setting(100, "word embedding size", check=validate.positive_int, group=MODEL)
    char_emb: int = setting(24, "character embedding size", check=validate.positive_int, group=MODEL)
    char_hidden: int = setting(32, "units of the character RNN", check=validate.positive_int, group=MODEL)
    hidden: int = setting(128, "units of each recurrent layer", check=validate.positive_int, group=MODEL)
    layers: int = setting(1, "stacked recurrent layers", check=validate.positive_int, group=MODEL)
    cell: str = setting("lstm", "recurrent cell", check=validate.cell, choices=CELLS, group=MODEL)
    bidirectional: bool = setting(True, "a two-way encoder", flag=None, off_flag="--unidirectional",
                                  off_help="a one-way encoder that tags as the words arrive (streaming)",
                                  group=MODEL)
    dropout: float = setting(0.3, "dropout rate", check=validate.rate, group=MODEL)
    # chosen on UD-EWT dev among 0, 0.1, 0.25, 0.4 (README, "Task shapes")
    word_dropout: float = setting(0.25, "in training, read each word as <unk> with this probability, so that the "
                                  "character RNN learns to tag words from their spelling (0: off)",
                                  check=validate.rate, group=MODEL)
    stream_check: int = setting(100, "unidirectional: test sentences streamed word by word to check the tags",
                                check=validate.non_negative_int, group=MODEL)

    EARLIER_RUNS = {**SupervisedConfig.EARLIER_RUNS, "word_dropout": 0.0}   # runs from before it: none


class TagTask(SupervisedTask):
    """Tagging on the loop (see the module docstring)."""

    name = "tag"
    unit = "batch"

    def load_data(self) -> TaggingData:
        c = self.config
        if bool(c.conllu) == bool(c.ud_ewt):
            raise ValueError("give --conllu TRAIN (with --valid and --test) or --ud-ewt, exactly one")
        kwargs = dict(min_freq=c.min_freq, lowercase=c.lowercase, max_len=c.max_len, max_word_len=c.max_word_len)
        if c.ud_ewt:
            return load_ud_english_ewt(**kwargs)
        if not (c.valid and c.test):
            raise ValueError("--conllu needs --valid FILE and --test FILE (CoNLL-U)")
        return load_tagging(c.conllu, c.valid, c.test, **kwargs)

    def build_model(self):
        c, d = self.config, self.data
        log(f"tag: {len(d.train)} / {len(d.valid)} / {len(d.test)} sentences ({d.train.num_words} training "
            f"words), {len(d.tags)} tags, vocabulary {len(d.word_vocab)} words, {len(d.char_vocab)} characters; "
            f"{'bidirectional' if c.bidirectional else 'unidirectional (streaming)'}")
        return Tagger(len(d.word_vocab), len(d.char_vocab), len(d.tags), emb=c.emb, char_emb=c.char_emb,
                      char_hidden=c.char_hidden, hidden=c.hidden, layers=c.layers, cell=c.cell,
                      bidirectional=c.bidirectional, dropout=c.dropout, seed=c.seed, name="tagger")

    def epoch_batches(self, epoch: int):
        """The shuffled batches of ``epoch``; with ``word_dropout`` p, each real word of them is
        read as ``<unk>`` with probability p (its characters stay), drawn from a generator seeded
        by (seed, epoch): a resumed epoch drops the same words. A word the model cannot look up
        must be tagged from its spelling and context, as an unseen word at test time is."""
        batches, c = super().epoch_batches(epoch), self.config
        if c.word_dropout > 0:
            drop_words(batches, "words", c.word_dropout, self.data.word_vocab.unk_id, c.seed, epoch)
        return batches

    def inputs(self, batch):
        return batch["words"], batch["chars"], batch["mask"]

    def targets(self, batch):
        return batch["tags"], batch["mask"]

    def padded_batch_bytes(self, rows: int) -> tuple[int, str]:
        """The word encoder over the longest sentence plus the character RNN (both directions)
        over each of its words, every word as long as the longest."""
        splits = (self.data.train, self.data.valid, self.data.test)
        steps = max(max((len(s) for s in split.words), default=0) for split in splits)
        letters = max((len(w) for split in splits for s in split.chars for w in s), default=0)
        return (tagger_batch_bytes(self.model, rows, steps, letters),
                f"{rows} sentences of {steps} words of up to {letters} characters")

    def run_config(self) -> dict:
        d = self.data
        return {"word_vocab": d.word_vocab.to_json(), "char_vocab": d.char_vocab.to_json(), "tags": list(d.tags)}

    def word_probabilities(self, split) -> tuple[float, np.ndarray]:
        """(loss, tag probabilities (words, tags) of every real word, in the order of
        ``tag_arrays(split)``)."""
        loss, outputs = self.outputs(split)
        per_sentence = [None] * len(split)
        for batch, logits in outputs:
            probs = host_softmax(logits)
            for k, row in enumerate(batch["rows"]):
                per_sentence[row] = probs[k, :len(split.words[row])]
        return loss, np.concatenate(per_sentence)

    def evaluate(self, split) -> dict:
        loss, probs = self.word_probabilities(split)
        return {"loss": loss, **self.scores(probs.argmax(axis=-1), split)}

    def scores(self, predicted, split) -> dict:
        """Accuracy overall and on words unseen in training of flat predicted tag ids (one
        model's, or an ensemble's: ``train/ensemble.py``)."""
        gold, unseen = tag_arrays(split)
        unseen_acc, n_unseen = subset_accuracy(predicted, gold, unseen)
        return {"accuracy": accuracy(predicted, gold), "unseen_accuracy": unseen_acc, "unseen_words": n_unseen,
                "words": int(gold.size), "predicted": predicted, "gold": gold}

    def validate(self) -> dict:
        figures = self.evaluate(self.data.valid)
        return {"valid_loss": figures["loss"], "valid_accuracy": figures["accuracy"],
                "valid_unseen_accuracy": figures["unseen_accuracy"]}

    def test_figures(self) -> dict:
        d = self.data
        test = self.evaluate(d.test)
        train_gold, _ = tag_arrays(d.train)
        majority = int(np.bincount(train_gold).argmax())
        metrics = {"accuracy": test["accuracy"], "unseen_accuracy": test["unseen_accuracy"],
                   "unseen_words": test["unseen_words"], "test_words": test["words"], "loss": test["loss"],
                   "majority_baseline": float((test["gold"] == majority).mean()),
                   "per_tag": per_class_accuracy(test["predicted"], test["gold"], d.tags),
                   "valid_accuracy": self.evaluate(d.valid)["accuracy"], "bidirectional": self.config.bidirectional,
                   "params": self.model.count_params()}
        if not self.config.bidirectional:
            metrics.update(streaming_check(self.model, d.test, self.config.stream_check))
        return metrics


TagTask.config_class = TagConfig


def streaming_check(model: Tagger, split, n: int) -> dict:
    """Stream the first ``n`` sentences of ``split`` word by word (``Tagger.step``, no look-ahead)
    and compare each tag with running the sentence whole: ``streaming_identical`` is True when
    every tag is the same; ``streaming_max_logit_diff`` the largest logit difference."""
    same, diff, count = True, 0.0, 0
    for i in range(min(n, len(split))):
        whole, streamed = stream_and_whole(model, split.words[i], split.chars[i])
        same &= bool((whole.argmax(-1) == streamed.argmax(-1)).all())
        diff = max(diff, float(np.abs(whole - streamed).max()))
        count += 1
    return {"streaming_identical": same, "streaming_sentences": count, "streaming_max_logit_diff": diff}


def stream_and_whole(model: Tagger, word_ids, char_ids) -> tuple[np.ndarray, np.ndarray]:
    """Logits (T, tags) of one sentence run whole, and streamed one word at a time."""
    words, mask = pad_ids([word_ids])
    chars = pad_chars([char_ids])
    model.eval()
    whole = backend.to_numpy(model.forward(words, chars, mask))[0]
    state, streamed = model.begin_stream(), []
    for t in range(len(word_ids)):
        logits, state = model.step(words[:, t], chars[:, t, :], state)
        streamed.append(backend.to_numpy(logits)[0])
    return whole, np.stack(streamed)


def train_tag(config: TagConfig | None, run_dir=None, resume: bool = False, overrides: dict | None = None,
              overwrite: bool = False, data: TaggingData | None = None, **options):
    """Train (or resume) a tagger; returns the loop's ``TrainResult`` (``result["accuracy"]``,
    ``["unseen_accuracy"]``, ``["per_tag"]``, ``["majority_baseline"]``; unidirectional:
    ``["streaming_identical"]``). ``data``: a ``TaggingData`` in memory."""
    return run_task(TagTask, config, run_dir, resume, overrides, overwrite, data=data, **options)


def report(metrics: dict) -> str:
    lines = [f"test: accuracy {100 * metrics['accuracy']:.2f}% over {metrics['test_words']} words; unseen words "
             f"{100 * metrics['unseen_accuracy']:.2f}% ({metrics['unseen_words']}); majority baseline "
             f"{100 * metrics['majority_baseline']:.2f}%"]
    if "streaming_identical" in metrics:
        lines.append(f"streaming ({metrics['streaming_sentences']} sentences word by word): tags "
                     f"{'identical to' if metrics['streaming_identical'] else 'DIFFERENT from'} the whole-sentence run")
    lines += [f"  {tag:<6} {100 * acc:6.2f}%  ({n})" for tag, (acc, n) in metrics["per_tag"].items()]
    return "\n".join(lines)


def tag_sentences(run_dir, sentences, where=None) -> list[dict]:
    """Tags of each sentence (raw text, split into words as SST/UD write them) by ``run_dir``'s best
    tagger: [{"words": [...], "tags": [...]}] (long sentences: ``tag_probabilities``)."""
    tags, tagged = tag_probabilities(run_dir, sentences, where)
    return [{"words": forms, "tags": [tags[int(t)] for t in probs.argmax(axis=-1)]} for forms, probs in tagged]


def tagger_batch_bytes(model: Tagger, rows: int, steps: int, letters: int) -> int:
    """The estimate (``data/memory.py``) of a padded batch of ``rows`` sentences of ``steps``
    words through ``model``: the word encoder over the sentences plus the character RNN (both
    directions) over each word, every word as long as ``letters``."""
    return (padded_batch_bytes(rows, steps, model.emb + 2 * model.char_hidden, model.hidden, model.layers,
                               2 if model.bidirectional else 1, outputs=model.tags)
            + padded_batch_bytes(rows * steps, letters, model.char_emb, model.char_hidden, 1, 2))


def tag_probabilities(run_dir, sentences, where=None) -> tuple[list, list]:
    """(the tag names, [(words, tag probabilities (words, tags))] per sentence) by ``run_dir``'s
    best tagger.

    A sentence longer than the run's ``max_len`` words is tagged in consecutive pieces of
    ``max_len`` words, every word getting its tag (one line on stderr names the sentences, by
    ``where``: a description of each, default "sentence N"). A unidirectional tagger carries
    its state from piece to piece, so its tags are those of the whole sentence (it streams); a
    bidirectional one sees no context across a piece's boundary. The sentences run in batches
    of similar length within the prediction budget (``data/memory.budget_batches``)."""
    stored, model = load_run(run_dir)
    if stored.get("task") != "tag":
        raise ValueError(f"{run_dir} is a {stored.get('task')!r} run, not a tagger")
    config = TagConfig.from_run_config(stored)
    tags = stored_names(stored, "tags", model.tags, run_dir)
    data = TaggingData(None, None, None, stored_vocab(stored, "word_vocab", model.vocab_size, run_dir),
                       stored_vocab(stored, "char_vocab", model.char_vocab_size, run_dir), tags, config.lowercase,
                       config.max_word_len)
    forms = [word_tokenize(s) if isinstance(s, str) else list(s) for s in sentences]
    where = list(where) if where is not None else [f"sentence {i + 1}" for i in range(len(forms))]
    if not all(forms):
        raise ValueError(f"{where[forms.index([])]}: the sentence to tag is empty")
    encoded = [data.encode_words(f) for f in forms]
    cap = config.max_len or max((len(f) for f in forms), default=1)
    starts = range(0, max((len(f) for f in forms), default=0), cap)
    pieces = [(i, start) for start in starts for i, f in enumerate(forms) if len(f) > start]
    # a bidirectional tagger's pieces are independent: one round of batches; a unidirectional
    # one's piece k starts from the state where piece k - 1 ended: round k
    rounds = [pieces] if model.bidirectional else [[p for p in pieces if p[1] == start] for start in starts]
    per_step = tagger_batch_bytes(model, 1, 1, config.max_word_len)
    probs, carried = {}, {}
    for round_ in rounds:
        for rows in budget_batches([min(len(forms[i]) - start, cap) for i, start in round_], per_step,
                                   "one sentence", "tag shorter sentences"):
            batch = [round_[r] for r in rows]
            state = _stack_states([carried[i] for i, _ in batch]) if batch[0][1] and not model.bidirectional else None
            words, chars = zip(*[(encoded[i][0][start:start + cap], encoded[i][1][start:start + cap])
                                 for i, start in batch])
            words, mask = pad_ids(words)
            logits = backend.to_numpy(model.forward(words, pad_chars(chars), mask, initial_state=state))
            for k, (i, start) in enumerate(batch):
                probs[i, start] = host_softmax(logits[k, :min(len(forms[i]) - start, cap)])
                if not model.bidirectional:
                    # copies: the layers may reuse the buffers behind final_states in the next forward
                    carried[i] = [[s[k].copy() for s in layer] for layer in model.encoder.final_states]
    long = [i for i, f in enumerate(forms) if len(f) > cap]
    if long:
        log(f"tag: {len(long)} sentence(s) longer than the run's max_len of {cap} words tagged in pieces of {cap} "
            + ("(the state carried across: as the whole sentence)" if not model.bidirectional else
               "(no context across a piece's boundary)") + ": "
            + ", ".join(where[i] for i in long[:5]) + (", ..." if len(long) > 5 else ""))
    return tags, [(f, np.concatenate([probs[i, start] for start in range(0, len(f), cap)]))
                  for i, f in enumerate(forms)]


def _stack_states(states: list):
    """Per-sentence recurrent states (per layer, a list of (H,) arrays) -> one batch's initial
    state (per layer, a list of (B, H) arrays)."""
    xp = backend.xp
    return [[xp.stack([state[layer][k] for state in states]) for k in range(len(states[0][layer]))]
            for layer in range(len(states[0]))]
