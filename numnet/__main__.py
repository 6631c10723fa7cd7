"""``python -m numnet``: the ``numnet`` command (numnet/commands/cli.py)."""

import sys

from numnet.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
