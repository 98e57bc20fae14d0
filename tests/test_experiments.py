"""rnnlab.experiments: every experiment at --size tiny, and the claims that must hold in it.

The module-scoped fixture runs each experiment once (seconds each); the tests then assert on
the figures it returned and the report it wrote.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from gradcheck import check_layer_gradients
from rnnlab import experiments
from rnnlab.cli import main
from rnnlab.data.generated import REBER_EDGES, embedded_reber
from rnnlab.experiments import report as report_module
from rnnlab.experiments.untied import UntiedRNN, untied_count
from rnnlab.layers import SimpleRNN


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """name -> (figures, folder) for every experiment run once at --size tiny, seed 0."""
    root = tmp_path_factory.mktemp("experiments")
    return {name: (experiments.run(name, root / name, seed=0, size="tiny"), root / name)
            for name in experiments.EXPERIMENTS}


# ---- every report ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_each_experiment_writes_a_report_with_its_answer_and_plots(tiny, name):
    figures, folder = tiny[name]
    text = (folder / "report.md").read_text(encoding="utf-8")
    assert text.startswith(f"# Experiment: {name}")
    assert f"**Answer.** {figures['answer']}" in text and figures["answer"].endswith(".")
    assert "## Setup" in text and "| --- |" not in text and "|---|" in text
    for png in [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]:
        assert (folder / png).stat().st_size > 1000, png    # every plot the report shows was written
    assert json.loads((folder / "results.json").read_text())


# ---- the claims ----------------------------------------------------------------------------------

def test_parameter_sharing_counts_constant_for_shared_linear_for_untied(tiny):
    figures, _ = tiny["parameter-sharing"]
    shared, untied = figures["shared_counts"], figures["untied_counts"]
    assert len(set(shared.values())) == 1
    lengths = sorted(untied)
    per_step = figures["untied_per_step"]
    for n in lengths:
        assert untied[n] - untied[lengths[0]] == (n - lengths[0]) * per_step


def test_untied_model_refuses_lengths_past_training_clearly(tiny):
    figures, _ = tiny["parameter-sharing"]
    assert "has weights for 10 time steps" in figures["refusal"] and "got a sequence of 20 steps" in figures["refusal"]
    untied = figures["by_length"]["untied RNN"]
    assert all((acc is None) == (n > 10) for n, acc in untied.items())


def test_gradient_norms_shrink_for_contractive_and_grow_for_expansive_rnn(tiny):
    figures, _ = tiny["gradient-flow"]
    contractive, expansive = np.array(figures["scaled"]["0.5"]), np.array(figures["scaled"]["2.0"])
    assert contractive[0] < 1e-3 * contractive[-1] and np.all(np.diff(contractive) > 0)
    assert expansive[0] > 2 * expansive[-1]


def test_clipping_bounds_the_update_norm(tiny):
    figures, _ = tiny["gradient-flow"]
    assert figures["clipped_max_update"] <= figures["update_bound"] * (1 + 1e-5)
    assert figures["unclipped_max_update"] > 5 * figures["update_bound"]   # what clipping prevented


def test_formula_counts_equal_the_layers(tiny):
    figures, _ = tiny["parameter-count"]
    assert figures["mismatches"] == [] and figures["notes_match"]
    assert figures["cases"] >= 13


def test_truncated_bptt_memory_stays_flat_while_full_grows(tiny):
    figures, _ = tiny["truncation"]
    assert figures["full_memory_growth"] > 2.5 and figures["truncated_memory_growth"] < 1.3


def test_long_range_and_attention_tables_are_complete(tiny):
    long_range, _ = tiny["long-range"]
    for by_cell in long_range["accuracy"].values():
        assert set(by_cell) == {"SimpleRNN", "LSTM", "GRU"}
        assert all(len(a) == len(long_range["lags"]) and all(0 <= v <= 1 for v in a) for a in by_cell.values())
    attention, folder = tiny["attention"]
    assert len(attention["results"]) == 6
    assert len(list(folder.glob("alignment_*.png"))) == 4


def test_attention_twin_is_the_same_model(tiny):
    """The PyTorch twin starts from rnnlab's initial weights: the first batch's loss and every
    weight's gradient on it must agree (float32), and the answer says the backward is right."""
    pytest.importorskip("torch")
    figures = tiny["attention"][0]
    twin = figures["twin"]
    for label in ("bahdanau", "bahdanau, reversed"):
        assert abs(twin[label]["first_loss_torch"] - twin[label]["first_loss_rnnlab"]) < 1e-4
        assert twin[label]["first_grad_error"] < 1e-4
        assert len(twin[label]["torch"]) == len(twin[label]["rnnlab"])
    assert "computes the same first-batch gradients" in figures["answer"]


