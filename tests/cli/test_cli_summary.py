"""``rnnlab summary``: the two example configs, --json, checkpoints, bad files."""
import json
from pathlib import Path

import numpy as np
import pytest

import rnnlab as rl
from capped import run_capped
from rnnlab import cli
from rnnlab import layers as L

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


def _table_lines(out: str) -> list[str]:
    lines = out.rstrip("\n").split("\n")
    return lines[lines.index(next(line for line in lines if line.startswith("Model: "))):]


def test_summary_of_the_simple_rnn_example(capsys):
    assert cli.main(["summary", str(CONFIGS / "simple_rnn_1969.json")]) == 0
    lines = _table_lines(capsys.readouterr().out)
    assert lines[0] == 'Model: "sequential"'
    assert lines[4] == " simple_rnn (SimpleRNN)      (None, 20, 16)            368       "
    assert lines[6] == " simple_rnn_1 (SimpleRNN)    (None, 32)                1568      "
    assert lines[8] == " flatten (Flatten)           (None, 32)                0         "
    assert lines[10] == " dense (Dense)               (None, 1)                 33        "
    assert lines[-4:] == ["Total params: 1,969", "Trainable params: 1,969", "Non-trainable params: 0", "_" * 65]


def test_summary_of_the_lstm_yaml_example_as_json(capsys):
    assert cli.main(["summary", str(CONFIGS / "lstm_8097.yaml"), "--json"]) == 0
    out = capsys.readouterr().out.rstrip("\n").split("\n")
    result = json.loads(out[-1])
    assert result["total_params"] == 8097 and result["trainable_params"] == 8097
    assert result["non_trainable_params"] == 0
    assert [(r["name"], r["output_shape"], r["params"]) for r in result["layers"]] == [
        ("lstm", [None, 21, 16], 1152), ("lstm_1", [None, 21, 32], 6272),
        ("flatten", [None, 672], 0), ("dense", [None, 1], 673)]
    assert "Total params: 8,097" in out                    # the table is printed too


def test_summary_of_a_checkpoint_and_of_its_meta(tmp_path, capsys):
    model = rl.Sequential([L.Input((7,)), L.Dense(1200), L.Dense(3)], name="ckpt_model")
    model.save(tmp_path / "m.npz")
    assert cli.main(["summary", str(tmp_path / "m.npz"), "--json"]) == 0
    out = capsys.readouterr().out
    assert 'Model: "ckpt_model"' in out and "Total params: 13,203" in out
    assert json.loads(out.rstrip("\n").split("\n")[-1])["total_params"] == 13203
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        (tmp_path / "meta.json").write_bytes(npz["__meta__"].tobytes())
    assert cli.main(["summary", str(tmp_path / "meta.json")]) == 0
    assert "Total params: 13,203" in capsys.readouterr().out


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ('{"task": "lm"}', "expected a model config"),
    ('{"class_name": "NoSuchLayer", "config": {}}', "unknown layer class 'NoSuchLayer'"),
])
def test_bad_config_files_are_clear_errors(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert cli.main(["summary", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "error" in json.loads(captured.out.strip().split("\n")[-1])


def test_missing_and_damaged_files_name_the_file(tmp_path, capsys):
    assert cli.main(["summary", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    damaged = tmp_path / "damaged.npz"
    rl.Sequential([L.Input((2,)), L.Dense(1)]).save(damaged)
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert cli.main(["summary", str(damaged)]) == 2
    assert "damaged.npz" in capsys.readouterr().err


@pytest.mark.parametrize("name, content, message", [
    ("layers.yaml", "class_name: Sequential\nconfig:\n  layers: [1, 2]\n",
     "layers.yaml: cannot build the model from this config: Sequential config: layers[0]: a layer config is"),
    ("class.yaml", "class_name: [Sequential]\nconfig: {}\n", "unknown layer class \"['Sequential']\""),
    ("deep.yaml", "class_name: Sequential\nconfig: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
    ("deep.json", '{"class_name": "Sequential", "config": ' + "[" * 100000 + "]" * 100000 + "}",
     "deep.json: nested too deeply to read"),
    ("alias.yaml", "class_name: Sequential\nconfig: &c {layers: *c}\n", "uses a YAML alias (*c)"),
], ids=["yaml-int-layers", "yaml-list-class", "yaml-deep", "json-deep", "yaml-alias"])
def test_crafted_config_files_are_one_line_naming_the_file(tmp_path, capsys, name, content, message):
    """Issue 29 case 9: YAML layers [1, 2] gave an AttributeError, deep nesting a RecursionError."""
    path = tmp_path / name
    path.write_text(content)
    assert cli.main(["summary", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and message in err, err


def test_a_config_of_billions_of_weights_is_summarised_without_allocating_them(tmp_path):
    """The table needs shapes, not weights: LSTM(30000) after Embedding(1e6, 1000) (5.6 billion
    parameters, 22 GB) is summarised under a 1 GiB memory cap."""
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Input", "config": {"shape": [7]}},
        {"class_name": "Embedding", "config": {"input_dim": 1_000_000, "output_dim": 1000}},
        {"class_name": "LSTM", "config": {"units": 30000}}]}}))
    result = run_capped(f"""
        import contextlib, io
        from rnnlab.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = main(["summary", {str(path)!r}, "--json"])
        print(json.dumps([code, json.loads(out.getvalue().splitlines()[-1])]))
    """)
    assert result[0] == 0 and result[1]["total_params"] == 1_000_000_000 + 4 * 30000 * (1000 + 30000 + 1)
