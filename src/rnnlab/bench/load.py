"""``rnnlab bench --load``: a documented CPU hog beside the benchmark, started and stopped by it.

The load is one busy Python process per CPU available to the benchmark (``threads.available_cpus``),
each a loop on ``time.monotonic()`` that does nothing else and ends by itself after
``HOG_LIMIT_S`` seconds at the latest (so no hog outlives a benchmark that was killed), and is
stopped (SIGTERM, then SIGKILL) when the measurement ends. That is the situation of issue 31: as
many other jobs as cores, the load average about twice the core count once the benchmark runs.
"""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager

HOG_LIMIT_S = 1800.0   # a hog ends by itself after this, whatever happens to the benchmark
HOG_START_S = 0.5      # wait after starting them: the hogs are running when the thread policy looks
HOG_LOOP = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


@contextmanager
def cpu_hog(processes: int, limit_s: float = HOG_LIMIT_S):
    """``processes`` busy processes while the block runs (each ends by itself after ``limit_s``)."""
    hogs = []
    try:
        for _ in range(processes):
            hogs.append(subprocess.Popen([sys.executable, "-c", HOG_LOOP.format(limit=float(limit_s))],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        time.sleep(HOG_START_S)
        yield {"hog_processes": processes, "hog": "one busy Python loop per available CPU (rnnlab.bench.load)"}
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            try:
                hog.wait(timeout=5)
            except subprocess.TimeoutExpired:
                hog.kill()
                hog.wait()


def measured_under_load(measure, threads=None) -> dict:
    """``measure(decision)`` with the hog running, rnnlab's thread decision made under it
    (``rnnlab.threads.configure(threads)``, as a user's run would see the machine; the decision in
    force before is restored after); its result dict with ``load`` added (the hog and the decision)."""
    from .. import threads as thread_policy

    previous = thread_policy.current()
    with cpu_hog(thread_policy.available_cpus()) as hog:
        decision = thread_policy.configure(threads)
        try:
            res = measure(decision)
        finally:
            thread_policy.apply(previous)
    res["load"] = {**hog, "thread_decision": decision.as_dict()}
    return res
