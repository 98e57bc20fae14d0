"""Test helper: run Python code in a child process whose address space is capped (import from
tests). Issue 29 asks that no crafted input take more than 1 GiB: the cap is 1 GiB above what
the child's interpreter holds once its imports are done, so an allocation past it fails there
(MemoryError) instead of swapping the machine, and the test sees what the code printed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

CAP_BYTES = 1 << 30

_PREAMBLE = """
import json, resource, sys
{imports}
with open("/proc/self/status") as f:
    base = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (base + {cap}, resource.RLIM_INFINITY))
"""


def run_capped(code: str, imports: str = "import numpy, rnnlab", cap: int = CAP_BYTES, timeout: float = 300):
    """What ``code`` prints as JSON on its last line of stdout, run after ``imports`` under an
    address-space cap of ``cap`` bytes above the interpreter's size then. A child that fails
    (a MemoryError past the cap included) fails the test with its stderr."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    source = _PREAMBLE.format(imports=imports, cap=cap) + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, f"the capped child failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
