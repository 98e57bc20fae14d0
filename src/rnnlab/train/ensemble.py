"""Ensembles: several finished runs of one task on the same data, their probabilities averaged
(``rnnlab ensemble RUN_DIR RUN_DIR ...``; classify, tag, caption and seq2seq runs).

    result = evaluate_ensemble(["runs/jv0", "runs/jv1", "runs/jv2"])     # the test split
    result["accuracy"]                    # the ensemble's figure
    result["members"][0]["accuracy"]      # each run's own, on the same split

How each task averages (M members, each run's best checkpoint):

- classify: p(class | x) = (1/M) sum_m p_m(class | x), the predicted class its argmax;
- tag: the same for every word's tag distribution;
- caption and seq2seq: at every decoding step the next-token distributions
  (``search.StepEnsemble``; ``CaptionerEnsemble``), so greedy and beam search decode the
  ensemble as one model.

``predict_ensemble(run_dirs, texts=..., series=...)`` does the same for new inputs
(``rnnlab predict RUN_DIR RUN_DIR ... INPUT``).

Models trained from different seeds make partly independent errors, which the average cancels;
it costs M trainings and M forward passes. The members must be runs of the same task whose
data settings (the config's ``DATA_FIELDS``) and stored vocabularies / labels are equal: else a
ValueError naming the run and the setting.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models.captioner import CaptionerEnsemble
from ..search import StepEnsemble
from .caption import CaptionTask
from .classify import ClassifyTask, classify
from .run import RunDir
from .seq2seq import Seq2SeqConfig, Translator, describe_scores, evaluate as evaluate_pairs
from .supervised import class_predictions, load_run
from .tag import TagTask, tag_probabilities

TASKS = {"classify": ClassifyTask, "tag": TagTask, "caption": CaptionTask}   # seq2seq: its own path
CONFIGS = {**{name: task.config_class for name, task in TASKS.items()}, "seq2seq": Seq2SeqConfig}
SPLITS = ("valid", "test")


def _read_members(run_dirs) -> tuple[str, object]:
    """(the task's name, the first run's config), after checking the runs can be averaged."""
    run_dirs = [Path(r) for r in run_dirs]
    if not run_dirs:
        raise ValueError("an ensemble needs at least one run directory")
    seen = {}
    for run_dir in run_dirs:
        key = run_dir.resolve()
        if key in seen:
            raise ValueError(f"{run_dir} is given twice (also as {seen[key]}): an ensemble averages different runs")
        seen[key] = run_dir
    stored = []
    for run_dir in run_dirs:
        run = RunDir(run_dir, create=False)
        if not run.config_path.exists():
            raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
        stored.append(run.read_config())
    task = stored[0].get("task")
    if task not in CONFIGS:
        raise ValueError(f"{run_dirs[0]} is a {task!r} run: rnnlab ensemble takes {', '.join(CONFIGS)} runs")
    config_class = CONFIGS[task]
    first = config_class.from_run_config(stored[0])
    for run_dir, config in zip(run_dirs[1:], stored[1:]):
        if config.get("task") != task:
            raise ValueError(f"{run_dir} is a {config.get('task')!r} run and {run_dirs[0]} a {task!r} run: "
                             f"the members of an ensemble are runs of one task")
        other = config_class.from_run_config(config)
        for name in config_class.DATA_FIELDS:
            if getattr(other, name) != getattr(first, name):
                raise ValueError(f"{run_dir} trained on {name}={getattr(other, name)!r}, {run_dirs[0]} on "
                                 f"{getattr(first, name)!r}: the members of an ensemble share their data")
        for key in config_class.RUN_KEYS:
            if config.get(key) != stored[0].get(key):
                raise ValueError(f"{run_dir} and {run_dirs[0]} differ in their stored {key!r}: the members of an "
                                 f"ensemble share their data")
    return task, first


def _figures(metrics: dict, keys) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in metrics.items() if k in keys}


CLASSIFY_KEYS = ("accuracy", "macro_f1", "confusion", "top_confusions")
TAG_KEYS = ("accuracy", "unseen_accuracy", "unseen_words", "words")
CAPTION_KEYS = ("exact_match", "token_accuracy")
SEQ2SEQ_KEYS = ("exact_match", "token_accuracy", "bleu", "target_level")


def evaluate_ensemble(run_dirs, split: str = "test", beam: int | None = None) -> dict:
    """The ensemble of ``run_dirs`` on ``split`` of their shared data, and each member's figures
    on it: ``{"task", "split", "n", "members": [{"run", figures}], figures}`` where the figures
    are accuracy, macro F1 and the confusion matrix (classify); accuracy overall and on unseen
    words (tag); greedy and beam exact match and token accuracy (caption; ``beam`` default the
    first run's); exact match, token accuracy and BLEU of greedy or ``beam`` decoding (seq2seq)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    name, config = _read_members(run_dirs)
    if name == "seq2seq":
        return _evaluate_seq2seq(run_dirs, split, beam or 1)
    task = TASKS[name](config)
    task.data = task.load_data()
    data = getattr(task.data, split)
    if data is None:   # a series classifier trains on every training series: nothing was held out
        raise ValueError(f"{run_dirs[0]} holds no {split} split (its runs trained on every training example); "
                         f"use --split test")
    models = [load_run(run_dir)[1] for run_dir in run_dirs]
    members = [{"run": str(run_dir)} for run_dir in run_dirs]
    result = {"task": task.name, "split": split, "n": len(data), "runs": [str(r) for r in run_dirs]}
    if task.name == "caption":
        task.max_len = task.decode_length()
        beam = beam or task.config.beam
        for member, model in zip(members, models):
            task.model = model
            member.update(_caption_figures(task, data, beam))
        task.model = CaptionerEnsemble(models)
        result.update(_caption_figures(task, data, beam))
    else:
        probabilities = []
        for member, model in zip(members, models):
            task.model = model
            if task.name == "classify":
                probs = class_predictions(task.outputs(data)[1], len(data))[1]
            else:
                probs = task.word_probabilities(data)[1]
            probabilities.append(probs)
            member.update(_figures(task.scores(probs.argmax(axis=-1), data), CLASSIFY_KEYS + TAG_KEYS))
        mean = np.mean(probabilities, axis=0)
        result.update(_figures(task.scores(mean.argmax(axis=-1), data), CLASSIFY_KEYS + TAG_KEYS))
        if task.name == "classify":
            result["labels"] = list(task.data.labels)
    result["members"] = members
    return result


def _evaluate_seq2seq(run_dirs, split: str, beam: int) -> dict:
    """Seq2seq members and their ensemble on the run's own split: exact match, token accuracy,
    BLEU of greedy (``beam`` 1) or beam decoding, each sentence's decoding limit the first run's."""
    translators = [Translator(run_dir) for run_dir in run_dirs]
    first = translators[0]
    data = first.data(first.split_pairs(split))
    options = dict(max_len=first.max_len, beam=beam, length_penalty=first.config.length_penalty, with_loss=False,
                   cap=first.decode_cap)
    result = {"task": "seq2seq", "split": split, "n": len(data), "runs": [str(r) for r in run_dirs], "beam": beam}
    members = [{"run": str(run_dir), **_figures(evaluate_pairs(t.model, data, **options), SEQ2SEQ_KEYS)}
               for run_dir, t in zip(run_dirs, translators)]
    result.update(_figures(evaluate_pairs(StepEnsemble([t.model for t in translators]), data, **options),
                           SEQ2SEQ_KEYS))
    result["members"] = members
    return result


def _caption_figures(task: CaptionTask, split, beam: int) -> dict:
    greedy = task.evaluate(split)
    figures = _figures(greedy, CAPTION_KEYS)
    if beam > 1:
        searched = task.evaluate(split, beam)
        figures.update({"beam": beam, "beam_exact_match": searched["exact_match"],
                        "beam_token_accuracy": searched["token_accuracy"]})
    return figures


def report(result: dict) -> str:
    """The members' figures and the ensemble's, one line each."""
    def line(figures: dict) -> str:
        if result["task"] == "seq2seq":
            return describe_scores(figures, brief=True)
        if result["task"] == "caption":
            text = (f"exact match {100 * figures['exact_match']:.2f}%, token accuracy "
                    f"{100 * figures['token_accuracy']:.2f}%")
            if "beam" in figures:
                text += f"; beam {figures['beam']}: exact match {100 * figures['beam_exact_match']:.2f}%"
            return text
        text = f"accuracy {100 * figures['accuracy']:.2f}%"
        if result["task"] == "classify":
            return text + f", macro F1 {100 * figures['macro_f1']:.2f}%"
        return text + f", unseen words {100 * figures['unseen_accuracy']:.2f}% ({figures['unseen_words']})"
    lines = [f"  {m['run']}: {line(m)}" for m in result["members"]]
    size = f"{result['n']} sentences, {result['words']} words" if result["task"] == "tag" else f"{result['n']} examples"
    lines.append(f"ensemble of {len(result['members'])} ({result['task']}, {result['split']}, {size}): {line(result)}")
    return "\n".join(lines)


def predict_ensemble(run_dirs, texts=None, series=None, where=None) -> list[dict]:
    """As ``classify`` (classifier runs: label and mean class probabilities per input) or
    ``tag_sentences`` (tagger runs: words and the tags of the mean tag probabilities) for
    several runs that can be averaged (``where``: as theirs)."""
    name, _ = _read_members(run_dirs)
    if name == "classify":
        members = [classify(run_dir, texts=texts, series=series, where=where) for run_dir in run_dirs]
        results = []
        for outputs in zip(*members):
            labels = list(outputs[0]["probabilities"])
            mean = np.mean([[out["probabilities"][label] for label in labels] for out in outputs], axis=0)
            results.append({"input": outputs[0]["input"], "label": labels[int(mean.argmax())],
                            "probabilities": dict(zip(labels, map(float, mean)))})
        return results
    if name == "tag":
        if texts is None:
            raise ValueError(f"{run_dirs[0]} tags sentences: give text")
        members = [tag_probabilities(run_dir, texts, where) for run_dir in run_dirs]
        tags = members[0][0]
        results = []
        for tagged in zip(*[m[1] for m in members]):
            mean = np.mean([probs for _, probs in tagged], axis=0)
            results.append({"words": tagged[0][0], "tags": [tags[int(t)] for t in mean.argmax(axis=-1)]})
        return results
    raise ValueError(f"{run_dirs[0]} is a {name!r} run: rnnlab predict takes classify and tag runs")
