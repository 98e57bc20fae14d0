"""``mpiexec -n 2 rnnlab train lm|seq2seq`` against one process, end to end through the CLI.

Every run here is a real command line (``rnnlab.cli.main``) on a tiny task written to
tmp_path, in float64 (``RNNLAB_FLOATX=float64``) so that the data-parallel run must give the
single process's per-epoch losses and final figures to 1e-10: the global batches have 5 rows
(split 3 + 2) and the seq2seq pairs have different lengths, so the ranks hold different
numbers of tokens. Resume crosses sizes: a run killed on 2 ranks is continued by 1 process and
the reverse, and both end at the uninterrupted run's numbers. A rank that dies takes the job
down with a message and no hang. Skipped without mpi4py / mpiexec, except in CI (see
test_distributed.py).
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_distributed import TIMEOUT, child_env, require_mpi

pytestmark = pytest.mark.slow   # every test starts mpiexec (two ranks, then one): minutes in all

TOL = 1e-10

# What the ``rnnlab`` command runs, plus a line saying whether mpi4py was imported. With
# STOP_AT=E,W every rank leaves abruptly after window/batch W of epoch E (a kill: no
# checkpoint, no goodbye), after the checkpoint that --checkpoint-every wrote before it.
RUNNER = """
import os, sys
from rnnlab.cli import main
from rnnlab.train import loop

stop = os.environ.get("STOP_AT")
if stop:
    epoch_at, batch_at = map(int, stop.split(","))

    class Kill(loop.Callback):
        def on_batch_end(self, trainer, epoch, batch, loss):
            if (epoch, batch) == (epoch_at, batch_at):
                sys.stdout.flush()
                os._exit(9)

    fit = loop.Trainer.fit
    def fit_and_kill(self, resume=False):
        self.callbacks.append(Kill())
        return fit(self, resume)
    loop.Trainer.fit = fit_and_kill
if os.environ.get("KILL_RANK"):  # one rank dies at its third step: SIGKILL, no Python left
    import signal
    from rnnlab import distributed as dist
    step = loop.Trainer._step
    def dying_step(self, batch, where):
        if dist.world().rank == int(os.environ["KILL_RANK"]) and self.pos["step"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, batch, where)
    loop.Trainer._step = dying_step
code = main(sys.argv[1:])
print(f"mpi4py imported: {'mpi4py' in sys.modules}", file=sys.__stderr__, flush=True)
sys.exit(code)
"""


@pytest.fixture
def runner(tmp_path) -> Path:
    path = tmp_path / "runner.py"
    path.write_text(RUNNER)
    return path


def rnnlab(runner: Path, *args, n: int = 0, check: bool = True, **env) -> subprocess.CompletedProcess:
    """``rnnlab ARGS`` in one process (n=0) or under ``mpiexec -n N --oversubscribe``."""
    cmd = [sys.executable, str(runner), *map(str, args)]
    if n:
        cmd = [require_mpi(), "-n", str(n), "--oversubscribe", *cmd]
    result = subprocess.run(cmd, env=child_env(**{"RNNLAB_FLOATX": "float64", **env}), capture_output=True, text=True,
                            timeout=TIMEOUT)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def json_line(result) -> dict:
    """The --json object: the last stdout line that is one (mpiexec may add a colour reset)."""
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same(single: list[dict], parallel: list[dict], keys, tol: float = TOL) -> None:
    assert len(single) == len(parallel)
    for a, b in zip(single, parallel):
        for key in keys:
            assert abs(a[key] - b[key]) < tol, (key, a[key], b[key])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = random.Random(0)
    words = "the cat dog sat on mat a big small red blue ran far near".split()
    path = tmp_path_factory.mktemp("lm") / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
                              for _ in range(250)) + "\n")
    return path


def lm_args(corpus: Path, out: Path, *extra) -> list:
    # 5 streams (3 + 2 per rank), clipping that acts, momentum-free SGD; eval on 1 stream
    # (the second rank then holds no stream of it) and the validation on 5.
    return ["train", "lm", "--text", corpus, "--level", "word", "--cell", "lstm", "--layers", "2", "--hidden",
            "8", "--emb", "6", "--bptt", "5", "--batch", "5", "--epochs", "2", "--lr", "1.0", "--clip", "0.5",
            "--eval-batch", "1", "--no-progress", "--json", "--out", out, *extra]


LM_KEYS = ("train_loss", "valid_loss", "tokens", "step")


def resume_args(out: Path) -> list:
    return ["train", "lm", "--out", out, "--resume", "--no-progress", "--json"]


def test_lm_two_ranks_equal_one_process(tmp_path, runner, corpus):
    """Per-epoch training and validation losses and the final test and validation losses of
    ``mpiexec -n 2 rnnlab train lm`` equal one process's (float64, 1e-10); rank 0 alone
    printed the --json line; the single process never imported mpi4py."""
    require_mpi()
    single = rnnlab(runner, *lm_args(corpus, tmp_path / "single"))
    parallel = rnnlab(runner, *lm_args(corpus, tmp_path / "parallel"), n=2)
    assert "mpi4py imported: False" in single.stderr
    assert parallel.stderr.count("mpi4py imported: True") == 2
    assert sum(line.startswith("{") for line in parallel.stdout.splitlines()) == 1  # rank 0 alone prints
    rows_1, rows_2 = metrics(tmp_path / "single"), metrics(tmp_path / "parallel")
    assert [r["epoch"] for r in rows_2] == [1, 2]
    assert_same(rows_1, rows_2, LM_KEYS)
    final_1, final_2 = json_line(single), json_line(parallel)
    for key in ("loss", "valid_loss", "tokens"):
        assert abs(final_1[key] - final_2[key]) < TOL, key
    # training moved the model (equal numbers are not those of an untouched model)
    assert rows_1[1]["train_loss"] < rows_1[0]["train_loss"] - 1e-3


def test_lm_two_ranks_close_to_one_process_in_float32(tmp_path, runner, corpus):
    """In float32 (the default) the sums run in another order on two ranks: the losses agree
    to about float32 rounding, accumulated over the run's 80 steps."""
    require_mpi()
    rnnlab(runner, *lm_args(corpus, tmp_path / "single"), RNNLAB_FLOATX="float32")
    rnnlab(runner, *lm_args(corpus, tmp_path / "parallel"), n=2, RNNLAB_FLOATX="float32")
    assert_same(metrics(tmp_path / "single"), metrics(tmp_path / "parallel"), LM_KEYS, tol=1e-4)


