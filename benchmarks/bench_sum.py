"""numnet.sum of 10^7 float32 (or float64) against torch.sum and numpy.sum, in one process.

Run: python -m benchmarks.bench_sum [--n N] [--dtype float64] [--repeats R] [--torch-threads T]  (needs torch)

Each repeat calls numnet, torch and numpy once each, in turn (interleaved), after a
warm-up; the medians are reported with the machine's load and CPU, and whether
numnet's result is torch's, bit for bit (torch.get_num_threads() threads).
"""

import argparse
import os
import statistics
import time

import numpy as np


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads first")
    args = parser.parse_args(argv)

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    import numnet

    x = np.random.default_rng(0).standard_normal(args.n).astype(args.dtype)
    t = torch.from_numpy(x)
    threads = torch.get_num_threads()
    calls = {
        # As a user calls it: torch's own thread count unless --torch-threads changed it.
        "numnet": (lambda: numnet.sum(x, torch_threads=threads)) if args.torch_threads else (lambda: numnet.sum(x)),
        "torch": lambda: torch.sum(t),
        "numpy": lambda: np.sum(x),
    }
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
        time.sleep(0.01)
    same = numnet.sum(x, torch_threads=torch.get_num_threads()).tobytes() == torch.sum(t).numpy().tobytes()
    print(
        f"sum of {args.n} {args.dtype}, median of {args.repeats} interleaved calls; {cpu_name()}, "
        f"load {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}"
    )
    ours = statistics.median(times["numnet"])
    for name, ts in times.items():
        median = statistics.median(ts)
        print(
            f"  {name:7} {median * 1e3:7.2f} ms  {x.nbytes / median / 1e9:6.1f} GB/s  "
            f"their time / numnet's: {median / ours:.2f}"
        )
    print(f"  numnet's bits are torch.sum's: {same}")


if __name__ == "__main__":
    main()
