import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install 'rnnlab[plot]')")
from rnnlab import plots  # noqa: E402


def test_plot_curves_and_attention_write_png(tmp_path):
    rows = [{"epoch": 1, "train_loss": 2.0, "valid_loss": 2.1}, {"epoch": 2, "train_loss": 1.5, "valid_loss": 1.7}]
    path = plots.plot_curves(rows, tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    weights = np.eye(3)[:, ::-1]
    path = plots.plot_attention(weights, list("abc"), list("xyz"), tmp_path / "a.png", title="t")
    assert path.stat().st_size > 1000


def test_plot_attention_checks_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(2, 3\).*3 target and 2 source"):
        plots.plot_attention(np.zeros((2, 3)), ["a", "b"], ["x", "y", "z"], tmp_path / "a.png")