def test_seq2seq_two_ranks_equal_one_process(tmp_path, runner):
    """Seq2seq (GRU, Luong attention, Adam), pairs of different lengths, 17 pairs a batch
    (the last batch of an epoch has 2): per-epoch losses, the validation metrics and the final
    test figures of two ranks equal one process's; the decoded examples are the same."""
    require_mpi()
    args = ["train", "seq2seq", "--generated", "addition", "--n", "150", "--attention", "luong", "--score",
            "general", "--cell", "gru", "--hidden", "10", "--emb", "5", "--batch", "17", "--epochs", "2",
            "--lr", "0.02", "--no-progress", "--json"]
    single = rnnlab(runner, *args, "--out", tmp_path / "single")
    parallel = rnnlab(runner, *args, "--out", tmp_path / "parallel", n=2)
    rows_1, rows_2 = metrics(tmp_path / "single"), metrics(tmp_path / "parallel")
    assert_same(rows_1, rows_2, ("train_loss", "valid_loss", "valid_token_accuracy", "valid_exact_match", "step"))
    final_1, final_2 = json_line(single), json_line(parallel)
    for key in ("loss", "valid_loss", "token_accuracy", "exact_match"):
        assert abs(final_1[key] - final_2[key]) < TOL, key
    assert final_1["bleu"] is None and final_2["bleu"] is None   # addition's short targets: BLEU does not apply
    assert final_1["examples"] == final_2["examples"]


@pytest.mark.parametrize("first, then", [(2, 0), (0, 2)], ids=["2-ranks-then-1", "1-then-2-ranks"])
def test_resume_with_another_number_of_processes(tmp_path, runner, corpus, first, then):
    """A run killed in the middle of epoch 1 (last.npz written at window 10, killed at 14)
    on ``first`` processes is resumed with ``--resume`` on ``then``: the carried LM state was
    gathered whole into the checkpoint and is re-split, so the run ends at the numbers of an
    uninterrupted single-process run (float64, 1e-10)."""
    require_mpi()
    whole = tmp_path / "whole"
    rnnlab(runner, *lm_args(corpus, whole))
    broken = tmp_path / "broken"
    killed = rnnlab(runner, *lm_args(corpus, broken, "--checkpoint-every", "10"), n=first, check=False,
                    STOP_AT="1,14")
    assert killed.returncode != 0 and not (broken / "results.json").exists()
    resumed = rnnlab(runner, *resume_args(broken), n=then)
    assert "resuming" in resumed.stderr and "epoch 1, window 10" in resumed.stderr
    assert_same(metrics(whole), metrics(broken), LM_KEYS)
    final = json.loads((whole / "results.json").read_text())
    assert abs(json_line(resumed)["loss"] - final["loss"]) < TOL


