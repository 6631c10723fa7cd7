"""The product rows of ``numnet bench`` (mm, linear, forward, train step), alone: for
iterating on numnet.kernels' products without the whole run.

Run: python -m benchmarks.bench_products [--repeats 9] [--only linear,train]

Each row is built and timed by numnet.bench itself (interleaved repeats, median ratios
in one process), so its figures read like the full run's.
"""

import argparse
import os
import statistics

SIZES = {
    "mm": [1024, 2048],
    "mm float64": [1024],
    "linear": [(n, 784, m) for n in (16, 64, 512) for m in (128, 256)],
    "forward": [(4096, 784, 256, 10)],
    "train step": [(64, 784, 128, 64, 10), (512, 784, 128, 64, 10), (64, 64, 64, 10)],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", default="", help="comma-separated ops (prefixes): mm,linear,forward,train")
    args = parser.parse_args(argv)
    import torch

    from numnet import bench

    wanted = [w for w in args.only.split(",") if w]
    sizes = {op: s for op, s in SIZES.items() if not wanted or any(op.startswith(w) for w in wanted)}
    bench._sizes = lambda quick, busy=False: sizes  # the rows above, built by bench's own factories
    rows = bench.run_cases(
        "cpu",
        bench.cpu_cases(torch, False),
        args.repeats,
        0.05,
        bench.SETTLE,
        lambda: None,
        lambda label, total: lambda n: None,
    )
    print(
        f"load average {os.getloadavg()[0]:.2f}; median of {args.repeats} interleaved repeats; "
        "ratio = other's time / numnet's"
    )
    for row in rows:
        if "mismatch" in row:
            print(f"  {row['op']:11s} {row['size']:28s} MISMATCH {row['mismatch']}")
            continue
        ratios = "  ".join(
            f"{name} {statistics.median(r):5.2f}x" for name, r in row["ratios"].items() if name != "numnet"
        )
        print(f"  {row['op']:11s} {row['size']:28s} {row['rate']:7.1f} {row['unit']:8s} {ratios}")


if __name__ == "__main__":
    main()
