#!/usr/bin/env bash
# The one GPU check of rnnlab: everything the CuPy backend has to show, in one run, one folder.
#
#   benchmarks/gpu_check.sh [--dry-run] [--minutes M] [--data DIR] [OUTDIR]
#
# On a machine with CUDA (about 15 minutes of GPU time in all, machine start included), from
# the repository root, stage by stage:
#
#   env      nvidia-smi, Python, the packages, whether CuPy sees a device, whether torch has CUDA
#   install  pip install -e ".[gpu,test]" only when CuPy does not import yet
#   smoke    one LSTM and one GRU layer forward + backward on CuPy against NumPy, float64
#   tests    the whole test suite with RNNLAB_BACKEND=cupy (float64 gradient checks, PyTorch
#            parity included), JUnit XML and the 25 slowest tests
#   bench    rnnlab bench --config NAME --cell both --device cuda for every config (what
#            --config all measures, one config at a time, so a time-out keeps the finished
#            ones): rnnlab on CuPy against PyTorch's cuDNN LSTM/GRU on the same GPU; 10 timed
#            steps after 2 warm-up ones, no settle pause (it is for CPU threads)
#   train    rnnlab train lm --preset zaremba-small for M minutes (default 1.5) on CuPy, PTB from
#            --data DIR (default $RNNLAB_DATA; the GPU machine may have no network); the final
#            valid/test figures with 20 streams (--eval-batch 20), not the paper's 1, whose
#            155,000 sequential one-token steps would not fit the time
#
# Every stage has its own time limit (seconds; override with T_ENV, T_INSTALL, T_SMOKE, T_TESTS,
# T_BENCH, T_TRAIN), its own log under OUTDIR, and its own exit status; a stage that fails or
# runs out of time does not stop the next. At the end OUTDIR/summary.json lists every stage
# (command, status, seconds, timed out, log) and what it found (test counts, the bench table's
# ratios, the training run's perplexities). OUTDIR defaults to $OUT when set (the device
# machine's return folder), else ./gpu_check_<UTC time>. The default limits add up to
# 20 + 90 + 40 + 150 + 120 + 150 s = 9.5 min at most, so the whole check fits one 10-minute
# command and a 15-minute GPU allowance with the machine's start; with CuPy already installed
# the install stage takes a second. The test suite may not finish in 150 s on a GPU (the
# gradient checks launch many tiny kernels): pytest is then interrupted, and tests.xml and the
# log still list every test that ran; give it more with T_TESTS when there is more time.
#
# --dry-run rehearses every stage on the CPU, tiny, so that the GPU run is not spent on a typo:
# benchmarks/gpu_rehearsal (NumPy posing as CuPy) stands in for CuPy, install only prints its
# command, tests run tests/test_bench.py and the recurrent parity file, bench runs ptb-small
# for one step, train runs 0.2 minutes on the first 5,000 tokens. Its figures mean nothing.
set -u

DRY=0
MINUTES=1.5
DATA="${RNNLAB_DATA:-}"
OUTDIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --minutes) MINUTES="$2"; shift ;;
        --data) DATA="$2"; shift ;;
        -h|--help) awk 'NR > 1 && /^set -u/ {exit} NR > 1' "$0"; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) OUTDIR="$1" ;;
    esac
    shift
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
OUTDIR="${OUTDIR:-${OUT:-$ROOT/gpu_check_$(date -u +%Y%m%dT%H%M%SZ)}}"
mkdir -p "$OUTDIR" || exit 2
OUTDIR="$(cd "$OUTDIR" && pwd)"
PYTHON="${PYTHON:-python3}"
RNNLAB=("$PYTHON" -c 'import sys; from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))')   # the rnnlab command

export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg RNNLAB_BACKEND=cupy
if [ "$DRY" = 1 ]; then
    export PYTHONPATH="$ROOT/benchmarks/gpu_rehearsal:$PYTHONPATH"
    T_ENV=${T_ENV:-60} T_INSTALL=${T_INSTALL:-10} T_SMOKE=${T_SMOKE:-60} T_TESTS=${T_TESTS:-600}
    T_BENCH=${T_BENCH:-300} T_TRAIN=${T_TRAIN:-180}
    MINUTES=0.2
    TEST_ARGS=(tests/test_bench.py tests/parity/test_recurrent_torch.py)
    BENCH_CONFIGS="ptb-small"   # 35 time steps: the shortest Python loop of the four
    BENCH_STEPS="--steps 1 --warmup 0"
    TRAIN_ARGS=(--limit 5000)
