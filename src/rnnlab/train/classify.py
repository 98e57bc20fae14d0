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
test split: accuracy, macro F1, the most frequent confusions (``top_confusions``), the confusion
matrix (up to ``metrics.MAX_MATRIX_CLASSES`` classes, else null; ``confusion.png`` in the run
folder up to ``metrics.MAX_SHOWN_CLASSES``) and the majority-class baseline, in memory bounded
for any class count.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import backend, validate
from ..data.labeled import (ClassificationData, find_data, load_sst2, load_tsv_classification, make_text_data,
                            pad_examples, read_labeled_tsv, read_sst2_sentences)
from ..data.memory import budget_batches, padded_batch_bytes
from ..data.padding import cap_lengths
from ..data.timeseries import load_ts_classification, load_ts_dataset
from ..metrics import (MAX_MATRIX_CLASSES, MAX_SHOWN_CLASSES, accuracy, confusion_matrix, confusion_table, macro_f1,
                       top_confusions, top_confusions_table)
from ..models.classifier import SequenceClassifier
from .config import CELLS, DATA, MODEL, setting
from .supervised import (SupervisedConfig, SupervisedTask, damaged, drop_words, load_run, majority_baseline,
                         run_task, save_figure, stored_names, stored_vocab)
from .task import log


@dataclass
class ClassifyConfig(SupervisedConfig):
    RUN_KEYS = ("labels", "kind", "vocab", "mean", "std", "majority_class")
    MONITORS = ("valid_loss", "valid_accuracy", "valid_macro_f1")
    PATH_FIELDS = ("tsv", "valid", "test", "ts", "ts_test")
    DATA_FIELDS = PATH_FIELDS + ("sst2", "ts_dataset", "valid_fraction", "data_seed", "min_freq", "lowercase",
                                 "max_len", "deltas", "frames_per_step", "series_scale")
    # runs from before the folding and the per-series scaling
    EARLIER_RUNS = {**SupervisedConfig.EARLIER_RUNS, "frames_per_step": 1, "series_scale": False}

    # data: one of tsv, sst2, ts, ts_dataset
    tsv: str | None = setting(None, "text<TAB>label lines (binary or multi-class)", group=DATA, metavar="TRAIN")
    valid: str | None = setting(None, "validation file (else --valid-fraction of train)", group=DATA,
                                metavar="FILE")
    test: str | None = setting(None, "test file (TSV, or .ts with --ts)", group=DATA, metavar="FILE")
    sst2: str | None = setting(None, "SST-2 from $RNNLAB_DATA/sentiment (else downloaded): Kim's sentences "
                               "(default) or GLUE's phrases", choices=("sentences", "glue"), const="sentences",
                               group=DATA)
    ts: str | None = setting(None, "multivariate time series, sktime/UEA .ts format", group=DATA,
                             metavar="TRAIN.ts")
    ts_test: str | None = setting(None, "the test series of ts (the command line's --test with --ts)", flag=None)
    ts_dataset: str | None = setting(None, "a UEA dataset from $RNNLAB_DATA/timeseries (else downloaded)",
                                     check=validate.text, choices=("JapaneseVowels", "BasicMotions"), group=DATA)
    valid_fraction: float | None = setting(None, "held out of train when there is no validation file (default: "
                                           "0.1 of sentences, none of series)", check=validate.rate, group=DATA)
    data_seed: int = setting(0, "seed of the held-out validation split", check=validate.non_negative_int,
                             group=DATA)
    min_freq: int = setting(1, "rarer words become <unk>", check=validate.positive_int, group=DATA)
    lowercase: bool = setting(False, "lowercase the text", group=DATA)
    max_len: int | None = setting(1000, "cut longer sequences, tokens or frames (reported with their lines): "
                                  "bounds memory", check=validate.positive_int, group=DATA)
    deltas: bool = setting(False, "series: append each feature's first difference x_t - x_(t-1) as more "
                           "features (speech's delta coefficients)", group=DATA)
    frames_per_step: int | None = setting(None, "series: read K consecutive frames as one step (default: the "
                                          "fewest that fold the longest training series into 64 steps; 1: every "
                                          "frame a step)", check=validate.positive_int, group=DATA, metavar="K")
    series_scale: bool | None = setting(None, "series: standardize each series on its own and keep its mean and "
                                        "log std as features (default: when the training series' amplitudes "
                                        "spread over more than three decades)", check=validate.flag, group=DATA,
                                        off_flag="--no-series-scale")
    # model
    emb: int = setting(128, "word embedding size (text)", check=validate.positive_int, group=MODEL)
    hidden: int = setting(128, "units of each recurrent layer", check=validate.positive_int, group=MODEL)
    layers: int = setting(1, "stacked recurrent layers", check=validate.positive_int, group=MODEL)
    cell: str | None = setting(None, "recurrent cell (default: lstm for sentences, gru for series)",
                               check=validate.cell, choices=CELLS, group=MODEL)
    bidirectional: bool = setting(True, "a two-way encoder", flag=None, off_flag="--unidirectional",
                                  off_help="a one-way encoder (default: bidirectional)", group=MODEL)
    pooling: str = setting("max", "how the encoder's outputs become one vector", choices=("last", "mean", "max"),
                           group=MODEL)
    dropout: float = setting(0.3, "between stacked layers and before the output layer", check=validate.rate,
                             group=MODEL)
    input_dropout: float = setting(0.0, "on the word embeddings (or input vectors)", check=validate.rate,
                                   group=MODEL)
    word_dropout: float = setting(0.0, "text: in training, read each word as <unk> with this probability",
                                  check=validate.rate, group=MODEL)
    # training (SupervisedConfig's, with defaults by the kind of data)
    epochs: int | None = setting(None, "passes over the training data (default: 20 for sentences; for series the "
                                 "fewest that make 1,500 updates; with --max-minutes and no --epochs: until the "
                                 "budget or early stopping)", check=validate.positive_int, resumable=True,
                                 flag_default_none=True)
    batch: int | None = setting(None, "examples per batch (default: 32 sentences, 16 series)",
                                check=validate.positive_int)

    # The settings left None take these by the kind of data, chosen on the defaults suite
    # (benchmarks/defaults_suite.py; docs/results.md "Defaults on unseen series"). Series: a GRU
    # trained for a number of updates rather than epochs (a set of 36 series is 3 batches an
    # epoch), on every training series (a validation split of 4-20 series chose underfit
    # checkpoints), the model after the last update kept (best.npz follows the training loss).
    KIND_DEFAULTS = {"text": {"cell": "lstm", "batch": 32, "epochs": 20, "valid_fraction": 0.1},
                     "series": {"cell": "gru", "batch": 16, "valid_fraction": 0.0}}
    SERIES_UPDATES = 1500              # series: epochs = the fewest that make this many updates

    @property
    def data_kind(self) -> str:
        return "series" if self.ts or self.ts_dataset else "text"

    def for_data(self, train_examples: int | None = None) -> "ClassifyConfig":
        """This config with every setting left None filled in for its kind of data; a series
        config's epochs need ``train_examples`` (the number of training series)."""
        kind = self.data_kind
        fill = {k: v for k, v in self.KIND_DEFAULTS[kind].items() if getattr(self, k) is None}
        if self.epochs is None and kind == "series":
            if train_examples is None:
                raise ValueError("a series classifier's epochs follow the number of training series: give it")
            per_epoch = -(-train_examples // (fill.get("batch") or self.batch))
            fill["epochs"] = max(1, -(-self.SERIES_UPDATES // per_epoch))
        return dataclasses.replace(self, **fill) if fill else self


def load_classification(config: ClassifyConfig) -> ClassificationData:
    """The splits ``config`` names (see the module docstring)."""
    sources = [name for name in ("tsv", "sst2", "ts", "ts_dataset") if getattr(config, name)]
    if len(sources) != 1:
        raise ValueError("give exactly one data source: --tsv FILE, --sst2 [sentences|glue], --ts FILE (with "
                         f"--test FILE) or --ts-dataset NAME (got {', '.join(sources) or 'none'})")
    fraction, seed = config.valid_fraction, config.data_seed
    if fraction is None:
        fraction = config.KIND_DEFAULTS[config.data_kind]["valid_fraction"]
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
                                      fraction if config.valid is None else 0.0, seed, config.deltas,
                                      config.frames_per_step, config.series_scale)
    return load_ts_dataset(config.ts_dataset, max_len=config.max_len, valid_fraction=fraction, seed=seed,
                           deltas=config.deltas, frames_per_step=config.frames_per_step,
                           series_scale=config.series_scale)


class ClassifyTask(SupervisedTask):
    """Sequence classification on the loop (see the module docstring)."""

    name = "classify"

    def load_data(self):
        return load_classification(self.config)

    def setup(self) -> None:
        """Read the data, fill the settings left None for its kind (``ClassifyConfig.for_data``),
        then build as every supervised task does. Without a validation split the monitored figure
        is the training loss: best.npz is the model the training made last fit best."""
        if self.data is None:
            self.data = self.load_data()
        self.config = self.config.for_data(len(self.data.train))
        if self.data.valid is None:
            if self.config.monitor not in (None, "train_loss"):
                raise ValueError(f"classify: --monitor {self.config.monitor} needs a validation split (--valid FILE "
                                 f"or --valid-fraction F); without one the training loss is monitored")
            self.monitor, self.mode = "train_loss", "min"
        super().setup()

    def build_model(self):
        c, d = self.config, self.data
        if d.test is None:
            raise ValueError("classify: the data needs a test split")
        if c.word_dropout > 0 and d.kind != "text":
            raise ValueError(f"classify: --word-dropout reads words as <unk>; these are {d.kind} examples "
                             f"(use --input-dropout on vectors)")
        held_out = (f"{len(d.valid)} valid" if d.valid is not None
                    else "no validation split (training loss monitored)")
        log(f"classify: {len(d.train)} train / {held_out} / {len(d.test)} test {d.kind} examples, "
            f"{d.num_classes} classes" + (f", vocabulary {len(d.vocab)}" if d.vocab is not None else
                                         f", {d.input_dim} features per step") + f"; {c.cell} {c.hidden}, batch "
            f"{c.batch}, {c.epochs} epochs")
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
        d = self.data
        steps = max(max(s.lengths(), default=0) for s in (d.train, d.valid, d.test) if s is not None)
        return (classifier_batch_bytes(self.model, rows, steps),
                f"{rows} examples of {steps} {'tokens' if d.kind == 'text' else 'steps'}")

    def run_config(self) -> dict:
        d = self.data
        return {"labels": list(map(str, d.labels)), "kind": d.kind,
                "vocab": d.vocab.to_json() if d.vocab is not None else None,
                "mean": None if d.mean is None else d.mean.tolist(), "std": None if d.std is None else d.std.tolist(),
                "majority_class": int(np.bincount(d.train.labels).argmax()),
                "frames_per_step": d.frames_per_step,   # resolved: what predict folds new series by
                "series_scale": d.series_scale}

    def evaluate(self, split) -> dict:
        """Loss and ``scores`` on ``split``; each batch's logits kept only as its predicted
        classes (10,000 classes x the examples would be gigabytes)."""
        loss, outputs = self.outputs(split, keep=lambda logits: logits.argmax(axis=-1))
        predictions = np.zeros(len(split), dtype=np.int64)
        for batch, predicted in outputs:
            predictions[np.asarray(batch["rows"])] = predicted
        return {"loss": loss, **self.scores(predictions, split)}

    def scores(self, predictions, split) -> dict:
        """Accuracy, macro F1, the most frequent confusions and (up to ``MAX_MATRIX_CLASSES``
        classes, else None) the confusion matrix of predicted class ids (N,) on ``split`` (one
        model's, or an ensemble's: ``train/ensemble.py``)."""
        return classification_scores(predictions, split.labels, self.data.labels)

    def validate(self) -> dict:
        if self.data.valid is None:
            return {}
        figures = self.evaluate(self.data.valid)
        return {"valid_loss": figures["loss"], "valid_accuracy": figures["accuracy"],
                "valid_macro_f1": figures["macro_f1"]}

    def test_figures(self) -> dict:
        d = self.data
        test = self.evaluate(d.test)
        valid = self.evaluate(d.valid) if d.valid is not None else {"accuracy": None, "macro_f1": None}
        confusion = test["confusion"]
        return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "loss": test["loss"],
                "confusion": None if confusion is None else confusion.tolist(),
                "top_confusions": test["top_confusions"], "labels": list(map(str, d.labels)), "test_n": len(d.test),
                "majority_baseline": majority_baseline(d.train.labels, d.test.labels),
                "valid_accuracy": valid["accuracy"], "valid_macro_f1": valid["macro_f1"],
                "params": self.model.count_params()}

    def save_report(self, folder: Path, metrics: dict) -> None:
        save_confusion_picture(folder, metrics)


def classification_scores(predictions, references, labels) -> dict:
    """``ClassifyTask.scores`` of class ids ``predictions`` against ``references``: memory
    bounded for any number of ``labels`` (the matrix only up to ``MAX_MATRIX_CLASSES``)."""
    k = len(labels)
    return {"accuracy": accuracy(predictions, references), "macro_f1": macro_f1(predictions, references, k),
            "confusion": confusion_matrix(predictions, references, k) if k <= MAX_MATRIX_CLASSES else None,
            "top_confusions": top_confusions(predictions, references, labels), "predictions": predictions}


def save_confusion_picture(folder: Path, metrics: dict) -> Path | None:
    """``confusion.png`` of the test figures in ``folder`` for at most ``MAX_SHOWN_CLASSES``
    classes; none above (results.json's ``top_confusions`` is the table then). A failure to draw
    warns: the figures are already in results.json."""
    if metrics.get("confusion") is None or len(metrics["labels"]) > MAX_SHOWN_CLASSES:
        return None
    from ..plots import plot_confusion_matrix

    return save_figure(plot_confusion_matrix, np.asarray(metrics["confusion"]), metrics["labels"],
                       folder / "confusion.png", title=f"test: accuracy {100 * metrics['accuracy']:.2f}%")


ClassifyTask.config_class = ClassifyConfig


def train_classify(config: ClassifyConfig | None, run_dir=None, resume: bool = False, overrides: dict | None = None,
                   overwrite: bool = False, data: ClassificationData | None = None, **options):
    """Train (or resume) a classifier; returns the loop's ``TrainResult`` (``result["accuracy"]``,
    ``["macro_f1"]``, ``["confusion"]``, ``["majority_baseline"]`` on the test split). ``data``:
    a ``ClassificationData`` in memory instead of the files the config names."""
    return run_task(ClassifyTask, config, run_dir, resume, overrides, overwrite, data=data, **options)


def report(metrics: dict) -> str:
    """The test figures as text: accuracy, macro F1, baseline, the confusion matrix (up to
    ``MAX_SHOWN_CLASSES`` classes; above, the most frequent confusions)."""
    labels = metrics["labels"]
    if metrics.get("confusion") is not None and len(labels) <= MAX_SHOWN_CLASSES:
        table = confusion_table(np.asarray(metrics["confusion"]), labels)
    else:
        table = (f"the {len(metrics['top_confusions'])} most frequent confusions of {len(labels)} classes:\n"
                 + top_confusions_table(metrics["top_confusions"]))
    return (f"test: accuracy {100 * metrics['accuracy']:.2f}%, macro F1 {100 * metrics['macro_f1']:.2f}% "
            f"({metrics['test_n']} examples; majority baseline {100 * metrics['majority_baseline']:.2f}%)\n"
            + table)


# ---- prediction -------------------------------------------------------------------------------


def classifier_batch_bytes(model: SequenceClassifier, rows: int, steps: int) -> int:
    """The estimate (``data/memory.py``) of a padded batch of ``rows`` inputs of ``steps`` words
    or frames through ``model``: what training checks, and what prediction batches by."""
    width = model.emb if model.vocab_size is not None else model.input_dim
    return padded_batch_bytes(rows, steps, width, model.hidden, model.layers, 2 if model.bidirectional else 1)


def classify(run_dir, texts=None, series=None, where=None) -> list[dict]:
    """Label and class probabilities of each of ``texts`` (sentences, for a text classifier) or
    ``series`` ((T, D) arrays, for a series classifier) by the best model of ``run_dir``.

    An input longer than the run's ``max_len`` is cut to its first ``max_len`` words or frames,
    as training cut its data (one line on stderr names the inputs cut, by ``where``: a
    description of each input, default "input N"). The inputs run in batches of similar length
    within the prediction budget (``data/memory.budget_batches``), so their number and length
    bound neither the memory nor, beyond the cap, the work per batch."""
    stored, model = load_run(run_dir)
    if stored.get("task") != "classify":
        raise ValueError(f"{run_dir} is a {stored.get('task')!r} run, not a classifier")
    labels = stored_names(stored, "labels", model.classes, run_dir)
    config = ClassifyConfig.from_run_config(stored)
    if model.vocab_size is not None:
        if texts is None:
            raise ValueError(f"{run_dir} classifies sentences: give text, not series")
        data = ClassificationData(None, None, None, labels, "text", lowercase=config.lowercase,
                                  vocab=stored_vocab(stored, "vocab", model.vocab_size, run_dir))
    else:
        frames_per_step = int(stored.get("frames_per_step") or 1)
        data = ClassificationData(None, None, None, labels, "series", deltas=config.deltas,
                                  frames_per_step=frames_per_step, series_scale=bool(stored.get("series_scale")),
                                  **_stored_statistics(stored, model.input_dim // frames_per_step, run_dir))
        if series is None:
            raise ValueError(f"{run_dir} classifies series of {data.series_features} features: give a .ts file")
    given = texts if data.kind == "text" else series
    where = list(where) if where is not None else [f"input {i + 1}" for i in range(len(given))]
    if data.kind == "text":
        inputs, shown = [], list(texts)
        for text, name in zip(texts, where):
            try:
                inputs.append(data.encode_text(text))
            except ValueError as err:                  # an empty sentence: say which
                raise ValueError(f"{name}: {err}") from None
    else:
        inputs = [data.encode_series(s, w) for s, w in zip(series, where)]
        shown = [f"series {i + 1} ({len(s)} steps)" for i, s in enumerate(series)]
    cut = cap_lengths(inputs, config.max_len, where)
    if cut:
        log(f"classify: {len(cut)} input(s) longer than the run's max_len of {config.max_len} "
            f"{'words' if data.kind == 'text' else 'frames'} cut to it, as training cut its data: "
            + ", ".join(map(str, cut[:5])) + (", ..." if len(cut) > 5 else ""))
    probs = np.zeros((len(inputs), len(labels)))
    for rows in budget_batches([len(x) for x in inputs], classifier_batch_bytes(model, 1, 1), "one input",
                               "give shorter inputs"):
        x, mask = pad_examples([inputs[i] for i in rows])
        probs[rows] = model.predict_proba(backend.xp.asarray(x, dtype=model.head.kernel.dtype)
                                          if data.kind == "series" else x, mask)
    return [{"input": s, "label": labels[int(p.argmax())],
             "probabilities": {label: float(v) for label, v in zip(labels, p)}} for s, p in zip(shown, probs)]


def _stored_statistics(stored: dict, features: int, run_dir) -> dict:
    """config.json's standardization of a series classifier ({"mean", "std"}: ``features``
    finite numbers each, std > 0), else a ValueError naming the file and the key."""
    out = {}
    for key in ("mean", "std"):
        values = stored.get(key)
        ok = isinstance(values, list) and len(values) == features and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        if not ok or (key == "std" and min(values) <= 0):
            raise damaged(run_dir, key, f"{features} finite numbers" + (", all > 0" if key == "std" else ""), values)
        out[key] = np.asarray(values, dtype=np.float64)
    return out
