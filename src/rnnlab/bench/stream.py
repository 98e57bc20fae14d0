"""``rnnlab bench --config stream``: the latency of one step at batch 1, as ``sample`` runs a model.

A character-level language model (``STREAM_VOCAB`` tokens, ``STREAM_EMB``-wide embedding, LSTM or
GRU layers of H units, the output Dense) fed one token with its carried state, the step that
``rnnlab sample`` (``LanguageModel.generate``), ``translate`` and a streaming tagger repeat. Its
sides, all with the same weights (``check_same_step`` compares their first logits):

- ``rnnlab``: ``LanguageModel.forward`` on a (1, 1) window in eval mode, the state carried;
- ``rnnlab_stream``: ``streaming.StreamingLM.step`` (the packed batch-1 step: one compiled call
  per layer with numba);
- ``torch_cells``: PyTorch's ``nn.LSTMCell`` / ``nn.GRUCell`` per layer under
  ``torch.inference_mode()`` (its fastest per-step form, issue 31), with ``nn.Embedding`` and
  ``nn.Linear``;
- ``torch_rnn``: ``nn.LSTM`` / ``nn.GRU`` (``interop.pytorch.to_torch``) stepped with its state;
- ``onnxruntime``: the model exported by ``interop.onnx_export`` (its ids input (1, 1), the states
  fed back), one ``InferenceSession.run`` per step;
- ``products``: the step's own matrix-vector products alone (NumPy: per layer x W and h U, then
  h W_out): what no implementation can skip.

Each side runs ``per_round`` steps in a row, timed one by one, then the next side (the order
alternating every round), so a change of load hits every side alike; median and p99 latency per
step in microseconds. ``ratio_torch`` = PyTorch's faster form's median / rnnlab's (the layers,
as ``sample`` runs them), ``ratio_onnxruntime`` = onnxruntime's / rnnlab's (> 1: rnnlab is
faster), ``step_over_products`` = rnnlab's median / the products' median; ``stream_ratio_torch``,
``stream_ratio_onnxruntime`` and ``stream_step_over_products`` the same for ``rnnlab_stream``.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import backend, streaming
from ..layers.kinds import GATES
from .configs import CELLS, INIT, check_cell
from .measure import blas_info, machine_info, openblas_env, versions

STREAM_HIDDEN = (128, 256, 650)
STREAM_LAYERS = (1, 2)
STREAM_VOCAB = 65      # a character vocabulary (Shakespeare's)
STREAM_EMB = 64
STREAM_ROUND = 50      # steps a side runs in a row before the next side
SIDES = ("rnnlab", "rnnlab_stream", "torch_cells", "torch_rnn", "onnxruntime", "products")


def stream_shapes(cells=CELLS):
    """(cell, hidden, layers) of every stream row."""
    return [(cell, h, n) for cell in cells for h in STREAM_HIDDEN for n in STREAM_LAYERS]


def _rnnlab_model(cell, hidden, layers, seed):
    from ..models.lm import LanguageModel

    model = LanguageModel(STREAM_VOCAB, emb=STREAM_EMB, hidden=hidden, layers=layers, cell=cell, dropout=0.0,
                          init_scale=INIT, seed=seed)
    model.eval()
    return model


def rnnlab_step(model):
    """One token in, its logits (V,) out, the state carried (as ``LanguageModel.generate``)."""
    xp = backend.xp
    ids = [xp.zeros((1, 1), dtype=np.int64) + t for t in range(STREAM_VOCAB)]
    k = [0]

    def step():
        k[0] += 1
        return model.forward(ids[k[0] % STREAM_VOCAB])[0, -1]
    return step


def stream_step(model):
    """``StreamingLM.step`` on ``model`` (its own copy of the weights), fed tokens in turn."""
    streamed = streaming.StreamingLM(model)
    k = [0]

    def step():
        k[0] += 1
        return streamed.step(k[0] % STREAM_VOCAB)
    return step


def torch_steps(torch, model, threads=None):
    """(cells step, nn.LSTM/GRU step) of PyTorch on ``model``'s weights, on ``threads`` threads
    (None: PyTorch's default); each returns logits (V,)."""
    from ..interop.pytorch import to_torch

    if threads is not None:
        torch.set_num_threads(threads)
    net = to_torch(model).float().eval()
    rnn, kind = net.rnn, model.cell
    cell_class = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind]
    cells = []
    for k in range(model.layers):
        cell = cell_class(rnn.input_size if k == 0 else rnn.hidden_size, rnn.hidden_size).float().eval()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(rnn, f"{name}_l{k}"))
        cells.append(cell)
    output = net.output
    ids = [torch.tensor([t]) for t in range(STREAM_VOCAB)]
    zeros = lambda: torch.zeros(1, model.hidden, dtype=torch.float32)  # noqa: E731  (whatever the default dtype)
    cell_state = [[zeros(), zeros()] if kind == "lstm" else [zeros()] for _ in cells]
    rnn_state = [None]
    k = [0, 0]

    def cells_step():
        k[0] += 1
        with torch.inference_mode():
            x = net.embedding(ids[k[0] % STREAM_VOCAB])
            for cell, state in zip(cells, cell_state):
                if kind == "lstm":
                    state[0], state[1] = cell(x, (state[0], state[1]))
                else:
                    state[0] = cell(x, state[0])
                x = state[0]
            return output(x)[0]

    def rnn_step():
        k[1] += 1
        with torch.inference_mode():
            y, rnn_state[0] = rnn(net.embedding(ids[k[1] % STREAM_VOCAB]).unsqueeze(0), rnn_state[0])
            return output(y[0])[0]
    return cells_step, rnn_step


