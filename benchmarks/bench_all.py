"""Every op of numnet against numpy and torch: the code of ``numnet bench``, as a script.

Run: python -m benchmarks.bench_all [--quick] [--device cpu|cuda|all] [--json FILE] [--plot FILE.png]

numnet/commands/bench.py holds the cases, the timing (interleaved blocks, medians of per-repeat
ratios) and the table; this file only passes its arguments to ``numnet bench``.
"""

import sys

from numnet.commands.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
