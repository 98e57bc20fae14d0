"""The training loop (train/loop.py), the run folder (train/run.py) and the config dataclasses.

A tiny many-to-one classification task, written here against the Task contract, stands for
the tasks to come (classify, tag, caption): it needs no loop of its own.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rnnlab as rl
from rnnlab import layers as L
from rnnlab.checkpoint import load_checkpoint
from rnnlab.cli import main
from rnnlab.losses import SoftmaxCrossEntropy
from rnnlab.optim import SGD
from rnnlab.train.config import TaskConfig
from rnnlab.train.lm import LMConfig, make_config, train_lm
from rnnlab.train.loop import Callback, RunDir, Task, Trainer, TrainingDiverged
from rnnlab.train.run import RunLocked
from rnnlab.train.seq2seq import Seq2SeqConfig

SRC = str(Path(__file__).resolve().parents[2] / "src")


# ---- a task written against the contract: sign of a sequence's sum (many-to-one) ---------------


class SignTask(Task):
    """x (B, T, 1) ~ N(0, 1); the class is whether the sum over time is positive."""

    name = "sign"
    monitor = "valid_accuracy"
    mode = "max"

    def __init__(self, n=256, batch=32, lr=0.3, seed=0, constant_metric=False):
        self.n, self.batch, self.lr, self.seed = n, batch, lr, seed
        self.constant_metric = constant_metric
        self.loss_fn = SoftmaxCrossEntropy()

    def setup(self):
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.n + 128, 6, 1))
        y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
        self.train_x, self.train_y = x[:self.n], y[:self.n]
        self.valid_x, self.valid_y = x[self.n:], y[self.n:]
        self.model = rl.Sequential([L.SimpleRNN(8, seed=1), L.Dense(2, seed=2)])
        self.optimizer = SGD(lr=self.lr)

    def epoch_batches(self, epoch):
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return [order[i:i + self.batch] for i in range(0, self.n, self.batch)]

    def train_step(self, index):
        loss = self.loss_fn.forward(self.model.forward(self.train_x[index]), self.train_y[index])
        self.model.backward(self.loss_fn.backward())
        return loss, self.loss_fn.count

    def validate(self):
        logits = self.model.forward(self.valid_x)
        accuracy = float((logits.argmax(axis=1) == self.valid_y).mean())
        return {"valid_loss": self.loss_fn.forward(logits, self.valid_y),
                "valid_accuracy": 0.5 if self.constant_metric else accuracy}

    def final_metrics(self, history):
        return {"accuracy": self.validate()["valid_accuracy"]}


@pytest.fixture
def float64():
    previous = rl.floatx()
    rl.set_floatx("float64")
    yield
    rl.set_floatx(previous)


def test_a_new_task_trains_in_memory_without_a_loop_or_files(tmp_path, monkeypatch, float64):
    monkeypatch.chdir(tmp_path)
    task = SignTask()
    task.setup()
    seen = []

    class Record(Callback):
        def on_epoch_end(self, trainer, epoch, row):
            seen.append((epoch, row["valid_accuracy"]))

    result = Trainer(task, epochs=8, progress=False, callbacks=[Record()], log=False).fit()
    assert list(tmp_path.iterdir()) == []  # no run folder: nothing written anywhere
    assert [r["epoch"] for r in result.history] == list(range(1, 9)) and len(seen) == 8
    assert result.stopped == "epochs" and result.run_dir is None
    assert result["accuracy"] > 0.8, result.history  # chance is 0.5
    # the model handed back is the best one (highest valid_accuracy), as Keras' restore_best_weights
    assert result["accuracy"] == max(r["valid_accuracy"] for r in result.history)


def test_early_stopping_and_a_callback_stop(float64):
    task = SignTask(constant_metric=True)
    task.setup()
    result = Trainer(task, epochs=20, patience=2, progress=False, log=False).fit()
    # epoch 1 sets the best; epochs 2 and 3 do not improve on it: stop after 3
    assert result.stopped == "early_stopping" and len(result.history) == 3

    class StopAt(Callback):
        def on_batch_end(self, trainer, epoch, batch, loss):
            if batch == 3:
                trainer.stop_training = True

    task = SignTask()
    task.setup()
    result = Trainer(task, epochs=5, progress=False, callbacks=[StopAt()], log=False).fit()
    assert result.stopped == "callback" and len(result.history) == 1 and result.history[0]["partial"] == 3 / 8


class CreepingLossTask(SignTask):
    """A validation loss that falls by 2e-4 an epoch, as an underfit seq2seq's did for ever."""

    monitor, mode = "valid_loss", "min"

    def validate(self):
        self.validations = getattr(self, "validations", 0) + 1
        return {"valid_loss": 2.0 - 2e-4 * self.validations}

    def final_metrics(self, history):
        return {}


