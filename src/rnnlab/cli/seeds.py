"""``--seeds 0,1,2`` of ``rnnlab train classify|tag|caption``: one run per seed, then their ensemble.

    rnnlab train tag --ud-ewt --seeds 0,1,2 --out runs/upos      # runs/upos/seed-0, -1, -2 + ensemble
    rnnlab train tag --ud-ewt --seeds 0,1,2 --out runs/upos --resume   # after an interruption

Each seed runs the same command with ``--seed S --out RUN_DIR/seed-S`` as a process of its own
with one BLAS thread, as many at once as ``--jobs`` says (default: one per core, at most two):
on a 2-core CPU two small models train faster side by side than one after the other with two
BLAS threads each. Their per-epoch lines reach stderr prefixed with the seed. When every seed
has finished, ``train/ensemble.py`` averages their probabilities on the test split; the report
shows each run's figures beside the ensemble's and ``RUN_DIR/ensemble.json`` keeps them.

``--resume`` continues: a seed whose run finished (its ``results.json``) is kept, one with a
checkpoint is resumed, one without starts. A seed that fails stops the others, and its error
line becomes the command's, with its exit status (2 for a user's mistake, as everywhere).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..fileio import json_default

# flags of the parent that each seed's command sets itself: name -> whether it takes a value
_OWN_FLAGS = {"--seeds": True, "--jobs": True, "--seed": True, "--out": True, "--json": False,
              "--resume": False, "--overwrite": False, "--no-progress": False}
# RNNLAB_THREADS too: it outranks the BLAS's variables in rnnlab.threads (--threads typed by the
# user still reaches each seed's command and outranks both)
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RNNLAB_THREADS")
MAX_JOBS = 2


class SeedFailed(Exception):
    """One seed's run failed: the message is its error line, ``exit_code`` its exit status."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def add_arguments(group) -> None:
    group.add_argument("--seeds", metavar="S,S,...", help="train one run per seed in RUN_DIR/seed-S (side by "
                       "side, one BLAS thread each) and evaluate their ensemble; needs --out")
    group.add_argument("--jobs", type=int, help=f"with --seeds: runs at once (default: one per core, at most "
                                                f"{MAX_JOBS})")


def seed_command(argv: list, seed: int, run_dir: Path, resume: bool, overwrite: bool) -> list:
    """The command line of one seed: the parent's (``train TASK ...``) without its own flags
    (``_OWN_FLAGS``, also as ``--flag=value``), plus this seed's."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in _OWN_FLAGS:
            skip = _OWN_FLAGS[name] and "=" not in word
            continue
        kept.append(word)
    kept += ["--seed", str(seed), "--out", str(run_dir), "--json", "--no-progress"]
    if resume:
        kept.append("--resume")
    elif overwrite:
        kept.append("--overwrite")
    return kept


def _plan(run_dir: Path, resume: bool):
    """What one seed's process does: None (finished: keep it), "resume" or "start"."""
    if resume and (run_dir / "results.json").exists():
        return None
    return "resume" if resume and (run_dir / "last.npz").exists() else "start"


def run_seeds(args, seeds: tuple) -> dict:
    """Train (or keep, or resume) one run per seed in ``args.out``/seed-S, then evaluate their
    ensemble on the test split: ``train.ensemble.evaluate_ensemble``'s result (``runs``: the
    run folders, ``members``: their figures)."""
    from .. import distributed as dist
    from ..train.ensemble import evaluate_ensemble, report
    from ..fileio import atomic_write_text

    if not args.out:
        raise ValueError("--seeds needs --out RUN_DIR (the runs go to RUN_DIR/seed-S)")
    if any(word == "--seed" or word.startswith("--seed=") for word in args.argv):
        raise ValueError("give --seed or --seeds, not both")
    if dist.world().distributed:
        raise ValueError("--seeds starts its own processes: run it without mpiexec")
    out = Path(args.out)
    members = [out / f"seed-{seed}" for seed in seeds]
    jobs = args.jobs or max(1, min(MAX_JOBS, os.cpu_count() or 1))
    out.mkdir(parents=True, exist_ok=True)
    work = []
    for seed, run_dir in zip(seeds, members):
        plan = _plan(run_dir, args.resume)
        if plan is None:
            print(f"seed {seed}: finished run kept ({run_dir})", file=sys.stderr)
        else:
            work.append((seed, seed_command(args.argv, seed, run_dir, plan == "resume", args.overwrite)))
    _run_processes(work, jobs)
    result = evaluate_ensemble([str(m) for m in members], split="test")
    atomic_write_text(out / "ensemble.json", json.dumps(result, indent=1, default=json_default) + "\n")
    print(report(result))
    print(f"runs: {', '.join(result['runs'])}; ensemble figures: {out / 'ensemble.json'}", file=sys.stderr)
    return result


def _run_processes(work: list, jobs: int) -> None:
    """Run each (seed, argv) as ``rnnlab argv`` in a process of its own, ``jobs`` at a time, with
    one BLAS thread; stderr lines relayed with the seed in front. The first failure stops the
    others and raises ``SeedFailed``."""
    env = {**os.environ, **{name: "1" for name in _THREAD_VARS}}
    launcher = [sys.executable, "-c", "import sys; from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))"]
    pending, running = list(work), []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                seed, argv = pending.pop(0)
                process = subprocess.Popen(launcher + argv, env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True, errors="replace")
                last_line = []
                relay = threading.Thread(target=_relay, args=(process.stderr, f"seed {seed}: ", last_line),
                                         daemon=True)
                relay.start()
                running.append((seed, process, relay, last_line))
            time.sleep(0.1)
            for entry in list(running):
                seed, process, relay, last_line = entry
                code = process.poll()
                if code is None:
                    continue
                relay.join()
                running.remove(entry)
                if code != 0:
                    why = last_line[0] if last_line else f"exit status {code}"
                    raise SeedFailed(f"seed {seed}: {why}", code)
    finally:
        for _, process, _, _ in running:
            process.terminate()
        for _, process, relay, _ in running:
            process.wait()
            relay.join()


def _relay(stream, prefix: str, last_line: list) -> None:
    """Copy ``stream``'s lines to stderr with ``prefix``; keep the last non-empty one, without
    its "rnnlab train TASK: error: " (the parent's error line says it again)."""
    for line in stream:
        line = line.rstrip("\n")
        if line.strip():
            last_line[:] = [line.split(": error: ", 1)[-1].strip()]
            print(prefix + line, file=sys.stderr, flush=True)
