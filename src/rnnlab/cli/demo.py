"""``rnnlab demo [--json] [--out DIR]``: rnnlab's main job, end to end, with no files needed.

Generates the dates dataset (human dates in a dozen formats -> ISO ``YYYY-MM-DD``), trains an
attention encoder-decoder on it, prints a handful of translations and the exact-match accuracy
on held-out dates, and saves the attention heatmap of one example as ``DIR/attention.png``
(with the run directory: config, checkpoints, metrics, curves). Takes about 20 seconds on two
CPU cores and reaches 99.9-100% exact match.

The demo runs its BLAS single-threaded (``--threads``, 1 here unless given, where the other
commands let ``rnnlab.threads`` decide): its matrices are small, so a second
thread gains little, and on a CPU shared with other programs, multi-threaded OpenBLAS can be
slowed down several-fold. Because OpenBLAS fixes its thread count when NumPy is loaded, the demo
restarts itself in a fresh Python with ``OPENBLAS_NUM_THREADS`` set when it was not started so.

Like every command, the demo writes over nothing without ``--overwrite``: a run already in
``DIR/run`` (of any task) or an ``DIR/attention.png`` stops it before training.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..fileio import check_output, check_output_folder
from ..plots import plot_or_warn
from ..train.seq2seq import Seq2SeqConfig, Translator, save_attention_plot, train_seq2seq

# The embedded default, tuned to reach >= 99% exact match on held-out dates in under three
# minutes on a 2-core CPU (see README).
DEMO = dict(generated="dates", n=20000, split=(0.8, 0.05, 0.15), attention="luong", score="general",
            cell="gru", bidirectional=True, emb=32, hidden=128, epochs=4, batch=64, lr=0.003, lr_schedule="step",
            lr_decay=0.5, decay_start=3, clip=5.0, eval_limit=300)

SHOWCASE = ["september 27, 1994", "SAT, MAR 8, 2031", "the 1st of july 1969", "6/21/07", "31.12.1999"]


def register(ctx) -> None:
    parser = ctx.commands.add_parser(
        "demo", parents=[ctx.common], help="train an attention seq2seq on generated dates (about 20 s)",
        description="Generate human-written dates, train an attention encoder-decoder that writes them as "
                    "ISO dates, print translations and the held-out exact match, save an attention heatmap.")
    parser.add_argument("--out", metavar="DIR", default="runs/demo",
                        help="folder for the run and the heatmap (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the model")
    parser.add_argument("--epochs", type=int, default=DEMO["epochs"], help=f"default {DEMO['epochs']}")
    parser.add_argument("--n", type=int, default=DEMO["n"], help=f"dates to generate (default {DEMO['n']})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true", help="replace the run and heatmap of an earlier demo "
                                                                "in DIR")
    parser.set_defaults(func=run)


_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_RESULT_VAR = "RNNLAB_DEMO_RESULT"


def _in_child_process(args) -> dict | None:
    """Run the demo in a fresh Python whose BLAS uses ``args.threads`` threads, when this one's
    was not started so (the thread count of OpenBLAS is fixed when NumPy loads). Returns the
    child's result dict, or None when this process already has the right setting."""
    threads = str(args.threads)
    if os.environ.get("OPENBLAS_NUM_THREADS") == threads or os.environ.get(_RESULT_VAR):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        env = {**os.environ, **{v: threads for v in _BLAS_THREAD_VARS}, _RESULT_VAR: str(result_path)}
        argv = [sys.executable, "-c", "import sys; from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))",
                "demo", "--out", str(args.out), "--seed", str(args.seed), "--epochs", str(args.epochs),
                "--n", str(args.n), "--threads", threads]
        argv += [flag for flag, given in (("--no-progress", args.no_progress), ("--overwrite", args.overwrite))
                 if given]
        sys.stdout.flush()
        code = subprocess.call(argv, env=env)
        if code != 0 or not result_path.exists():
            raise SystemExit(code or 1)  # the child has already said why, in one line or a traceback
        return json.loads(result_path.read_text(encoding="utf-8"))


def run(args) -> dict:
    from .. import threads

    start = time.perf_counter()
    if args.threads is None:  # one, not the policy's choice: see the module docstring
        args.threads = threads.configure(1).threads
    if args.threads < 1 or args.epochs < 1:
        raise ValueError(f"--threads and --epochs must be at least 1, got {args.threads} and {args.epochs}")
    child = _in_child_process(args)
    if child is not None:
        child["wall_s"] = round(time.perf_counter() - start, 2)  # including the child's start
        return child
    out = check_output_folder(args.out)
    heatmap_path = check_output(out / "attention.png", overwrite=args.overwrite)  # before training, not after
    out.mkdir(parents=True, exist_ok=True)
    settings = {**DEMO, "epochs": args.epochs, "n": args.n}
    config = Seq2SeqConfig(**settings, seed=args.seed, data_seed=args.seed, progress=False if args.no_progress else None)
    print(f"rnnlab demo: {config.n} generated dates, {config.attention} attention ({config.score}), "
          f"{config.cell.upper()} {config.hidden}, {config.epochs} epochs", file=sys.stderr)
    trained = train_seq2seq(config, out / "run", examples=8, overwrite=args.overwrite)
    model, result = trained.model, trained.metrics

    print("held-out dates:")
    for ex in result["examples"]:
        mark = "ok" if ex["prediction"] == ex["reference"] else "WRONG"
        print(f"  {ex['source']:<32} -> {ex['prediction']:<12} {mark}")
    translator = Translator(out / "run")
    shown = translator(SHOWCASE)
    print("your own:")
    for r in shown:
        print(f"  {r['source']:<32} -> {r['translation']}")
    heatmap = plot_or_warn(save_attention_plot, shown[0], heatmap_path)  # None when it cannot be drawn
    wall = time.perf_counter() - start
    print(f"exact match on {result['test_pairs']} held-out dates: {100 * result['exact_match']:.2f}%  "
          f"(token accuracy {100 * result['token_accuracy']:.2f}%, {model.count_params():,} parameters, "
          f"{wall:.0f} s)")
    print(f"attention heatmap: {heatmap}" if heatmap else "attention heatmap: not drawn (the warning above says why)")
    summary = {"exact_match": result["exact_match"], "token_accuracy": result["token_accuracy"],
               "bleu": result["bleu"], "test_pairs": result["test_pairs"], "epochs": config.epochs,
               "params": model.count_params(), "wall_s": round(wall, 2), "heatmap": str(heatmap) if heatmap else None,
               "run_dir": str(out / "run"), "blas_threads": args.threads,
               "translations": [{"source": r["source"], "translation": r["translation"]} for r in shown]}
    if os.environ.get(_RESULT_VAR):  # we are the child of _in_child_process: hand the result back
        Path(os.environ[_RESULT_VAR]).write_text(json.dumps(summary), encoding="utf-8")
    return summary