def onnxruntime_step(model, folder, threads):
    """onnxruntime's step on ``model`` exported to ``folder`` (logits (V,) out), or a note why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed: no onnxruntime figures (pip install onnxruntime)"
    from ..interop import UnsupportedError
    from ..interop.onnx_export import export_onnx

    try:
        path = export_onnx(model, Path(folder) / f"stream_{model.cell}_{model.hidden}_{model.layers}.onnx")[0]
    except (ImportError, UnsupportedError) as err:
        return None, f"no onnxruntime figures: the model was not exported ({err})"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    state = {name: np.zeros((model.layers, 1, model.hidden), np.float32) for name in names if name != "ids"}
    ids = [np.full((1, 1), t, dtype=np.int64) for t in range(STREAM_VOCAB)]
    outputs = [o.name for o in session.get_outputs()]
    k = [0]

    def step():
        k[0] += 1
        got = session.run(outputs, {"ids": ids[k[0] % STREAM_VOCAB], **state})
        for name, value in zip(outputs, got):
            if name in ("h", "c"):
                state[name + "0"] = value
        return got[0][0, -1]
    return step, None


def products_step(cell, hidden, layers, seed=0):
    """The step's own matrix-vector products alone (float32 NumPy): x W and h U per layer, h W_out."""
    rng = np.random.default_rng(seed)
    G = GATES[cell] * hidden
    work = []
    for k in range(layers):
        D = STREAM_EMB if k == 0 else hidden
        work += [(rng.standard_normal((1, D), dtype=np.float32), rng.standard_normal((D, G), dtype=np.float32)),
                 (rng.standard_normal((1, hidden), dtype=np.float32),
                  rng.standard_normal((hidden, G), dtype=np.float32))]
    work.append((rng.standard_normal((1, hidden), dtype=np.float32),
                 rng.standard_normal((hidden, STREAM_VOCAB), dtype=np.float32)))
    outs = [np.empty((1, b.shape[1]), np.float32) for _, b in work]

    def step():
        for (a, b), out in zip(work, outs):
            np.matmul(a, b, out=out)
        return outs[-1]
    return step


def check_same_step(steps: dict, atol: float = 1e-4) -> None:
    """The first step's logits of every model side agree (they run the same weights)."""
    first = {name: np.asarray(backend.to_numpy(step()) if name == "rnnlab" else
                              step().detach().numpy() if name.startswith("torch") else step(), dtype=np.float64)
             for name, step in steps.items() if name != "products"}
    reference = first.pop("rnnlab")
    for name, logits in first.items():
        if not np.allclose(logits, reference, atol=atol):
            raise AssertionError(f"stream bench: {name}'s first logits differ from rnnlab's by "
                                 f"{np.max(np.abs(logits - reference)):.2e}: not the same model")


def time_in_rounds(steps: dict, rounds: int, per_round: int, warmup_rounds: int = 1) -> dict:
    """Seconds of every step of every side: ``rounds`` rounds of ``per_round`` steps per side,
    timed one by one, the order of the sides alternating every round (after untimed warm-up)."""
    names = list(steps)
    for _ in range(warmup_rounds * per_round):
        for name in names:
            steps[name]()
    times = {name: [] for name in names}
    clock = time.perf_counter
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            step, out = steps[name], times[name]
            for _ in range(per_round):
                t0 = clock()
                step()
                out.append(clock() - t0)
    return times


def latency(times) -> dict:
    """Median and p99 of step seconds, in microseconds."""
    return {"median_us": float(np.median(times)) * 1e6, "p99_us": float(np.percentile(times, 99)) * 1e6}


