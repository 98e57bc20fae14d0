"""docs/ARCHITECTURE.md is true: its import rules hold and its tree names the modules there are.

Imports are read from the source (``ast``), at module level and inside functions alike: a
function-level import is still an arrow between packages.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "rnnlab"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

# (importer, imported): the arrows docs/ARCHITECTURE.md ("Imports") rules out. Each side is a
# part of the package: a subpackage ("models") or a top-level module ("checkpoint").
FORBIDDEN = [("models", "train"), ("models", "cli"), ("train", "cli"),
             ("checkpoint", "models"), ("checkpoint", "train"), ("checkpoint", "cli"),
             ("layers", "models"), ("layers", "checkpoint"), ("layers", "train"), ("layers", "cli"),
             ("data", "models"), ("data", "train"), ("data", "cli")]
# optional packages imported only inside the functions that need them
OPTIONAL = ("torch", "onnx", "onnxruntime", "h5py", "mpi4py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """rnnlab.models.lm -> "models"; rnnlab.checkpoint -> "checkpoint"; rnnlab -> ""."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@functools.lru_cache(maxsize=None)
def imports(path: Path) -> tuple:
    """(imported module, inside a function?) for every import statement of ``path``; relative
    imports resolved; ``from a import b`` gives both a and a.b (b may be a module)."""
    return tuple(_imports(path))


def _imports(path: Path):
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(inner) for inner in ast.walk(node) if inner is not node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            yield name, id(node) in in_function


MODULES = sorted(SRC.rglob("*.py"))


@functools.lru_cache(maxsize=None)
def arrows() -> frozenset:
    """(importer part, imported part) over the whole package."""
    found = set()
    for path in MODULES:
        for name, _ in imports(path):
            if name == "rnnlab" or name.startswith("rnnlab."):
                found.add((part_of(module_name(path)), part_of(name), module_name(path), name))
    return frozenset(found)


def test_the_import_reader_sees_function_level_and_relative_imports():
    found = dict(imports(SRC / "models" / "base.py"))
    assert found["rnnlab.checkpoint"] is True          # `from ..checkpoint import save_checkpoint` in save()
    assert found["rnnlab.layers.base"] is False        # module level
    assert part_of("rnnlab.train.fit") == "train" and part_of("rnnlab.checkpoint") == "checkpoint"


@pytest.mark.parametrize("importer, imported", FORBIDDEN, ids=[f"{a}->{b}" for a, b in FORBIDDEN])
def test_no_forbidden_arrow(importer, imported):
    offending = sorted(f"{module} imports {name}" for a, b, module, name in arrows()
                       if a == importer and b == imported)
    assert not offending, f"{importer} must not import {imported}: " + "; ".join(offending)


def test_only_cli_imports_cli():
    # ``python -m rnnlab`` (rnnlab/__main__.py) is the command line's other door
    offending = sorted(f"{module} imports {name}" for a, b, module, name in arrows()
                       if b == "cli" and a != "cli" and module != "rnnlab.__main__")
    assert not offending, "; ".join(offending)


def test_xp_is_never_imported_from_backend():
    # backend.xp is read at call time (set_backend switches it); a name imported once would not switch
    offending = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("backend") and \
                    any(alias.name == "xp" for alias in node.names):
                offending.append(module_name(path))
    assert not offending


def test_optional_packages_are_imported_inside_functions():
    offending = sorted(f"{module_name(path)} imports {name} at module level" for path in MODULES
                       for name, in_function in imports(path)
                       if name.split(".")[0] in OPTIONAL and not in_function)
    assert not offending, "; ".join(offending)


# ---- the tree --------------------------------------------------------------------------------


def tree_entries():
    """(path relative to the repository, its description) for each entry of the tree in
    docs/ARCHITECTURE.md: an indented name ending in .py or /, its description running on over
    the lines below it that start further right."""
    block = ARCHITECTURE.read_text(encoding="utf-8").split("```")[1]
    entries, folders = [], {}
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+\.py|\S+/)(?=\s|$)(.*)$", line)
        indent = len(match.group(1)) if match else None
        # entries sit at even indents under their folder; descriptions run on from column 21
        if match and indent % 2 == 0 and indent < 20 and (indent == 0 or indent - 2 in folders):
            folders = {k: v for k, v in folders.items() if k < indent}
            path = "".join(folders[k] for k in sorted(folders)) + match.group(2)
            if path.endswith("/"):
                folders[indent] = match.group(2)
            entries.append([path, match.group(3)])
        elif entries:
            entries[-1][1] += " " + line.strip()
    return [(path, text) for path, text in entries]


def test_the_tree_is_read():
    paths = [path for path, _ in tree_entries()]
    assert "src/rnnlab/" in paths and "src/rnnlab/models/base.py" in paths and "src/rnnlab/train/" in paths


def test_every_module_the_tree_names_exists():
    missing = []
    for path, text in tree_entries():
        if not (ROOT / path).exists():
            missing.append(path)
        # files named in a description: beside the entry (its folder), or under src/rnnlab/
        folder = path if path.endswith("/") else path.rpartition("/")[0] + "/"
        for named in re.findall(r"[\w/]+\.py\b", text):
            if not ((ROOT / folder / named).exists() or (SRC / named).exists()):
                missing.append(f"{named} (in the entry of {path})")
    assert not missing, f"docs/ARCHITECTURE.md names what does not exist: {', '.join(missing)}"


def test_every_module_is_named_in_the_tree():
    """Each module of src/rnnlab is an entry of the tree or named (``name.py``) in its folder's
    text; in the folders the tree describes in prose (data/, bench/, experiments/, cli/: no file
    entries) its name as a word of the folder's text is enough."""
    entries = tree_entries()
    paths = {path for path, _ in entries}
    unnamed = []
    for path in MODULES:
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" or rel in paths:
            continue
        folder = rel.rpartition("/")[0] + "/"
        inside = [(p, t) for p, t in entries if p.startswith(folder) and p.count("/") <= folder.count("/") + 1]
        text = " ".join(t for _, t in inside)
        lists_files = any(p.endswith(".py") for p, _ in inside)
        name = re.escape(path.name) if lists_files else rf"{re.escape(path.stem)}\b"
        if not re.search(rf"(?<![\w.]){name}", text):
            unnamed.append(rel)
    assert not unnamed, f"docs/ARCHITECTURE.md's tree does not name {', '.join(unnamed)}"
