"""The ``numnet`` command (also ``python -m numnet``).

    numnet                         the notebook, cell by cell (same as `numnet walkthrough`)
    numnet walkthrough [--device cpu|cuda]
    numnet parity [--device cpu|cuda|all] [--seed N]     needs torch

Only argparse is imported up front, so ``numnet --help`` answers at once; each command
imports what it needs.
"""
import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="numnet",
        description="A neural network's arithmetic as readable Numba kernels, checked against PyTorch.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    walk = commands.add_parser(
        "walkthrough",
        help="replay the notebook 'Part 1 - Tensors in PyTorch' with numnet alone",
        description="Replay the notebook cell by cell with numnet's generator and ops; "
        "tensors print exactly as torch prints them.",
    )
    walk.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                      help="run the cells on the CPU kernels or the CUDA kernels (default: cpu)")
    parity = commands.add_parser(
        "parity",
        help="every op of each path against torch, as a table (needs torch)",
        description="Run every op of each path against torch on the notebook's tensors and "
        "on random shapes and values, and numnet's generator against torch's. Prints a "
        "table; exits 0 only if every row passes.",
    )
    parity.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="which path to check; 'all' runs every path that can run here (default)")
    parity.add_argument("--seed", type=int, default=0, help="seed of the random cases (default: 0)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command in (None, "walkthrough"):
        from numnet.walkthrough import run

        run(device=getattr(args, "device", "cpu"))
        return 0
    if args.command == "parity":
        from numnet.parity import run

        return run(device=args.device, seed=args.seed)
    return 2


if __name__ == "__main__":
    sys.exit(main())
