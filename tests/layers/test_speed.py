"""layers/speed.py: the timed orientation choices a resumed run records and fixes."""
import numpy as np
import pytest

from rnnlab.layers import LSTM, compiled, speed
from rnnlab.layers.recurrent import _Recurrent


def test_timed_choices_round_trip_and_fixed_choices_are_not_timed_again(monkeypatch):
    monkeypatch.setattr(speed, "_ORIENTATION", {})
    monkeypatch.setattr(compiled, "_choices", {})
    monkeypatch.setattr(_Recurrent, "COMPILED", False)     # the compiled loops: the next test
    calls = []
    monkeypatch.setattr(speed, "time_orientations", lambda *shape: calls.append(shape) or False)
    speed.set_timed_choices({"2,3,12,float32": "transposed", "2,12,3,float32": "plain"})
    assert speed.timed_choices() == {"2,12,3,float32": "plain", "2,3,12,float32": "transposed"}
    layer = LSTM(3, return_sequences=True, seed=0)
    layer.forward(np.ones((2, 4, 5), np.float32))
    layer.backward(np.ones((2, 4, 3), np.float32))
    assert calls == []                       # both products' shapes were fixed: nothing timed
    assert layer._transposed_is_faster(2, 3, 12, "float32") is True


def test_set_timed_choices_names_a_bad_entry():
    with pytest.raises(ValueError, match="'2,3': 'plain' is not of the form"):
        speed.set_timed_choices({"2,3": "plain"})
    with pytest.raises(ValueError, match="'fast'"):
        speed.set_timed_choices({"2,3,12,float32": "fast"})


def test_timed_choices_carry_the_compiled_loops_layouts(monkeypatch):
    """The compiled loops' weight layouts travel in timed_choices under "compiled": set in a new
    process, they are not timed again, and timed_choices lists them again (a resumed run records
    them in its next checkpoint). A record without the entry (older checkpoints) still loads."""
    for name in ("_ORIENTATION",):
        monkeypatch.setattr(speed, name, {})
    monkeypatch.setattr(compiled, "_choices", {})
    monkeypatch.setattr(compiled, "_layouts", {})
    timed = []
    monkeypatch.setattr(compiled, "_time_layouts", lambda *args: timed.append(args) or False)
    recorded = {"2,3,12,float32": "plain",
                "compiled": {"lstm,4,2,3,float32": {"forward": "transposed", "backward": "stored"}}}
    speed.set_timed_choices(recorded)
    assert speed.timed_choices() == recorded
    assert compiled._layouts == {("lstm", "forward", 2, 3, "float32"): True,
                                 ("lstm", "backward", 2, 3, "float32"): False}
    if compiled.available():
        monkeypatch.setattr(_Recurrent, "COMPILED", True)
        monkeypatch.setattr(_Recurrent, "FUSED", True)
        layer = LSTM(3, return_sequences=True, seed=0)
        layer.forward(np.ones((2, 4, 5), np.float32))
        layer.backward(np.ones((2, 4, 3), np.float32))
        assert timed == []
        assert speed.timed_choices()["compiled"]["lstm,4,2,3,float32"]["forward"] == "transposed"
    speed.set_timed_choices({"2,3,12,float32": "plain"})      # the older format
    with pytest.raises(ValueError, match="compiled loop choice"):
        speed.set_timed_choices({"compiled": {"lstm,4": {}}})