@pytest.mark.slow
def test_deterministic_under_seed(tiny, tmp_path):
    figures, folder = tiny["truncation"]
    again = experiments.run("truncation", tmp_path / "again", seed=0, size="tiny")
    assert again["grid"] == figures["grid"] and again["answer"] == figures["answer"]


@pytest.mark.slow
def test_attention_runs_again_into_its_own_folder_with_the_same_answer(tiny):
    figures, folder = tiny["attention"]
    report = (folder / "report.md").read_bytes()
    with pytest.raises(FileExistsError, match="already holds files: add --overwrite"):
        experiments.run("attention", folder, seed=0, size="tiny")      # nothing replaced unasked
    assert (folder / "report.md").read_bytes() == report
    again = experiments.run("attention", folder, seed=0, size="tiny", overwrite=True)   # its runs/ are replaced
    assert again["answer"] == figures["answer"]


# ---- the untied network --------------------------------------------------------------------------

def test_untied_rnn_gradients(float64):
    rng = np.random.default_rng(0)
    for return_sequences in (False, True):
        layer = UntiedRNN(3, steps=5, return_sequences=return_sequences, seed=1)
        check_layer_gradients(layer, rng.standard_normal((2, 4, 2)))   # shorter than its steps too


def test_untied_rnn_with_equal_weights_is_a_simple_rnn(float64):
    x = np.random.default_rng(0).standard_normal((3, 6, 2))
    rnn = SimpleRNN(4, return_sequences=True, seed=0)
    expected = rnn.forward(x)
    untied = UntiedRNN(4, steps=6, return_sequences=True)
    untied.build((6, 2))
    kernel, recurrent, bias = rnn.get_weights()
    untied.set_weights([np.stack([kernel] * 6), np.stack([recurrent] * 6), np.stack([bias] * 6)])
    np.testing.assert_allclose(untied.forward(x), expected, rtol=1e-12, atol=1e-12)
    assert untied.count_params() == untied_count(6, 2, 4) == 6 * rnn.count_params()