else
    T_ENV=${T_ENV:-20} T_INSTALL=${T_INSTALL:-90} T_SMOKE=${T_SMOKE:-40} T_TESTS=${T_TESTS:-150}
    T_BENCH=${T_BENCH:-120} T_TRAIN=${T_TRAIN:-$(awk "BEGIN {print int($MINUTES * 60 + 60)}")}
    TEST_ARGS=(tests)
    BENCH_CONFIGS="ptb-medium ptb-small char long-small"   # all of them, the issue's target first
    BENCH_STEPS="--steps 10 --warmup 2"
    TRAIN_ARGS=()
fi
DATA_ARGS=()
[ -n "$DATA" ] && DATA_ARGS=(--data-dir "$DATA")

STAGES="$OUTDIR/stages.tsv"
: > "$STAGES"
echo "gpu_check: dry_run=$DRY, output in $OUTDIR" >&2

# run_stage NAME LIMIT_S COMMAND...: run it under its limit (SIGINT first, so pytest still writes
# its report; SIGKILL 20 s later), stdout + stderr to NAME.log, one line to stages.tsv.
run_stage() {
    local name="$1" limit="$2"; shift 2
    local log="$OUTDIR/$name.log" t0 t1 rc
    echo "== $name (limit ${limit}s): $*" >&2
    printf '$ %s\n' "$*" > "$log"
    t0=$(date +%s.%N)
    timeout -s INT -k 20 "$limit" "$@" >> "$log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(awk "BEGIN {print $t1 - $t0}")" "$limit" "$*" >> "$STAGES"
    echo "   $name: exit $rc, $(awk "BEGIN {printf \"%.0f\", $t1 - $t0}") s, log $log" >&2
}

