"""layers/speed.py: the timed orientation choices a resumed run records and fixes."""
import numpy as np
import pytest

from rnnlab.layers import LSTM, speed


def test_timed_choices_round_trip_and_fixed_choices_are_not_timed_again(monkeypatch):
    monkeypatch.setattr(speed, "_ORIENTATION", {})
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
