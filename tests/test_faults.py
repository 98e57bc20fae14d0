"""Faults (issue 12): a training process SIGKILLed at random moments (seeded delays, some land
during a save) and resumed each time ends with exactly the checkpoints of a run never killed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnlab.checkpoint import load_checkpoint
from rnnlab.train.run import RunDir

SRC = str(Path(__file__).resolve().parents[1] / "src")
KILLS = 3

SCRIPT = """
import sys
from rnnlab.train.lm import make_config, train_lm
mode, text, out = sys.argv[1:4]
config = make_config(text=text, level="char", hidden=12, emb=8, bptt=6, batch=3, epochs=2, optimizer="adam",
                     lr=0.01, lr_decay=0.5, decay_start=1, dropout=0.2, eval_batch=2, checkpoint_every=3)
if mode == "new":
    train_lm(config, out, progress=False)
else:
    train_lm(None, out, resume=True, progress=False)
"""


def _start(mode, text, out):
    env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, mode, str(text), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path, word_text):
    text = tmp_path / "short.txt"  # half the corpus: a short run to kill
    text.write_text("\n".join(word_text.read_text(encoding="utf-8").splitlines()[:30]), encoding="utf-8")
    t0 = time.perf_counter()
    whole = _start("new", text, tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    duration = time.perf_counter() - t0

    out = tmp_path / "killed"
    rng = np.random.default_rng(2026)
    killed = 0
    for delay in rng.uniform(0.3, 0.9, KILLS) * duration:
        proc = _start("resume" if (out / "config.json").exists() else "new", text, out)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=300)
    assert killed >= 1
    final = _start("resume" if (out / "config.json").exists() else "new", text, out)
    assert final.wait(timeout=300) == 0, final.stderr.read()

    assert not list(out.glob("*.tmp"))
    for name in ("last.npz", "best.npz"):
        a = load_checkpoint(tmp_path / "whole" / name).model.get_weights()
        b = load_checkpoint(out / name).model.get_weights()
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    strip = lambda d: [{k: v for k, v in r.items() if k not in ("wall_s", "tokens_per_s")}  # noqa: E731
                       for r in RunDir(d, create=False).read_metrics()]
    assert strip(out) == strip(tmp_path / "whole")
