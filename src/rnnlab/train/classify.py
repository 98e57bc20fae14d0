"""Many-to-one: sequence classification (``rnnlab train classify``, ``rnnlab predict``).

    config = ClassifyConfig(tsv="train.tsv", test="test.tsv")          # any text<TAB>label file
    config = ClassifyConfig(sst2="glue")                                # SST-2 by name
    config = ClassifyConfig(ts_dataset="JapaneseVowels")                # .ts series ($RNNLAB_DATA)
    result = train_classify(config, "runs/jv")     # result["accuracy"], ["macro_f1"], ["confusion"]
    classify("runs/jv", series=[array (T, 12)])    # [{"label", "probabilities"}]

Data (exactly one source): ``tsv`` (+ ``valid``, ``test`` files), ``sst2`` ("sentences": Kim's
6,920 / 872 / 1,821 sentences; "glue": GLUE's 67,349 training phrases, its 872 dev sentences as
validation, and the 1,821 labelled test sentences of the "sentences" files as test), ``ts`` with
``ts_test`` (``.ts`` files), or ``ts_dataset`` (a UEA dataset by name). Without a validation
file, ``valid_fraction`` of train (seeded) is held out. Model: ``models/classifier.py``'s
``SequenceClassifier`` (embedding for words, or the standardized vectors; stacked, optionally
bidirectional encoder; last / mean / max pooling; dense). The monitored metric is the
validation accuracy (best.npz, early stopping); at the end the best model is evaluated on the
test split: accuracy, macro F1, the confusion matrix (``confusion.png`` in the run folder) and
the majority-class baseline.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import backend, validate
from ..data.labeled import (ClassificationData, find_data, load_sst2, load_tsv_classification, make_text_data,
                            read_labeled_tsv, read_sst2_sentences)
from ..data.memory import padded_batch_bytes
from ..data.padding import pad_ids, pad_vectors
from ..data.timeseries import load_ts_classification, load_ts_dataset
from ..data.vocab import Vocab
from ..metrics import accuracy, confusion_matrix, confusion_table, macro_f1
from ..models.classifier import SequenceClassifier
from .supervised import (SupervisedConfig, SupervisedTask, class_predictions, drop_words, load_run,
                         majority_baseline, run_task, save_figure)
from .task import log


@dataclass
class ClassifyConfig(SupervisedConfig):
    RUN_KEYS = ("labels", "kind", "vocab", "mean", "std", "majority_class")
    PATH_FIELDS = ("tsv", "valid", "test", "ts", "ts_test")
    DATA_FIELDS = PATH_FIELDS + ("sst2", "ts_dataset", "valid_fraction", "data_seed", "min_freq", "lowercase",
                                 "max_len", "deltas")

    # data: one of tsv, sst2, ts, ts_dataset
    tsv: str | None = None
    valid: str | None = None
    test: str | None = None
    sst2: str | None = None            # "sentences" or "glue"
    ts: str | None = None
    ts_test: str | None = None
    ts_dataset: str | None = None      # e.g. "JapaneseVowels", "BasicMotions"
    valid_fraction: float = 0.1        # held out of train when there is no validation file
    data_seed: int = 0
    min_freq: int = 1
    lowercase: bool = False
    max_len: int | None = 1000         # longer sequences are cut (reported with their lines): bounds memory
    deltas: bool = False               # series: append each feature's first difference (timeseries.with_deltas)
    # model
    emb: int = 128
    hidden: int = 128
    layers: int = 1
    cell: str = "lstm"
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.3
    input_dropout: float = 0.0         # on the embeddings (or input vectors)
    word_dropout: float = 0.0          # text: training words read as <unk> with this probability


def load_classification(config: ClassifyConfig) -> ClassificationData:
    """The splits ``config`` names (see the module docstring)."""
    sources = [name for name in ("tsv", "sst2", "ts", "ts_dataset") if getattr(config, name)]
    if len(sources) != 1:
        raise ValueError("give exactly one data source: --tsv FILE, --sst2 [sentences|glue], --ts FILE (with "
                         f"--test FILE) or --ts-dataset NAME (got {', '.join(sources) or 'none'})")
    fraction, seed = config.valid_fraction, config.data_seed
    if config.deltas and not (config.ts or config.ts_dataset):
        raise ValueError("--deltas appends each feature's first difference to a series: it goes with --ts or "
                         "--ts-dataset, not with sentences")
    if config.tsv:
        return load_tsv_classification(config.tsv, config.valid, config.test, config.min_freq, config.max_len,
                                       config.lowercase, fraction if config.valid is None else 0.0, seed)
    if config.sst2 == "glue":
        glue, sentences = find_data("sentiment/sst2-glue"), find_data("sentiment/sst2-sentences")

        def read(reader, file):
            return (*reader(file, True), str(file))
        return make_text_data(read(read_labeled_tsv, glue / "train.tsv"), read(read_labeled_tsv, glue / "dev.tsv"),
                              read(read_sst2_sentences, sentences / "stsa.binary.test"), config.min_freq,
                              config.max_len, True)
    if config.sst2:
        return load_sst2(config.sst2, min_freq=config.min_freq, max_len=config.max_len, lowercase=config.lowercase)
    if config.ts:
        if not config.ts_test:
            raise ValueError("--ts needs --test TEST.ts (the series to report on)")
        return load_ts_classification(config.ts, config.ts_test, config.valid, config.max_len,
                                      fraction if config.valid is None else 0.0, seed, config.deltas)
    return load_ts_dataset(config.ts_dataset, max_len=config.max_len, valid_fraction=fraction, seed=seed,
                           deltas=config.deltas)


class ClassifyTask(SupervisedTask):
    """Sequence classification on the loop (see the module docstring)."""

    name = "classify"

    def load_data(self):
        return load_classification(self.config)

    def build_model(self):
        c, d = self.config, self.data
        if d.valid is None or d.test is None:
            raise ValueError("classify: the data needs a validation and a test split")
        validate.rate("ClassifyConfig", "word_dropout", c.word_dropout)
        if c.word_dropout > 0 and d.kind != "text":
            raise ValueError(f"classify: --word-dropout reads words as <unk>; these are {d.kind} examples "
                             f"(use --input-dropout on vectors)")
        log(f"classify: {len(d.train)} train / {len(d.valid)} valid / {len(d.test)} test {d.kind} examples, "
            f"{d.num_classes} classes" + (f", vocabulary {len(d.vocab)}" if d.vocab is not None else
                                         f", {d.input_dim} features per step"))
        return SequenceClassifier(d.num_classes, vocab_size=len(d.vocab) if d.kind == "text" else None,
                                  input_dim=d.input_dim if d.kind == "series" else None, emb=c.emb, hidden=c.hidden,
                                  layers=c.layers, cell=c.cell, bidirectional=c.bidirectional, pooling=c.pooling,
                                  dropout=c.dropout, input_dropout=c.input_dropout, seed=c.seed,
                                  name="classifier")

    def epoch_batches(self, epoch: int):
        """The shuffled batches of ``epoch``; for text with ``word_dropout`` p, each real word
        read as ``<unk>`` with probability p (``supervised.drop_words``)."""
        batches, c = super().epoch_batches(epoch), self.config
        if c.word_dropout > 0:
            drop_words(batches, "x", c.word_dropout, self.data.vocab.unk_id, c.seed, epoch)
        return batches

    def inputs(self, batch):
        return batch["x"], batch["mask"]

    def targets(self, batch):
        return batch["y"], None

    def padded_batch_bytes(self, rows: int) -> tuple[int, str]:
        c, d = self.config, self.data
        steps = max(max(s.lengths(), default=0) for s in (d.train, d.valid, d.test))
        width = c.emb if d.kind == "text" else d.input_dim
        need = padded_batch_bytes(rows, steps, width, c.hidden, c.layers, 2 if c.bidirectional else 1)
        return need, f"{rows} examples of {steps} {'tokens' if d.kind == 'text' else 'frames'}"

    def run_config(self) -> dict:
        d = self.data
        return {"labels": list(map(str, d.labels)), "kind": d.kind,
                "vocab": d.vocab.to_json() if d.vocab is not None else None,
                "mean": None if d.mean is None else d.mean.tolist(), "std": None if d.std is None else d.std.tolist(),
                "majority_class": int(np.bincount(d.train.labels).argmax())}

    def evaluate(self, split) -> dict:
        loss, outputs = self.outputs(split)
        predictions, probs = class_predictions(outputs, len(split))
        return {"loss": loss, **self.scores(predictions, split), "probabilities": probs}

    def scores(self, predictions, split) -> dict:
        """Accuracy, macro F1 and confusion matrix of predicted class ids (N,) on ``split``
        (one model's, or an ensemble's: ``train/ensemble.py``)."""
        k = self.data.num_classes
        return {"accuracy": accuracy(predictions, split.labels), "macro_f1": macro_f1(predictions, split.labels, k),
                "confusion": confusion_matrix(predictions, split.labels, k), "predictions": predictions}

    def validate(self) -> dict:
        figures = self.evaluate(self.data.valid)
        return {"valid_loss": figures["loss"], "valid_accuracy": figures["accuracy"],
                "valid_macro_f1": figures["macro_f1"]}

    def final_metrics(self, history) -> dict:
        d = self.data
        test, valid = self.evaluate(d.test), self.evaluate(d.valid)
        return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "loss": test["loss"],
                "confusion": test["confusion"].tolist(), "labels": list(map(str, d.labels)), "test_n": len(d.test),
                "majority_baseline": majority_baseline(d.train.labels, d.test.labels),
                "valid_accuracy": valid["accuracy"], "valid_macro_f1": valid["macro_f1"],
                "params": self.model.count_params()}

    def save_report(self, folder: Path, metrics: dict) -> None:
        from ..plots import plot_confusion_matrix

        save_figure(plot_confusion_matrix, np.asarray(metrics["confusion"]), metrics["labels"],
                    folder / "confusion.png", title=f"test: accuracy {100 * metrics['accuracy']:.2f}%")


ClassifyTask.config_class = ClassifyConfig


def train_classify(config: ClassifyConfig | None, run_dir=None, resume: bool = False, overrides: dict | None = None,
                   overwrite: bool = False, data: ClassificationData | None = None, **options):
    """Train (or resume) a classifier; returns the loop's ``TrainResult`` (``result["accuracy"]``,
    ``["macro_f1"]``, ``["confusion"]``, ``["majority_baseline"]`` on the test split). ``data``:
    a ``ClassificationData`` in memory instead of the files the config names."""
    return run_task(ClassifyTask, config, run_dir, resume, overrides, overwrite, data=data, **options)


def report(metrics: dict) -> str:
    """The test figures as text: accuracy, macro F1, baseline, the confusion table."""
    return (f"test: accuracy {100 * metrics['accuracy']:.2f}%, macro F1 {100 * metrics['macro_f1']:.2f}% "
            f"({metrics['test_n']} examples; majority baseline {100 * metrics['majority_baseline']:.2f}%)\n"
            + confusion_table(np.asarray(metrics["confusion"]), metrics["labels"]))


# ---- prediction -------------------------------------------------------------------------------


def classify(run_dir, texts=None, series=None) -> list[dict]:
    """Label and class probabilities of each of ``texts`` (sentences, for a text classifier) or
    ``series`` ((T, D) arrays, for a series classifier) by the best model of ``run_dir``."""
    stored, model = load_run(run_dir)
    if stored.get("task") != "classify":
        raise ValueError(f"{run_dir} is a {stored.get('task')!r} run, not a classifier")
    labels, kind = stored["labels"], stored["kind"]
    if kind == "text":
        if texts is None:
            raise ValueError(f"{run_dir} classifies sentences: give text, not series")
        data = ClassificationData(None, None, None, labels, "text", vocab=Vocab.from_json(stored["vocab"]),
                                  lowercase=bool(stored.get("lowercase")))
        x, mask = pad_ids([data.encode_text(t) for t in texts])
        shown = list(texts)
    else:
        data = ClassificationData(None, None, None, labels, "series", mean=np.asarray(stored["mean"]),
                                  std=np.asarray(stored["std"]), deltas=bool(stored.get("deltas")))
        if series is None:
            raise ValueError(f"{run_dir} classifies series of {data.series_features} features: give a .ts file")
        x, mask = pad_vectors([data.encode_series(s) for s in series])
        x = backend.xp.asarray(x, dtype=model.head.kernel.dtype)
        shown = [f"series {i + 1} ({len(s)} steps)" for i, s in enumerate(series)]
    probs = model.predict_proba(x, mask)
    return [{"input": s, "label": labels[int(p.argmax())],
             "probabilities": {label: float(v) for label, v in zip(labels, p)}} for s, p in zip(shown, probs)]
