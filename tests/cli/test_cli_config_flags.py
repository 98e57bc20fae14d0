"""The trainers' flags are generated from their config's fields (cli/config_flags.py): every field
has its flag, every flag sets its field, and a bad value is refused at parse time by the field's
own rule, with the library's words, in one line with exit status 2."""
import argparse

import pytest

from rnnlab import validate
from rnnlab.cli import build_parser, main, train_caption, train_classify, train_lm, train_seq2seq, train_tag
from rnnlab.cli.config_flags import given_flags
from rnnlab.train.caption import CaptionConfig
from rnnlab.train.classify import ClassifyConfig
from rnnlab.train.config import base_type
from rnnlab.train.lm import LMConfig, lm_split
from rnnlab.train.seq2seq import Seq2SeqConfig, separator
from rnnlab.train.tag import TagConfig

TRAINERS = {"lm": (train_lm, LMConfig), "seq2seq": (train_seq2seq, Seq2SeqConfig),
            "classify": (train_classify, ClassifyConfig), "tag": (train_tag, TagConfig),
            "caption": (train_caption, CaptionConfig)}
# the commands' own flags, which are no config field
COMMAND_FLAGS = {"help", "json", "out", "resume", "overwrite", "threads", "seeds", "jobs", "no_progress"}
# fields no flag sets: a test knob, and the test series of --ts (which --test names)
FLAGLESS = {"checkpoint_seconds", "ts_test"}
# the flags a command needs besides the one under test
BASE = {"seq2seq": ["--generated", "dates"]}
PARSER = build_parser()


def _subcommand(parser, name):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


def _parse(task, argv):
    return PARSER.parse_args(["train", task, *BASE.get(task, []), *argv])


@pytest.mark.parametrize("task", TRAINERS)
def test_every_field_has_a_flag_and_every_flag_sets_a_field(task):
    _, config_class = TRAINERS[task]
    dests = {action.dest for action in _subcommand(_subcommand(PARSER, "train"), task)._actions}
    fields = set(config_class.field_names())
    assert fields - dests == FLAGLESS & fields
    assert dests - fields <= COMMAND_FLAGS


# a value other than the default, as typed and as the config holds it, for each rule
def _examples(config_class):
    for field, rule in config_class.settings():
        flag = rule.flag
        if field.name in FLAGLESS:
            continue
        if rule.check is validate.flag:
            yield from ((field.name, [f], f == flag) for f in (flag, rule.off_flag) if f)
            continue
        choices = rule.allowed(config_class)
        if choices:
            value = text = next(c for c in choices if c != field.default)
        elif rule.check in (validate.fractions, lm_split):
            value, text = (0.7, 0.2, 0.1), "0.7,0.2,0.1"
        elif rule.check in (validate.rate, validate.decay_factor):
            value = 0.25 if field.default != 0.25 else 0.5
            text = str(value)
        elif rule.check in (validate.positive_float, validate.non_negative_float):
            value = (field.default or 0.0) + 2.5
            text = str(value)
        elif rule.check in (validate.positive_int, validate.non_negative_int):
            value = (field.default or 0) + 2
            text = str(value)
        elif rule.check is separator:   # --sep tab: a tab
            value, text = "\t", "tab"
        else:
            assert rule.check is validate.text, (config_class, field.name)
            value = text = "folder/file.txt"
        yield field.name, [text] if rule.positional else [flag, text], value


@pytest.mark.parametrize("task, argv, name, value", [
    pytest.param(task, argv, name, value, id=f"{task} {' '.join(argv)}")
    for task, (_, config_class) in TRAINERS.items() for name, argv, value in _examples(config_class)])
def test_each_flag_reaches_its_field(task, argv, name, value):
    module, config_class = TRAINERS[task]
    config = module.config_from_args(_parse(task, argv))
    assert isinstance(config, config_class) and getattr(config, name) == value


BAD_TEXT = {validate.positive_int: "0", validate.non_negative_int: "-1", validate.positive_float: "0",
            validate.non_negative_float: "-1", validate.rate: "1", validate.decay_factor: "1.5",
            validate.fractions: "0.5,0.6,0.1", lm_split: "0.9,0.1,0", validate.text: "",
            separator: ""}


@pytest.mark.parametrize("task, name", [(task, f.name) for task, (_, c) in TRAINERS.items()
                                        for f, r in c.settings() if r.flag and not r.positional
                                        and r.check is not validate.flag])
def test_a_bad_value_is_refused_at_parse_time_with_the_librarys_words(task, name, capsys):
    _, config_class = TRAINERS[task]
    field, rule = next((f, r) for f, r in config_class.settings() if f.name == name)
    text = "nonsense" if rule.allowed(config_class) else BAD_TEXT[rule.check]   # (argparse checks choices)
    with pytest.raises(SystemExit) as exit_info:
        _parse(task, [f"{rule.flag}={text}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and f"argument {rule.flag}: " in err
    if not rule.allowed(config_class):   # the same words as the library's
        as_typed = {"int": int, "float": float}.get(base_type(field), str)
        with pytest.raises(ValueError) as library:
            config_class(**{name: as_typed(text)})
        words = str(library.value).removeprefix(f"{config_class.__name__}: {name} ")
        assert f"argument {rule.flag}: {words} (see" in err


@pytest.mark.parametrize("argv, flag", [
    (["train", "lm", "--split", "1,0,0"], "--split"),
    (["train", "lm", "--split", "0.9,0.1,0"], "--split"),
    (["train", "classify", "--monitor", "nonsense"], "--monitor"),
    (["train", "tag", "--monitor", "valid_macro_f1"], "--monitor"),   # classify's, not tag's
    (["train", "lm", "--hidden", "-5"], "--hidden"),
    (["train", "caption", "--beam", "0"], "--beam"),
])
def test_issue_cases_are_one_line_before_any_work(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and f"argument {flag}:" in err


def test_lm_resume_names_the_flags_it_ignores():
    args = PARSER.parse_args(["train", "lm", "--hidden", "8", "--epochs", "3", "--mean-over-time", "--resume"])
    resumable = LMConfig.resumable_fields()
    assert given_flags(args, [n for n in LMConfig.field_names() if n not in resumable]) == ["--hidden",
                                                                                            "--mean-over-time"]
    assert given_flags(args, resumable) == ["--epochs"]
