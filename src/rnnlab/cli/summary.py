"""``rnnlab summary CONFIG [--json]``: print a model's Keras summary table.

CONFIG is a model config file, JSON (``.json``) or YAML (``.yaml``/``.yml``), holding
``{"class_name": ..., "config": ...}`` (the ``model`` entry that ``save`` writes into a
checkpoint's ``__meta__``; a whole ``__meta__`` object with a ``"model"`` key works too), or a
checkpoint file (``.npz``). See examples/configs/. The model is built from the config alone
(an ``Input`` layer, or a ``build_input_shape``, gives the shapes); no data is needed.
"""
from __future__ import annotations

import sys
from pathlib import Path


def register(ctx) -> None:
    parser = ctx.commands.add_parser(
        "summary", parents=[ctx.common], help="print a model's summary table (Keras style)",
        description="Print the layer table of a model given by a JSON/YAML config file or a checkpoint.")
    parser.add_argument("config", metavar="CONFIG",
                        help="model config (.json, .yaml, .yml) or checkpoint (.npz)")
    parser.set_defaults(func=run)


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def read_model_spec(path) -> dict:
    """``{"class_name", "config"}`` from a JSON or YAML file; errors name the file."""
    from ..configfiles import parse_json, parse_yaml, read_capped

    path = Path(path)
    try:
        text = read_capped(path).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    spec = parse_yaml(text, str(path)) if is_yaml else parse_json(text, str(path))
    if isinstance(spec, dict) and "class_name" not in spec and isinstance(spec.get("model"), dict):
        spec = spec["model"]  # a checkpoint's whole __meta__ object
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"{path}: expected a model config {{\"class_name\": ..., \"config\": {{...}}}}, "
                         f"got {type(spec).__name__}"
                         + (f" with keys {sorted(map(str, spec))}" if isinstance(spec, dict) else ""))
    return spec


def load_model(path):
    """The model a config file or a checkpoint describes (a checkpoint brings its weights). A
    config's model is a plan (``layers.base.planning``): its table needs shapes, not memory, so
    a config asking for billions of weights is summarised without allocating them."""
    from ..checkpoint import load_checkpoint, model_from_config
    from ..layers.base import planning

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory: give a model config file or a checkpoint (.npz)")
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() == ".npz" or _is_zip(path):
        return load_checkpoint(path).model
    spec = read_model_spec(path)
    try:
        with planning():
            return model_from_config(spec)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:
        raise ValueError(f"{path}: cannot build the model from this config: {err}") from err


def run(args) -> dict:
    model = load_model(args.config)
    if not hasattr(model, "summary_dict"):
        raise ValueError(f"{args.config}: describes a {type(model).__name__} layer, not a model")
    model.summary(print_fn=lambda line: print(line, file=sys.stdout))
    result = model.summary_dict()
    for row in result["layers"]:
        if isinstance(row["output_shape"], tuple):
            row["output_shape"] = list(row["output_shape"])
    return result
