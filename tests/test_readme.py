"""The README is the front door: it starts with the two commands a new user runs (CI runs the
second verbatim), stays short, shows a training loop that is the tested example's own code, and
every file it links to exists."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", README, flags=re.S)


def test_readme_starts_with_demo_then_test_command():
    commands = readme_commands()
    assert commands[0].endswith("rnnlab demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands()[1] in ci


def test_the_readme_test_command_runs_every_tier():
    # the fast tier is a developer's tip; what a new machine and CI run deselects nothing
    pytest_args = readme_commands()[1].split("python -m pytest", 1)[1].split()
    assert not {"-m", "-k", "--deselect", "--ignore"} & set(pytest_args), pytest_args
    assert 'python -m pytest -m "not slow"' in README


def test_readme_is_a_front_door():
    assert len(README.splitlines()) <= 300


def test_readme_training_loop_is_the_tested_example():
    example = (ROOT / "examples" / "train_lstm.py").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.+?)\n```", README, flags=re.S)
    shown = [b for b in blocks if "clip_grad_norm" in b]
    assert len(shown) == 1
    # the README shows the example's code as it is, blank lines between definitions aside
    squeeze = lambda text: re.sub(r"\n{2,}", "\n", text)   # noqa: E731
    assert squeeze(shown[0]) in squeeze(example)
    for step in ("model.forward", "loss_fn.forward", "model.backward", "clip_grad_norm", "opt.step"):
        assert step in shown[0], step


def test_every_link_of_the_readme_and_docs_exists():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
