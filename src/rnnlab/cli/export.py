"""``rnnlab export RUN_DIR|MODEL --format onnx --out model.onnx``: a trained model as ONNX.

    rnnlab export runs/shakespeare --format onnx --out shakespeare.onnx      # a language-model run
    rnnlab export runs/dates --format onnx --out dates.onnx   # dates.encoder.onnx + dates.decoder_step.onnx
    rnnlab export model.npz --format onnx --out clf.onnx      # a saved model (rnnlab's Model.save)
    rnnlab export model.keras --format onnx --out clf.onnx    # a Keras 3 Sequential, via load_keras

From a run folder the vocabulary goes into the ONNX file's metadata (``rnnlab_vocab``, or
``rnnlab_src_vocab`` / ``rnnlab_tgt_vocab``, and ``rnnlab_level``), so the file alone is
enough to generate text (examples/onnx_generate.py). A layer or option with no ONNX form is
refused with one line naming it, exit status 2. The output follows the rule of every command
(``fileio.check_output``): an existing file is replaced only with ``--overwrite``, and never the
command's own input (the model file being converted, a run's checkpoints and other files), even
with ``--overwrite``; every file is checked before anything is written, and written atomically.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

FORMATS = ("onnx",)


def register(ctx) -> None:
    p = ctx.commands.add_parser("export", parents=[ctx.common], help="export a trained model (ONNX)",
                                description="Write a run's model, a saved model (.npz) or a Keras 3 model "
                                            "(.keras) as ONNX.")
    p.add_argument("source", metavar="RUN_DIR|MODEL", help="a run folder of `rnnlab train`, a model .npz, "
                                                           "or a Keras .keras file")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default: onnx)")
    p.add_argument("--out", required=True, help="output file (a seq2seq model writes OUT's stem .encoder.onnx "
                                                "and .decoder_step.onnx)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best", help="which checkpoint of a run")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never the input)")
    p.set_defaults(func=run)


def load_run_model(run_dir, checkpoint: str = "best"):
    """(model, metadata) of a run folder: the one place that knows a run's layout (config.json
    with "task", best.npz / last.npz, the vocabularies), kept small for the trainer refactor."""
    from ..checkpoint import load_checkpoint
    from ..train.lm import run_vocab
    from ..train.run import RunDir
    from ..train.supervised import stored_vocab

    run = RunDir(run_dir, create=False)
    config = run.read_config()
    path = run.best_path if checkpoint == "best" else run.last_path
    if not path.exists():
        path = run.last_path if path == run.best_path else run.best_path
    if not path.exists():
        raise FileNotFoundError(f"{run.path} holds no checkpoint yet (best.npz / last.npz)")
    model = load_checkpoint(path).model
    metadata = {"rnnlab_task": str(config.get("task")), "rnnlab_level": str(config.get("level", ""))}
    # the vocabularies go into the ONNX file as read and checked, never as the bytes found
    if (run.path / "vocab.json").exists():
        metadata["rnnlab_vocab"] = json.dumps(run_vocab(run.path, model, path).to_json(), ensure_ascii=False)
    for key in ("src_vocab", "tgt_vocab"):
        if key in config:
            vocab = stored_vocab(config, key, getattr(model, f"{key}_size"), run.path)
            metadata[f"rnnlab_{key}"] = json.dumps(vocab.to_json(), ensure_ascii=False)
    return model, metadata


def load_source(source, checkpoint: str = "best"):
    """(model, metadata) from a run folder, an rnnlab .npz or a Keras .keras / .weights.h5 file."""
    path = Path(source)
    if path.is_dir():
        return load_run_model(path, checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"no such run folder or model file: {path}")
    if path.suffix.lower() in (".keras", ".h5"):
        from ..interop import load_keras

        return load_keras(path), {"rnnlab_source": path.name}
    from ..checkpoint import load_checkpoint

    return load_checkpoint(path).model, {"rnnlab_source": path.name}


def export(source, out, fmt: str = "onnx", checkpoint: str = "best", overwrite: bool = False) -> dict:
    """Export ``source`` to ``out``; returns {"files": [...], "model": class name}."""
    from ..fileio import check_output
    from ..interop import export_onnx
    from ..train.run import input_files

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    inputs = input_files(source)
    # the input named as output, an empty --out, a folder: refused before a model is read; whether
    # each file written exists is export_onnx's to check (a seq2seq writes OUT's stem files)
    check_output(out, overwrite=True, inputs=inputs)
    model, metadata = load_source(source, checkpoint)
    model.eval()
    files = export_onnx(model, out, metadata=metadata, overwrite=overwrite, inputs=inputs)
    return {"files": [str(f) for f in files], "model": type(model).__name__, "format": fmt}


def run(args) -> dict:
    try:
        result = export(args.source, args.out, args.format, args.checkpoint, args.overwrite)
    except (ValueError, OSError, ImportError) as err:
        # an unsupported layer/option (UnsupportedError), a missing or damaged file, a missing
        # optional package: the user's to fix, so one line and exit status 2
        print(f"rnnlab export: error: {err}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(err)}))
        raise SystemExit(2) from None
    for f in result["files"]:
        print(f"wrote {f}")
    return result
