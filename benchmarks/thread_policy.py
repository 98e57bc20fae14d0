"""One LSTM layer's forward + backward with the default threads and with one thread (issue 31).

    PYTHONPATH=src python benchmarks/thread_policy.py [--steps 30] [--json FILE]

The layer of issue 31's probe: batch 32, 30 steps, 64 inputs, 128 units, float32, forward and
backward per step. Each case runs in a fresh process (OpenBLAS reads its variables when NumPy
loads), alternating, ``--rounds`` times: "default" as a user starts Python (no variable set; where
the imported rnnlab has ``rnnlab.threads``, it decides as every command and the trainer do) and
"one thread" (``OPENBLAS_NUM_THREADS=1``). Run it with PYTHONPATH pointing at the rnnlab to
measure (before / after a change). Prints the median milliseconds per step of each process, the
BLAS threads it ran and the thread decision, with the CPU model and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import rnnlab
from rnnlab.layers import LSTM
decision = None
try:
    from rnnlab import threads
except ImportError:
    threads = None
if threads is not None:
    decision = threads.current().as_dict()
from threadpoolctl import threadpool_info
blas = [m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"]
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 30, 64)).astype(np.float32)
dy = rng.standard_normal((32, 30, 128)).astype(np.float32)
layer = LSTM(128, return_sequences=True, seed=0)
times = []
for k in range(3 + int(sys.argv[1])):
    t0 = time.perf_counter()
    layer.forward(x)
    layer.backward(dy)
    if k >= 3:
        times.append(time.perf_counter() - t0)
print(json.dumps({"median_ms": 1e3 * float(np.median(times)), "blas_threads": blas, "decision": decision}))
"""


def measure(one_thread: bool, steps: int) -> dict:
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "RNNLAB_THREADS"):
        env.pop(name, None)
    if one_thread:
        env["OPENBLAS_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    fields = {}
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return f"{fields.get('model name')} (family {fields.get('cpu family')} model {fields.get('model')})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per process (after 3 untimed)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per case, alternating")
    parser.add_argument("--json", metavar="FILE", help="write the figures here too")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = {"default": [], "one thread": []}
    for _ in range(args.rounds):
        for case in runs:
            runs[case].append(measure(case == "one thread", args.steps))
    load_after = os.getloadavg()
    import rnnlab

    print(f"rnnlab from {os.path.dirname(rnnlab.__file__)}; CPU {cpu_model()}, {os.cpu_count()} CPUs; "
          f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print("| case | ms per step (each process) | median | BLAS threads | decision |")
    print("|---|---|---:|---|---|")
    for case, rows in runs.items():
        ms = [r["median_ms"] for r in rows]
        decision = rows[-1]["decision"]
        said = f"{decision['threads']} ({decision['source']})" if decision else "- (no rnnlab.threads)"
        print(f"| {case} | {' / '.join(f'{v:.1f}' for v in ms)} | {statistics.median(ms):.1f} | "
              f"{rows[-1]['blas_threads']} | {said} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"runs": runs, "load_before": load_before, "load_after": load_after, "cpu": cpu_model()}, f)


if __name__ == "__main__":
    main()
