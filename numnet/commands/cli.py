"""The ``numnet`` command (also ``python -m numnet``): its argument parser, and which
module of numnet/commands/ runs each subcommand.

    numnet                         the notebook, cell by cell (same as `numnet walkthrough`)
    numnet walkthrough [--device cpu|cuda]
    numnet parity [--device cpu|cuda|all] [--seed N]     needs torch
    numnet bench [--quick] [--busy] [--plot FILE.png] [--json FILE] needs torch
    numnet train [--data digits|mnist] [--plot FILE.png]
    numnet gpu-report [--quick] [--json FILE]     every op on this GPU: correct? how fast?
    numnet cache [--clear]         where the compiled code lives, and its size

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
    walk.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="run the cells on the CPU kernels or the CUDA kernels (default: cpu)",
    )
    parity = commands.add_parser(
        "parity",
        help="every op of each path against torch, as a table (needs torch)",
        description="Run every op of each path against torch on the notebook's tensors and "
        "on random shapes and values, and numnet's generator against torch's. Prints a "
        "table; exits 0 only if every row passes.",
    )
    parity.add_argument(
        "--device",
        choices=["cpu", "cuda", "all"],
        default="all",
        help="which path to check; 'all' runs every path that can run here (default)",
    )
    parity.add_argument("--seed", type=int, default=0, help="seed of the random cases (default: 0)")

    # -- bench (numnet/commands/bench.py) --
    bench = commands.add_parser(
        "bench",
        help="numnet against numpy and torch, op by op, as speed ratios (needs torch)",
        description="Time every op of numnet against numpy and torch on the CPU (and "
        "numnet.cuda against torch on a GPU when one is present) over a range of sizes: "
        "median of interleaved repeats in one process, after warm-up and compilation.",
    )
    bench.add_argument("--quick", action="store_true", help="a few small sizes, a few seconds (for CI)")
    bench.add_argument("--plot", metavar="FILE.png", help="also draw a chart (needs matplotlib)")
    bench.add_argument("--json", metavar="FILE", help="also write the raw numbers as JSON")
    bench.add_argument(
        "--compare",
        action="store_true",
        help="list every row more than 10%% slower than the result kept for this CPU "
        "in benchmarks/results/<cpu-model>.json",
    )
    bench.add_argument(
        "--busy",
        action="store_true",
        help="keep one CPU busy with another process while timing the CPU rows "
        "(a learner's laptop); adds each op's slowest single calls",
    )
    bench.add_argument(
        "--device",
        choices=["cpu", "cuda", "all"],
        default="all",
        help="which path to time; 'all' times every path that can run here (default)",
    )
    # -- end bench --

    # -- train (numnet/commands/train.py) --
    def _positive(text):
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
        return int(text)

    def _rate(text):
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
        return value

    def _widths(text):
        parts = text.split(",") if text else []
        if not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
            raise argparse.ArgumentTypeError(f"expected widths like 64 or 128,64, got {text!r}")
        return [int(p) for p in parts]

    train = commands.add_parser(
        "train",
        help="train a classifier on handwritten digits with numnet's own backward pass",
        description="Train a small network with numnet.loss_and_grads and numnet.SGD on the "
        "8x8 digits bundled with scikit-learn (or MNIST IDX files you already have), "
        "with a held-out test split.",
    )
    train.add_argument(
        "--data",
        choices=["digits", "mnist"],
        default="digits",
        help="digits: scikit-learn's 1797 8x8 images, 20%% held out (default); mnist: the four IDX files in --path",
    )
    train.add_argument("--path", metavar="DIR", help="folder with the MNIST IDX files (--data mnist)")
    train.add_argument("--plot", metavar="FILE.png", help="also draw the loss and accuracy curves")
    train.add_argument("--epochs", type=_positive, default=20, help="passes over the training set (default: 20)")
    train.add_argument("--batch-size", type=_positive, default=64, help="images per SGD step (default: 64)")
    train.add_argument("--lr", type=_rate, default=0.1, help="learning rate (default: 0.1)")
    train.add_argument("--momentum", type=_rate, default=0.9, help="SGD momentum, torch's convention (default: 0.9)")
    train.add_argument(
        "--hidden", type=_widths, default=[64], metavar="N[,N...]", help="widths of the hidden layers (default: 64)"
    )
    train.add_argument(
        "--activation",
        choices=["relu", "tanh", "sigmoid"],
        default="relu",
        help="activation of the hidden layers (default: relu)",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the weights (numnet.manual_seed), the split and the batches (default: 0)",
    )
    train.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="numnet's CPU kernels or numnet.cuda (default: cpu)"
    )
    # -- end train --

    # -- gpu-report (numnet/commands/gpu_report.py) --
    report = commands.add_parser(
        "gpu-report",
        help="every numnet.cuda op on this machine's GPU: correct against the CPU and torch, how fast",
        description="On an NVIDIA GPU: check every numnet.cuda op against numnet's CPU path and torch "
        "(when a CUDA build is installed), and time it: GB/s or GFLOP/s against the device's peak, "
        "and against torch (TF32 off). One table, about a minute; installs nothing.",
    )
    report.add_argument("--quick", action="store_true", help="smaller sizes, a few seconds")
    report.add_argument("--json", metavar="FILE", help="also write the table and the device's figures as JSON")
    # -- end gpu-report --

    cache = commands.add_parser(
        "cache",
        help="where numnet keeps its compiled code, and how much (--clear empties it)",
        description="Show numnet's compiled-code cache: its folder, the directory for this "
        "numnet's sources and numba version, older ones kept beside it, their sizes.",
    )
    cache.add_argument("--clear", action="store_true", help="delete all of it (the next run compiles again)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command in (None, "walkthrough"):
        from numnet.commands.walkthrough import run

        run(device=getattr(args, "device", "cpu"))
        return 0
    if args.command == "parity":
        from numnet.commands.parity import run

        return run(device=args.device, seed=args.seed)
    if args.command == "bench":
        from numnet.commands.bench import main as bench_main

        return bench_main(args)
    if args.command == "train":
        from numnet.commands.train import main as train_main

        return train_main(args)
    if args.command == "gpu-report":
        from numnet.commands.gpu_report import main as gpu_report_main

        return gpu_report_main(args)
    if args.command == "cache":
        from numnet.commands.cache import run as cache_run

        return cache_run(args.clear)
    return 2


if __name__ == "__main__":
    sys.exit(main())