def test_time_budget_stops_every_rank_together_and_resumes(tmp_path, runner, corpus):
    """``--max-minutes`` is read from each rank's own clock, so the ranks agree on stopping
    (else one would validate while the other waits in a gradient all-reduce): the job ends
    cleanly with a partial epoch, and ``--resume`` with a larger budget ends at the numbers of
    an uninterrupted single-process run."""
    require_mpi()
    whole, budget = tmp_path / "whole", tmp_path / "budget"
    rnnlab(runner, *lm_args(corpus, whole))
    stopped = rnnlab(runner, *lm_args(corpus, budget, "--max-minutes", "0.0001"), n=2)
    assert "time budget" in stopped.stderr and metrics(budget)[-1].get("partial")
    rnnlab(runner, *resume_args(budget), "--max-minutes", "100", n=2)
    assert_same(metrics(whole), metrics(budget), LM_KEYS)


def test_dropout_is_per_rank_and_reproducible(tmp_path, runner, corpus):
    """With dropout, each rank draws its own masks (seeded by layer seed, rank and step): two
    ranks then differ from one process, but two runs on two ranks agree, and a run killed and
    resumed on two ranks (every rank's generator state is in last.npz) ends at the same numbers."""
    require_mpi()
    dropout = ("--dropout", "0.3", "--epochs", "1")
    single = tmp_path / "single"
    rnnlab(runner, *lm_args(corpus, single, *dropout))
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    rnnlab(runner, *lm_args(corpus, whole, *dropout), n=2)
    rnnlab(runner, *lm_args(corpus, broken, *dropout, "--checkpoint-every", "10"), n=2, check=False,
           STOP_AT="1,14")
    rnnlab(runner, *resume_args(broken), n=2)
    assert_same(metrics(whole), metrics(broken), LM_KEYS)
    assert abs(metrics(whole)[0]["train_loss"] - metrics(single)[0]["train_loss"]) > 1e-6


def test_a_rank_killed_mid_training_ends_the_job(tmp_path, runner, corpus):
    """Rank 1 is killed (SIGKILL) at its third step while rank 0 waits in the all-reduce:
    mpiexec ends the job with a non-zero status, names the failure, and nothing hangs (the
    run would otherwise reach the TIMEOUT of subprocess.run and fail)."""
    require_mpi()
    result = rnnlab(runner, *lm_args(corpus, tmp_path / "run"), n=2, check=False, KILL_RANK="1")
    assert result.returncode != 0
    assert not (tmp_path / "run" / "results.json").exists()
    text = (result.stdout + result.stderr).lower()
    assert "signal" in text or "killed" in text or "exited" in text, result.stderr[-2000:]


def test_a_users_mistake_on_every_rank_ends_the_job_with_its_status(tmp_path, runner):
    """A bad flag value and a missing corpus (both a user's mistake: exit 2) under mpiexec: the job
    ends with that status and one line naming the rank, without waiting on a collective."""
    require_mpi()
    bad_flag = rnnlab(runner, "train", "lm", "--batch", "many", "--out", tmp_path / "a", n=2, check=False)
    assert bad_flag.returncode == 2, bad_flag.stderr[-2000:]
    assert "exited with code 2; aborting all 2 processes" in bad_flag.stderr
    missing = rnnlab(runner, "train", "lm", "--text", tmp_path / "nothing.txt", "--out", tmp_path / "b", n=2,
                     check=False)
    assert missing.returncode == 2 and "nothing.txt" in missing.stderr, missing.stderr[-2000:]
    assert "exited with code 2; aborting all 2 processes" in missing.stderr


# ---- no MPI: the sharding helpers on their own -------------------------------------------------
def test_shard_batch_cuts_every_per_example_field():
    from dataclasses import dataclass

    from rnnlab import distributed as dist

    @dataclass
    class Batch:
        x: object
        mask: object
        ids: list
        scale: float

    batch = Batch(np.arange(10).reshape(5, 2), np.ones((5, 7), bool), list("abcde"), 0.5)
    part = dist.shard_batch(batch, rank=1, size=2)
    assert part.x.tolist() == [[6, 7], [8, 9]] and part.mask.shape == (2, 7) and part.ids == ["d", "e"]
    assert part.scale == 0.5 and batch.ids == list("abcde")  # the global batch is left whole
    x, y = dist.shard_batch((np.zeros((5, 3)), np.ones((5, 3))), rank=0, size=2)
    assert x.shape == y.shape == (3, 3)
    assert dist.shard_batch({"x": np.zeros((1, 4))}, rank=1, size=2)["x"].shape == (0, 4)  # nothing left
    assert dist.batch_rows(part) == 2
    with pytest.raises(ValueError, match="override Task.shard_batch"):
        dist.shard_batch(object(), rank=0, size=2)
    # one process: the batch itself
    assert dist.shard_batch(batch) is batch


def test_rank_seeds_are_deterministic_and_distinct():
    from rnnlab import distributed as dist

    assert dist.rank_seed(7, 1, 0) == dist.rank_seed(7, 1, 0)
    assert len({dist.rank_seed(7, r, s) for r in range(4) for s in (0, 10)}) == 8
    assert 0 <= dist.rank_seed(None, 3, 5) < 2 ** 63
