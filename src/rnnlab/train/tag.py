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
from ..data.memory import padded_batch_bytes
from ..data.padding import pad_chars, pad_ids
from ..data.vocab import Vocab
from ..metrics import accuracy, per_class_accuracy, subset_accuracy
from ..models.tagger import Tagger
from .supervised import SupervisedConfig, SupervisedTask, drop_words, host_softmax, load_run, run_task
from .task import log


@dataclass
class TagConfig(SupervisedConfig):
    RUN_KEYS = ("word_vocab", "char_vocab", "tags")
    PATH_FIELDS = ("conllu", "valid", "test")
    DATA_FIELDS = PATH_FIELDS + ("ud_ewt", "min_freq", "lowercase", "max_len", "max_word_len")

    # data: conllu (+ valid, test) or ud_ewt
    conllu: str | None = None
    valid: str | None = None
    test: str | None = None
    ud_ewt: bool = False
    min_freq: int = 2                  # rarer training words read as <unk> (the char RNN spells them)
    lowercase: bool = True
    max_len: int | None = 250          # longer sentences are cut (reported with their lines): bounds memory
    max_word_len: int = 20
    # model
    emb: int = 100
    char_emb: int = 24
    char_hidden: int = 32
    hidden: int = 128
    layers: int = 1
    cell: str = "lstm"
    bidirectional: bool = True
    dropout: float = 0.3
    word_dropout: float = 0.25         # training words read as <unk> with this probability (epoch_batches);
                                       # chosen on UD-EWT dev among 0, 0.1, 0.25, 0.4 (README, "Task shapes")
    stream_check: int = 100            # test sentences streamed word by word (unidirectional)

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
        validate.rate("TagConfig", "word_dropout", c.word_dropout)
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
        c, d = self.config, self.data
        splits = (d.train, d.valid, d.test)
        steps = max(max((len(s) for s in split.words), default=0) for split in splits)
        letters = max((len(w) for split in splits for s in split.chars for w in s), default=0)
        need = (padded_batch_bytes(rows, steps, c.emb + 2 * c.char_hidden, c.hidden, c.layers,
                                   2 if c.bidirectional else 1, outputs=len(d.tags))
                + padded_batch_bytes(rows * steps, letters, c.char_emb, c.char_hidden, 1, 2))
        return need, f"{rows} sentences of {steps} words of up to {letters} characters"

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

    def final_metrics(self, history) -> dict:
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


def tag_sentences(run_dir, sentences) -> list[dict]:
    """Tags of each sentence (raw text, split into words as SST/UD write them) by ``run_dir``'s best
    tagger: [{"words": [...], "tags": [...]}]."""
    tags, tagged = tag_probabilities(run_dir, sentences)
    return [{"words": forms, "tags": [tags[int(t)] for t in probs.argmax(axis=-1)]} for forms, probs in tagged]


def tag_probabilities(run_dir, sentences) -> tuple[list, list]:
    """(the tag names, [(words, tag probabilities (words, tags))] per sentence) by ``run_dir``'s
    best tagger."""
    stored, model = load_run(run_dir)
    if stored.get("task") != "tag":
        raise ValueError(f"{run_dir} is a {stored.get('task')!r} run, not a tagger")
    config = TagConfig.from_run_config(stored)
    data = TaggingData(None, None, None, Vocab.from_json(stored["word_vocab"]), Vocab.from_json(stored["char_vocab"]),
                       stored["tags"], config.lowercase, config.max_word_len)
    results = []
    for sentence in sentences:
        forms = word_tokenize(sentence) if isinstance(sentence, str) else list(sentence)
        if not forms:
            raise ValueError("the sentence to tag is empty")
        ids, chars = data.encode_words(forms)
        words, mask = pad_ids([ids])
        logits = backend.to_numpy(model.forward(words, pad_chars([chars]), mask))[0]
        results.append((forms, host_softmax(logits)))
    return list(stored["tags"]), results
