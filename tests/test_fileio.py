"""fileio.json_default: what json.dumps writes for values it cannot write itself."""
import json
from pathlib import Path

import numpy as np

from rnnlab.fileio import json_default


def test_json_default_writes_numpy_scalars_as_numbers_and_the_rest_as_text():
    row = {"loss": np.float32(0.5), "step": np.int64(7), "ok": np.bool_(True), "path": Path("runs/x")}
    assert json.loads(json.dumps(row, default=json_default)) == {"loss": 0.5, "step": 7, "ok": True,
                                                                   "path": "runs/x"}


def test_split_lines_breaks_at_newlines_only():
    from rnnlab.fileio import split_lines

    assert split_lines("a\u2028b\u0085c\x0cd\x1ce\tf\r\ng\n") == ["a\u2028b\u0085c\x0cd\x1ce\tf", "g"]
    assert split_lines("a\n\nb") == ["a", "", "b"] and split_lines("") == [] and split_lines("\n") == [""]
