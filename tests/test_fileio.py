"""fileio.json_default: what json.dumps writes for values it cannot write itself."""
import json
from pathlib import Path

import numpy as np

from rnnlab.fileio import json_default


def test_json_default_writes_numpy_scalars_as_numbers_and_the_rest_as_text():
    row = {"loss": np.float32(0.5), "step": np.int64(7), "ok": np.bool_(True), "path": Path("runs/x")}
    assert json.loads(json.dumps(row, default=json_default)) == {"loss": 0.5, "step": 7, "ok": True,
                                                                   "path": "runs/x"}