def test_untied_rnn_refuses_longer_sequences():
    layer = UntiedRNN(3, steps=4)
    layer.forward(np.zeros((1, 4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="weights for 4 time steps.*sequence of 7 steps"):
        layer.forward(np.zeros((1, 7, 2), dtype=np.float32))


# ---- data, report, CLI ---------------------------------------------------------------------------

def test_embedded_reber_strings_follow_the_grammar():
    for s in embedded_reber(200, min_len=12, seed=3):
        assert s[0] == "B" and s[-1] == "E" and s[1] == s[-2] and s[1] in "TP"
        inner = s[2:-2]
        assert inner[0] == "B" and inner[-1] == "E" and len(inner) - 2 >= 12
        node = 1
        for ch in inner[1:-1]:
            node = dict(REBER_EDGES[node])[ch]   # KeyError: a symbol the grammar does not allow
        assert node == 6
    assert embedded_reber(5, 4, seed=1) == embedded_reber(5, 4, seed=1)


def test_report_without_matplotlib_keeps_tables_and_says_plot_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(report_module, "_pyplot", lambda: None)
    figures = experiments.run("parameter-count", tmp_path, seed=0, size="tiny")
    text = (tmp_path / "report.md").read_text()
    assert "plot counts.png skipped: matplotlib is not installed" in text and "| SimpleRNN(16), D=6 |" in text
    assert figures["mismatches"] == [] and not (tmp_path / "counts.png").exists()


def test_cli_experiment_json_and_index(tmp_path, capsys):
    assert main(["experiment", "parameter-count", "--out", str(tmp_path / "pc"), "--size", "tiny", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mismatches"] == [] and result["report"].endswith("report.md")
    index = experiments.run_all(tmp_path / "all", size="tiny", names=["parameter-count"])
    text = (tmp_path / "all" / "index.md").read_text()
    assert "[parameter-count](parameter-count/report.md)" in text
    assert index["experiments"]["parameter-count"]["answer"] in text


def test_cli_unknown_experiment_or_size_exits_2(capsys):
    for argv in (["experiment", "nope"], ["experiment", "parameter-count", "--size", "huge"]):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_size_notes_belongs_to_the_attention_experiment_only(tmp_path, capsys):
    assert main(["experiment", "parameter-count", "--size", "notes", "--out", str(tmp_path / "pc")]) == 2
    assert "--size notes is the attention experiment's only" in capsys.readouterr().err
    assert not (tmp_path / "pc").exists()                        # refused before writing anything
    with pytest.raises(ValueError, match=r"unknown --size 'notes' for this experiment: use one of tiny, default"):
        experiments.run("truncation", tmp_path / "tr", size="notes")


# ---- the answers say what their own tables show -----------------------------------------------------

def _table_cells(text: str, caption: str) -> list[list[str]]:
    """The body cells of the report table under ``caption``."""
    block = text.split(f"**{caption}", 1)[1].split("\n\n", 2)[1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]


def test_gradient_flow_answer_quotes_the_trained_cells_and_says_which_keeps_more():
    from rnnlab.experiments.gradient_flow import answer

    figures = {"contractive_ratio": 1e-9, "expansive_ratio": 1e6, "unclipped_diverged": True,
               "unclipped_max_update": 40.0, "clipped_max_update": 0.05, "update_bound": 0.05,
               # the run: at initialisation the SimpleRNN passed more than the LSTM, trained much less
               "cells": {"SimpleRNN": {"init_ratio": 0.3, "trained_ratio": 3.6e-09},
                         "LSTM": {"init_ratio": 0.01, "trained_ratio": 0.261},
                         "GRU": {"init_ratio": 0.05, "trained_ratio": 0.12}}}
    text = answer(figures)
    assert "the LSTM passes 0.261 of it back to step 0 and the GRU 0.120, against 3.60e-09 for the SimpleRNN" in text
    assert "0.300" not in text and "1.00e-02" not in text        # nothing from the initial state
    figures["cells"]["SimpleRNN"]["trained_ratio"] = 0.5         # a run where the lesson does not show
    assert "in this run the gates kept no more of it than the SimpleRNN" in answer(figures)


def test_parameter_sharing_answer_quotes_the_position_tables_cells():
    from rnnlab.experiments.parameter_sharing import answer

    names = ["SimpleRNN", "LSTM", "GRU"]
    by_position = {n: {4: 1.0, 5: 1.0, 7: 0.53, 8: 0.9} for n in names}
    by_position["untied RNN"] = {4: 1.0, 5: 1.0, 7: 0.2, 8: 0.4}
    figures = {"shared_counts": {10: 300, 20: 300}, "untied_per_step": 90, "unseen_positions": [7, 8],
               "by_length": {**{n: {10: 1.0, 20: 0.95} for n in names}, "untied RNN": {10: 1.0, 20: None}},
               "by_position": by_position, "unseen_positions_shared": {n: 0.715 for n in names},
               "unseen_positions_untied": 0.3}
    text = answer(figures)
    assert "the shared models score from 53% to 90% against 20% to 40%" in text   # cells, not means (72%)
    assert text.startswith("Only in part")                                      # 72% is not 30% + 50%


def test_the_answers_quote_their_own_tables(tiny):
    _, folder = tiny["parameter-sharing"]
    figures = tiny["parameter-sharing"][0]
    text = (folder / "report.md").read_text(encoding="utf-8")
    rows = _table_cells(text, "Sequence accuracy at length 10 against where the pattern ends")
    header = [c.strip() for c in text.split("**Sequence accuracy at length 10")[1].split("\n\n")[1]
              .splitlines()[0].strip("|").split("|")]
    unseen_columns = [header.index(f"end {p}") for p in figures["unseen_positions"]]
    shared = [int(row[i].rstrip("%")) for row in rows if row[0] != "untied RNN" for i in unseen_columns]
    assert f"score from {min(shared)}% to {max(shared)}%" in figures["answer"]
    figures, folder = tiny["gradient-flow"]
    rows = _table_cells((folder / "report.md").read_text(encoding="utf-8"),
                        "The three cells, at initialisation and after training")
    trained = {row[0]: row[4] for row in rows}
    for cell in ("SimpleRNN", "LSTM", "GRU"):                   # the trained column, as the table writes it
        assert f"{cell} passes {trained[cell]}" in figures["answer"] or f"the {cell} {trained[cell]}" in \
            figures["answer"] or f"{trained[cell]} for the {cell}" in figures["answer"]