env_report() {
    date -u
    uname -a
    (command -v nvidia-smi >/dev/null && nvidia-smi) || echo "nvidia-smi: not found"
    git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo "git: no repository here"
    "$PYTHON" - <<'EOF'
import importlib, json, platform
out = {"python": platform.python_version()}
for name in ("numpy", "cupy", "torch", "numba", "threadpoolctl", "pytest"):
    try:
        out[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as err:  # noqa: BLE001 - report, do not stop
        out[name] = f"not importable: {err}"
try:
    import cupy
    out["cupy_devices"] = cupy.cuda.runtime.getDeviceCount()
    out["cupy_stand_in"] = bool(getattr(cupy, "STAND_IN", False))
except Exception as err:  # noqa: BLE001
    out["cupy_devices"] = f"{type(err).__name__}: {err}"
try:
    import torch
    out["torch_cuda"] = torch.cuda.is_available()
    out["torch_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
except Exception as err:  # noqa: BLE001
    out["torch_cuda"] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
EOF
}

install_gpu_extra() {
    if RNNLAB_BACKEND=numpy "$PYTHON" -c "import cupy" 2>/dev/null; then
        echo "CuPy imports already: nothing to install"
        return 0
    fi
    if [ "$DRY" = 1 ]; then
        echo "dry run: would run $PYTHON -m pip install -e \".[gpu,test]\""
        return 0
    fi
    "$PYTHON" -m pip install -e ".[gpu,test]"
}

smoke() {
    "$PYTHON" - <<'EOF'
# One LSTM and one GRU layer, float64, forward + backward on the CuPy backend against the
# same layer on NumPy: outputs and every gradient must agree to 1e-9.
import numpy as np
import rnnlab
from rnnlab import backend
from rnnlab.layers import GRU, LSTM

rnnlab.set_floatx("float64")
rng = np.random.default_rng(0)
x, dy = rng.standard_normal((4, 7, 5)), rng.standard_normal((4, 7, 6))
worst = 0.0
for cls in (LSTM, GRU):
    results = {}
    for name in ("numpy", "cupy"):
        backend.set_backend(name)
        layer = cls(6, return_sequences=True, seed=1)
        y = layer.forward(backend.asarray(x))
        dx = layer.backward(backend.asarray(dy))
        results[name] = [backend.to_numpy(a) for a in (y, dx, *layer.grads)]
    for a, b in zip(*results.values()):
        err = float(np.max(np.abs(a - b)))
        worst = max(worst, err)
        assert err < 1e-9, (cls.__name__, err)
    print(f"{cls.__name__}: CuPy and NumPy agree, max abs difference {worst:.2e}")
print(f"backend {backend.backend_name()} ({getattr(backend.xp, '__version__', '?')}): smoke passed")
EOF
}

bench_configs() {
    local name
    for name in $BENCH_CONFIGS; do
        "$PYTHON" -c 'import sys; from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))' \
            bench --config "$name" --cell both $BENCH_STEPS --device cuda --settle 0 --no-memory --json  # split on purpose
    done
}

# `timeout` runs programs, not shell functions: these functions run in a child bash
export -f env_report install_gpu_extra smoke bench_configs
export ROOT PYTHON DRY BENCH_CONFIGS BENCH_STEPS
run_stage env "$T_ENV" bash -c env_report
run_stage install "$T_INSTALL" bash -c install_gpu_extra
run_stage smoke "$T_SMOKE" bash -c smoke
run_stage tests "$T_TESTS" "$PYTHON" -m pytest -q -p no:cacheprovider --durations=25 \
    --junitxml="$OUTDIR/tests.xml" "${TEST_ARGS[@]}"
run_stage bench "$T_BENCH" bash -c bench_configs
run_stage train "$T_TRAIN" "${RNNLAB[@]}" train lm --preset zaremba-small --max-minutes "$MINUTES" \
    --eval-batch 20 "${DATA_ARGS[@]}" "${TRAIN_ARGS[@]}" --no-progress --out "$OUTDIR/train_run" --json

# summary.json: the stages and what they found. The summary reads the logs; it never fails the run.
DRY="$DRY" OUTDIR="$OUTDIR" "$PYTHON" - <<'EOF' || echo "gpu_check: summary failed; stages.tsv holds the statuses" >&2
import json, os, xml.etree.ElementTree as ET

out = os.environ["OUTDIR"]
dry = os.environ["DRY"] == "1"


def all_json(path):
    """Every line of a log that is a JSON object (the --json results), in order."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("{"):
                    try:
                        found.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return found


def last_json(path):
    found = all_json(path)
    return found[-1] if found else None


stages = []
with open(os.path.join(out, "stages.tsv"), encoding="utf-8") as f:
    for line in f:
        name, rc, seconds, limit, cmd = line.rstrip("\n").split("\t", 4)
        rc = int(rc)
        stages.append({"stage": name, "exit": rc, "ok": rc == 0, "seconds": round(float(seconds), 1),
                       "limit_s": int(limit), "timed_out": rc in (124, 130, 137) and float(seconds) >= int(limit) - 1,
                       "log": f"{name}.log", "command": cmd})
found = {"env": last_json(os.path.join(out, "env.log"))}
try:
    suite = ET.parse(os.path.join(out, "tests.xml")).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    found["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    found["tests"]["failed"] = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                                if case.find("failure") is not None or case.find("error") is not None][:50]
except (OSError, ET.ParseError, AttributeError):
    found["tests"] = None
rows, errors = [], []
for obj in all_json(os.path.join(out, "bench.log")):
    if "error" in obj:
        errors.append(obj["error"])
    rows += obj.get("results", [obj] if "config" in obj else [])
keys = ("config", "cell", "backend", "torch_device", "rnnlab_train_tok_s", "torch_train_tok_s", "ratio_train",
        "rnnlab_infer_tok_s", "torch_infer_tok_s", "ratio_infer", "rnnlab_train_step_ms", "torch_train_step_ms")
found["bench"] = {"rows": [{k: r.get(k) for k in keys} for r in rows], "errors": errors,
                  "gpu": rows[0]["machine"].get("gpu") if rows else None,
                  "notes": sorted({n for r in rows for n in r.get("notes", [])})}
train = last_json(os.path.join(out, "train.log"))
found["train"] = train
summary = {"dry_run": dry, "stages": stages, "found": found,
           "all_ok": all(s["ok"] for s in stages)}
if dry:
    summary["warning"] = ("dry run on the CPU with NumPy standing in for CuPy: no figure here is a GPU figure")
with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1, default=str)
print(json.dumps({s["stage"]: s["exit"] for s in stages}))
EOF
echo "gpu_check: done; $OUTDIR/summary.json" >&2
