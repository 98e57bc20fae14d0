"""Each task setting declared once (train/config.py ``setting``): every field of every task's
config refuses each bad value on construction with a ValueError naming the field, and a run's
config.json is checked by the same rules."""
import json
import math

import numpy as np
import pytest

from rnnlab import optim, validate
from rnnlab.train.caption import CaptionConfig
from rnnlab.train.classify import ClassifyConfig
from rnnlab.train.config import optimizer_name
from rnnlab.train.lm import LMConfig, corpus_name, lm_split
from rnnlab.train.run import check_run_config
from rnnlab.train.seq2seq import Seq2SeqConfig, separator
from rnnlab.train.tag import TagConfig

CONFIGS = (LMConfig, Seq2SeqConfig, ClassifyConfig, TagConfig, CaptionConfig)

# what each rule must refuse (a rule without an entry here fails the test: add its bad values)
BAD_VALUES = {
    validate.positive_int: [0, -5, 2.5, "8", True],
    validate.non_negative_int: [-1, 1.5, "0", True],
    validate.positive_float: [0.0, -1.0, math.nan, math.inf, "1"],
    validate.non_negative_float: [-1.0, math.nan, math.inf, "1"],
    validate.rate: [-0.1, 1.0, math.nan],
    validate.decay_factor: [0.0, 1.5, math.nan],
    validate.fractions: [(0.5, 0.6, 0.1), (1.0, 0.0), ("a", "b", "c"), (-0.1, 0.6, 0.5)],
    lm_split: [(1.0, 0.0, 0.0), (0.9, 0.1, 0.0), (0.5, 0.6, 0.1)],
    validate.cell: ["nonsense", 3],
    corpus_name: ["wikitext", 3],
    optimizer_name: ["rmsprop", 3],
    validate.flag: ["yes", 1],
    validate.text: ["", 5],
    separator: ["", 5],
}


def _bad_cases():
    for config_class in CONFIGS:
        for field, rule in config_class.settings():
            # no check: the field's choices; a rule missing from BAD_VALUES fails collection
            for value in ["nonsense", 3] if rule.check is None else BAD_VALUES[rule.check]:
                yield pytest.param(config_class, field.name, value,
                                   id=f"{config_class.__name__}.{field.name}={value!r}")


@pytest.mark.parametrize("config_class, name, value", list(_bad_cases()))
def test_every_field_refuses_a_bad_value_naming_it(config_class, name, value):
    with pytest.raises(ValueError, match=rf"^{config_class.__name__}: {name}\b"):
        config_class(**{name: value})


@pytest.mark.parametrize("config_class", CONFIGS)
def test_the_defaults_pass_their_own_rules_and_values_come_back_canonical(config_class):
    config = config_class()
    assert config_class.from_dict(config.to_dict()) == config
    numbers = config_class(seed=np.int64(3), clip=np.float32(2.5))
    assert type(numbers.seed) is int and type(numbers.clip) is float and numbers.clip == 2.5


def test_the_examples_of_the_issue():
    with pytest.raises(ValueError, match="LMConfig: hidden must be a positive integer, got -5"):
        LMConfig(hidden=-5)
    with pytest.raises(ValueError, match="LMConfig: clip must lie in"):
        LMConfig(clip=-1.0)
    assert LMConfig(clip=None).clip is None and LMConfig(clip=0).clip == 0.0   # off, both
    assert LMConfig(lr=1).lr == 1.0 and type(LMConfig(lr=1).lr) is float
    # the library's names of a corpus or an optimizer stay accepted, in any case
    assert LMConfig(dataset="Tiny-Shakespeare").token_level() == "char"
    assert LMConfig(optimizer="Adam").optimizer == "adam" and LMConfig(optimizer="Adam").lr == 2e-3


def test_a_pairs_separator_named_tab_is_a_tab():
    assert Seq2SeqConfig(sep="tab").sep == "\t" and Seq2SeqConfig(sep="\\t").sep == "\t"
    assert Seq2SeqConfig(sep="_").sep == "_" and Seq2SeqConfig().sep is None


def test_monitor_choices_are_the_tasks_own_metrics():
    assert ClassifyConfig(monitor="valid_macro_f1").monitor == "valid_macro_f1"
    assert TagConfig(monitor="valid_unseen_accuracy").monitor == "valid_unseen_accuracy"
    with pytest.raises(ValueError, match="ClassifyConfig: monitor must be one of valid_loss"):
        ClassifyConfig(monitor="valid_unseen_accuracy")
    with pytest.raises(ValueError, match="CaptionConfig: monitor"):
        CaptionConfig(monitor="nonsense")


def test_resumable_settings_are_the_budget_and_checkpointing():
    budget = {"epochs", "max_minutes", "patience", "checkpoint_every", "checkpoint_seconds"}
    assert set(LMConfig.resumable_fields()) == budget
    for config_class in (Seq2SeqConfig, ClassifyConfig, TagConfig, CaptionConfig):
        assert set(config_class.resumable_fields()) == budget | {"progress"}


def test_an_inherited_setting_with_another_default_keeps_its_rule():
    assert CaptionConfig().lr_decay == 0.6 and ClassifyConfig().lr_decay == 1.0
    with pytest.raises(ValueError, match="CaptionConfig: lr_decay"):
        CaptionConfig(lr_decay=2.0)


def test_a_run_config_is_checked_by_the_same_rules(tmp_path):
    stored = {**LMConfig().to_dict(), "task": "lm", "vocab_size": 10}
    check_run_config(stored, "config.json")
    for key, value in (("hidden", 0), ("hidden", "8"), ("dropout", 1.0), ("split", [1, 0, 0]), ("cell", "x")):
        with pytest.raises(ValueError, match=rf"^config\.json: LMConfig: {key}\b"):
            check_run_config({**stored, key: value}, "config.json")
    json.dumps(stored)   # what a run writes stays JSON


def test_clip_grad_norm_refuses_a_negative_or_nan_norm():
    grads = [np.array([3.0, 4.0])]
    for bad in (-1, math.nan, math.inf, "5"):
        with pytest.raises(ValueError, match="clip_grad_norm: max_norm"):
            optim.clip_grad_norm(grads, bad)
    assert grads[0].tolist() == [3.0, 4.0]   # untouched (a negative norm used to flip its sign)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_refuse_a_negative_or_nan_lr(name):
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="lr must"):
            optim.get(name, lr=bad)
    opt = optim.get(name, lr=0.1)
    with pytest.raises(ValueError, match="lr must"):
        opt.lr = -1.0   # a schedule cannot set one either
    assert opt.lr == 0.1