def run_stream(cell: str = "lstm", hidden: int = 256, layers: int = 2, rounds: int = 20, warmup: int = 1,
               per_round: int | None = None, seed: int = 0, use_torch: bool = True, use_onnxruntime: bool = True,
               threads: int = 1, torch_threads: int | None = None) -> dict:
    """One stream row: median and p99 step latency of every side (module docstring). ``threads``:
    rnnlab's (as decided: the BLAS is not changed here) and onnxruntime's; ``torch_threads``:
    PyTorch's (None: its default)."""
    from .torch_side import import_torch

    kind = check_cell(cell)
    per_round = STREAM_ROUND if per_round is None else per_round
    if backend.backend_name() != "numpy" or backend.floatx() != "float32":
        raise RuntimeError("the stream benchmark runs on the NumPy backend in float32")
    notes = []
    model = _rnnlab_model(kind, hidden, layers, seed)
    steps = {"rnnlab": rnnlab_step(model), "rnnlab_stream": stream_step(model)}
    torch = import_torch() if use_torch else None
    if torch is not None:
        steps["torch_cells"], steps["torch_rnn"] = torch_steps(torch, model, torch_threads)
    else:
        notes.append("PyTorch not run: no torch figures" if not use_torch else
                     "PyTorch is not installed: no torch figures (pip install 'rnnlab[bench]')")
    with tempfile.TemporaryDirectory() as folder:
        if use_onnxruntime:
            step, note = onnxruntime_step(model, folder, threads)
            if step is not None:
                steps["onnxruntime"] = step
            else:
                notes.append(note)
        steps["products"] = products_step(kind, hidden, layers, seed)
        check_same_step(steps)
        model.reset_states()
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        times = time_in_rounds(steps, rounds, per_round, warmup)
        load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    res = {"config": "stream", "cell": kind, "hidden": hidden, "layers": layers, "vocab": STREAM_VOCAB,
           "emb": STREAM_EMB, "batch": 1, "steps_per_side": rounds * per_round, "threads": threads,
           "torch_threads": torch.get_num_threads() if torch is not None else None}
    for side in SIDES:
        figures = latency(times[side]) if side in times else {"median_us": None, "p99_us": None}
        res[f"{side}_median_us"], res[f"{side}_p99_us"] = figures["median_us"], figures["p99_us"]
    torch_forms = {f: res[f"torch_{f}_median_us"] for f in ("cells", "rnn") if res[f"torch_{f}_median_us"]}
    res["torch_fastest"] = min(torch_forms, key=torch_forms.get) if torch_forms else None
    for prefix, side in (("", "rnnlab"), ("stream_", "rnnlab_stream")):
        rn = res[f"{side}_median_us"]
        res[f"{prefix}ratio_torch"] = torch_forms[res["torch_fastest"]] / rn if torch_forms else None
        res[f"{prefix}ratio_onnxruntime"] = res["onnxruntime_median_us"] / rn if res["onnxruntime_median_us"] else None
        res[f"{prefix}step_over_products"] = rn / res["products_median_us"]
    res["stream_compiled"] = streaming.compiled()
    res["loadavg_before_after"] = [load_before, load_after]
    res["blas"] = blas_info()
    res["openblas_env"] = openblas_env()
    res["machine"] = machine_info()
    res["versions"] = versions(torch)
    try:
        import onnxruntime
        res["versions"]["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        res["versions"]["onnxruntime"] = None
    res["notes"] = notes
    return res


def format_stream_table(results: list) -> str:
    """The stream rows as a Markdown table: median / p99 microseconds per step of every side."""
    def us(r, side):
        m, p = r.get(f"{side}_median_us"), r.get(f"{side}_p99_us")
        return "-" if m is None else f"{m:,.0f} / {p:,.0f}"

    def ratio(v):
        return "-" if v is None else f"{v:.2f}"

    head = "| cell | H | layers | rnnlab | StreamingLM | torch cells | torch nn.RNN | onnxruntime | products | " \
           "ratio_torch | ratio_onnxruntime | step / products | StreamingLM: ratio_torch | ratio_onnxruntime | " \
           "step / products |"
    lines = [head, "|" + "---|" * 3 + "---:|" * 12]
    for r in results:
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['layers']} | {us(r, 'rnnlab')} | {us(r, 'rnnlab_stream')} | "
                     f"{us(r, 'torch_cells')} | {us(r, 'torch_rnn')} | {us(r, 'onnxruntime')} | {us(r, 'products')} | "
                     f"{ratio(r['ratio_torch'])} | {ratio(r['ratio_onnxruntime'])} | "
                     f"{ratio(r['step_over_products'])} | {ratio(r['stream_ratio_torch'])} | "
                     f"{ratio(r['stream_ratio_onnxruntime'])} | {ratio(r['stream_step_over_products'])} |")
    if results:
        r = results[0]
        lines += ["", "microseconds per step, median / p99, batch 1, one token with its state; "
                  f"{r['steps_per_side']} steps per side; threads: rnnlab and onnxruntime {r['threads']}, "
                  f"torch {r['torch_threads']}",
                  f"machine: {r['machine']['cpu']}, {r['machine']['cores']} cores; BLAS {r['blas'].get('name')} "
                  f"{r['blas'].get('version', '')}; torch {r['versions'].get('torch')}, onnxruntime "
                  f"{r['versions'].get('onnxruntime')}"]
        lines += [f"note: {n}" for n in dict.fromkeys(n for res in results for n in res["notes"])]
    return "\n".join(lines)