def test_min_delta_lets_patience_stop_a_loss_that_only_creeps(float64):
    task = CreepingLossTask()
    task.setup()
    result = Trainer(task, epochs=12, patience=2, min_delta=1e-3, progress=False, log=False).fit()
    # every epoch is a new best (kept as best.npz) but no gain reaches 1e-3: stop after 1 + 2
    assert result.stopped == "early_stopping" and len(result.history) == 3
    task = CreepingLossTask()
    task.setup()
    result = Trainer(task, epochs=12, patience=2, progress=False, log=False).fit()
    assert result.stopped == "epochs" and len(result.history) == 12   # min_delta 0: any gain counts


def test_gradients_pass_the_all_reduce_hook_before_the_step(float64):
    """Data parallel: the hook sees every step's gradients before the optimizer does."""
    task = SignTask()
    task.setup()
    task.model.forward(task.train_x[:2])  # build, to read the initial weights
    before = task.model.get_weights()
    calls = []

    def all_reduce(grads):
        calls.append(len(grads))
        for g in grads:
            g[...] = 0.0  # what the optimizer then applies: nothing moves

    Trainer(task, epochs=2, progress=False, all_reduce=all_reduce, log=False, is_writer=False).fit()
    assert calls == [len(task.model.params)] * 16
    for a, b in zip(before, task.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_are_checked_finite_before_every_save(tmp_path, float64):
    task = SignTask()
    task.setup()

    class Poison(Callback):
        def on_batch_end(self, trainer, epoch, batch, loss):
            if epoch == 2 and batch == 8:
                trainer.task.model.params[0][...] = np.nan

    with RunDir.open(tmp_path / "run") as run:
        trainer = Trainer(task, run, epochs=3, progress=False, callbacks=[Poison()], log=False)
        with pytest.raises(TrainingDiverged, match="weights hold NaN.*last good checkpoint"):
            trainer.fit()
    kept = load_checkpoint(tmp_path / "run" / "last.npz")
    assert kept.state["epoch"] == 2 and kept.state["batch"] == 0  # the end of epoch 1
    assert all(np.isfinite(p).all() for p in kept.model.params)


# ---- the run folder -------------------------------------------------------------------------------


def _text(tmp_path):
    path = tmp_path / "abc.txt"
    rng = np.random.default_rng(0)
    words = ["the cat", "a dog", "sat on", "the mat", "and ran", "away"]
    path.write_text("\n".join(" ".join(rng.choice(words, 4)) for _ in range(60)), encoding="utf-8")
    return path


def _char_config(text, **overrides):
    values = dict(text=str(text), level="char", hidden=12, emb=8, bptt=6, batch=3, epochs=1, optimizer="adam",
                  lr=0.01, dropout=0.2, eval_batch=2)
    values.update(overrides)
    return make_config(**values)


def test_a_second_process_on_the_same_run_folder_fails_clearly(tmp_path):
    config = _char_config(_text(tmp_path))
    with RunDir.open(tmp_path / "run"):  # another trainer holds the folder
        with pytest.raises(RunLocked, match=r"another process is training in .*run"):
            train_lm(config, tmp_path / "run", progress=False)
        code = main(["train", "lm", "--text", str(tmp_path / "abc.txt"), "--level", "char", "--hidden", "8",
                     "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"])
        assert code != 0
    assert not (tmp_path / "run" / "config.json").exists()
    train_lm(config, tmp_path / "run", progress=False)  # the lock went with its holder


def test_overwrite_replaces_a_run_and_a_failed_start_rewrites_nothing(tmp_path, monkeypatch):
    text = _text(tmp_path)
    run_dir = tmp_path / "run"
    train_lm(_char_config(text), run_dir, progress=False)
    config_before = (run_dir / "config.json").read_bytes()
    with pytest.raises(ValueError, match="already holds a run.*--overwrite"):
        train_lm(_char_config(text, hidden=10), run_dir, progress=False)
    # a start that fails (no such data) leaves the old run as it was, even with overwrite
    with pytest.raises(FileNotFoundError):
        train_lm(_char_config(tmp_path / "missing.txt"), run_dir, progress=False, overwrite=True)
    assert (run_dir / "config.json").read_bytes() == config_before and (run_dir / "best.npz").exists()
    train_lm(_char_config(text, hidden=10), run_dir, progress=False, overwrite=True)
    assert json.loads((run_dir / "config.json").read_text())["hidden"] == 10
    assert len(RunDir(run_dir).read_metrics()) == 1
    # a new run's config.json is written only once it starts: nothing for a failed first start
    with pytest.raises(FileNotFoundError):
        train_lm(_char_config(tmp_path / "missing.txt"), tmp_path / "fresh", progress=False)
    assert not (tmp_path / "fresh" / "config.json").exists()
    # relative data paths are stored absolute
    monkeypatch.chdir(tmp_path)
    train_lm(_char_config("abc.txt"), tmp_path / "rel", progress=False)
    assert json.loads((tmp_path / "rel" / "config.json").read_text())["text"] == str(text.resolve())


def test_stale_tmp_files_are_removed_when_a_run_opens(tmp_path):
    config = _char_config(_text(tmp_path), epochs=2)
    train_lm(config, tmp_path / "run", progress=False)
    stale = tmp_path / "run" / ".last.npz.k1ll3d.tmp"
    stale.write_bytes(b"PK half a checkpoint")
    train_lm(None, tmp_path / "run", resume=True, progress=False)
    assert not stale.exists()


def test_resume_needs_a_run(tmp_path):
    with pytest.raises(ValueError, match="holds no run to resume"):
        train_lm(None, tmp_path / "nothing", resume=True, progress=False)


# ---- configs --------------------------------------------------------------------------------------


def test_config_from_dict_names_an_unknown_key():
    with pytest.raises(ValueError, match=r"unknown LMConfig key 'hiden' \(did you mean 'hidden'\?\)"):
        LMConfig.from_dict({"hiden": 64})
    with pytest.raises(ValueError, match=r"unknown Seq2SeqConfig key 'atention'"):
        Seq2SeqConfig.from_dict({"atention": "luong"})
    config = Seq2SeqConfig(generated="dates", split=(0.7, 0.2, 0.1), max_minutes=2.5, patience=3)
    assert Seq2SeqConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    # a run's config.json adds its own entries; those (and only those) are dropped
    stored = {"task": "seq2seq", **config.to_dict(), "src_vocab": {}, "tgt_vocab": {}, "timed_choices": {}}
    assert Seq2SeqConfig.from_run_config(stored) == config
    with pytest.raises(ValueError, match="'extra'"):
        Seq2SeqConfig.from_run_config({**stored, "extra": 1})
    assert issubclass(LMConfig, TaskConfig) and issubclass(Seq2SeqConfig, TaskConfig)


# ---- exact resume -------------------------------------------------------------------------------


_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from rnnlab.train.lm import make_config, train_lm
    mode, text, out = sys.argv[1:4]
    config = make_config(text=text, level="char", hidden=12, emb=8, bptt=6, batch=3, epochs=2,
                         optimizer="adam", lr=0.01, lr_decay=0.5, decay_start=1, dropout=0.2,
                         eval_batch=2, checkpoint_every=4)
    if mode == "whole":
        train_lm(config, out, progress=False)
    elif mode == "killed":
        from rnnlab.train.loop import Trainer
        state = Trainer._state   # checkpoints as older versions wrote them: with the timed choices they made
        Trainer._state = lambda self: {**state(self), "timed_choices": {"3,12,48,float32": "transposed"}}

        def kill(epoch, window):
            if epoch == 2 and window == 10:  # two windows after the checkpoint at window 8
                os._exit(9)                  # as a kill: no cleanup of any kind
        train_lm(config, out, progress=False, on_window=kill)
    else:
        train_lm(None, out, resume=True, progress=False)
""")


def _python(*args):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", _SCRIPT, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_a_run_killed_and_resumed_in_new_processes_ends_with_the_same_weights(tmp_path):
    """Also: the killed run's last.npz and config.json hold a "timed_choices" record, as older
    versions wrote them; the resume ignores it and still retraces the whole run."""
    text = _text(tmp_path)
    whole = _python("whole", text, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    assert "timed_choices" not in load_checkpoint(tmp_path / "whole" / "last.npz").state
    killed = _python("killed", text, tmp_path / "killed")
    assert killed.returncode == 9, killed.stderr
    state = load_checkpoint(tmp_path / "killed" / "last.npz").state
    assert (state["epoch"], state["batch"]) == (2, 8) and "timed_choices" in state
    config_file = tmp_path / "killed" / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "timed_choices": state["timed_choices"]}))
    resumed = _python("resume", text, tmp_path / "killed")  # a third process
    assert resumed.returncode == 0, resumed.stderr
    for name in ("last.npz", "best.npz"):
        a = load_checkpoint(tmp_path / "whole" / name).model.get_weights()
        b = load_checkpoint(tmp_path / "killed" / name).model.get_weights()
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    strip = lambda d: [{k: v for k, v in r.items() if k not in ("wall_s", "tokens_per_s")}  # noqa: E731
                       for r in RunDir(d).read_metrics()]
    assert strip(tmp_path / "killed") == strip(tmp_path / "whole")
    final = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("whole", "killed")]
    assert final[0]["perplexity"] == final[1]["perplexity"]


@pytest.mark.slow
def test_seq2seq_resumes_after_its_time_budget_with_the_uninterrupted_numbers(tmp_path, capsys):
    args = ["train", "seq2seq", "--generated", "dates", "--n", "200", "--hidden", "8", "--emb", "4",
            "--epochs", "2", "--batch", "32", "--dropout", "0.1", "--max-decode-len", "14", "--no-progress",
            "--json"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert main([*args, "--out", str(tmp_path / "cut"), "--max-minutes", "1e-9"]) == 0
    rows = RunDir(tmp_path / "cut").read_metrics()
    assert len(rows) == 1 and 0 < rows[0]["partial"] < 1  # one batch, then out of time
    assert main(["train", "seq2seq", "--out", str(tmp_path / "cut"), "--resume", "--max-minutes", "1e6",
                 "--no-progress", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    for key in ("exact_match", "token_accuracy", "bleu", "loss", "valid_loss"):
        assert result[key] == whole[key], key
    for x, y in zip(load_checkpoint(tmp_path / "whole" / "last.npz").model.get_weights(),
                    load_checkpoint(tmp_path / "cut" / "last.npz").model.get_weights()):
        np.testing.assert_array_equal(x, y)
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["max_decode_len"] == 14
    with pytest.raises(SystemExit):  # --resume needs the folder
        main(["train", "seq2seq", "--resume", "--bogus"])
