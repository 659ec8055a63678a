"""``python -m tracelab``: the same as the ``tracelab`` command."""

import sys

from tracelab.cli import main

if __name__ == "__main__":
    sys.exit(main())
