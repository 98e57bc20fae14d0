"""``python -m rnnlab ...``: the ``rnnlab`` command, where the console script is not on PATH."""
import sys

from rnnlab.cli import main

sys.exit(main())
