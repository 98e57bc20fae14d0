"""Deterministic by construction (issue 28): no choice that changes the numbers depends on a
timing, so a short training run gives the same bits on an idle and on a fully loaded machine."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SRC = str(Path(__file__).resolve().parents[2] / "src")

# a few dozen steps of a tiny word-level LSTM and GRU language model, on the fused per-step
# kernels and on the compiled loops (the NumPy loops where numba is missing), weights saved
SCRIPT = """
import sys
import numpy as np
from rnnlab.layers.fast import FastLoop, compiled as loops
from rnnlab.train.lm import make_config, train_lm
text, out = sys.argv[1:3]
weights = {}
for cell in ("lstm", "gru"):
    for compiled in (False, True):
        FastLoop.COMPILED = compiled if loops.available() else False
        config = make_config(text=text, level="word", cell=cell, layers=2, hidden=48, emb=16, bptt=8, batch=4,
                             epochs=2, optimizer="adam", lr=0.01, seed=3)
        model = train_lm(config, None, progress=False).model
        for k, w in enumerate(model.get_weights()):
            weights[f"{cell}-{compiled}-{k}"] = w
np.savez(out, **weights)
"""


def _train(text, out):
    env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg"}
    env.pop("OPENBLAS_NUM_THREADS", None)   # the BLAS's own threads, which a busy machine slows most
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(text), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with np.load(out) as saved:
        return dict(saved)


def test_a_training_run_beside_a_cpu_hog_gives_the_same_weights(tmp_path, word_text):
    quiet = _train(word_text, tmp_path / "quiet.npz")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        busy = _train(word_text, tmp_path / "busy.npz")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert quiet.keys() == busy.keys() and len(quiet) >= 4
    for name in quiet:
        assert np.array_equal(quiet[name], busy[name]), name
