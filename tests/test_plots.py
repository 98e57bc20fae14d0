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


def test_confusion_matrix_and_captions_png(tmp_path):
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    path = plots.plot_confusion_matrix(matrix, ["neg", "pos", "mid"], tmp_path / "cm.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"\(3, 3\) does not match 2 labels"):
        plots.plot_confusion_matrix(matrix, ["a", "b"], tmp_path / "x.png")
    images = np.random.default_rng(0).random((5, 8, 32))
    path = plots.plot_captions(images, ["one two"] * 5, tmp_path / "cap.png", references=["one two"] * 4 + ["six"])
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="4 captions for images of shape"):
        plots.plot_captions(images, ["a"] * 4, tmp_path / "y.png")


def test_plot_or_warn_keeps_going_without_matplotlib(tmp_path, monkeypatch):
    def missing():
        raise RuntimeError("plotting needs matplotlib: pip install 'rnnlab[plot]'")

    monkeypatch.setattr(plots, "_pyplot", missing)
    with pytest.warns(UserWarning, match="no figure .*cm.png.*needs matplotlib"):
        result = plots.plot_or_warn(plots.plot_confusion_matrix, np.eye(2), ["a", "b"], tmp_path / "cm.png")
    assert result is None and not (tmp_path / "cm.png").exists()


def test_a_last_resort_font_is_no_font_for_korean_and_the_plot_says_so(monkeypatch):
    """matplotlib's LastResortHE claims all of Unicode in its character map but draws one box per
    block: it must not be chosen for Hangul, and the missing glyphs must be reported with a font
    to install."""
    import warnings
    from pathlib import Path

    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    last_resort, dejavu = str(fonts / "LastResortHE-Regular.ttf"), str(fonts / "DejaVuSans.ttf")
    monkeypatch.setattr(plots, "_warned_missing", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert plots.glyph_font(["안녕하세요", "hello"], candidates=[last_resort]) is None
    assert len(caught) == 1 and "fonts-noto-cjk" in str(caught[0].message) and "안" in str(caught[0].message)
    assert plots._covers(dejavu, set("hello"))               # a real font still passes
    assert not plots._covers(last_resort, set("가나"))         # two syllables, one box
