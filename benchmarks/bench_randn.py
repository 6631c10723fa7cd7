"""numnet.random.randn against torch.randn, in one process.

Prints the median over interleaved repeats of each one's time for one call, and the
ratio torch_time / numnet_time (>= 1 means numnet is at least as fast). Needs torch.
Timed by numnet.commands.bench.measure, as every row of ``numnet bench``.

    python benchmarks/bench_randn.py [--n 1000000] [--repeats 31] [--dtype float32]
"""

import argparse
import statistics

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=31)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = p.parse_args(argv)

    import torch

    import numnet.random as nr
    from numnet.commands import bench

    np_dtype, torch_dtype = np.dtype(args.dtype), getattr(torch, args.dtype)
    ours = lambda: nr.randn(args.n, dtype=np_dtype)  # noqa: E731
    theirs = lambda: torch.randn(args.n, dtype=torch_dtype)  # noqa: E731
    nr.manual_seed(0)
    torch.manual_seed(0)
    assert ours().tobytes() == theirs().numpy().tobytes(), "not the same numbers: timing is moot"

    timing = bench.measure({"numnet": ours, "torch": theirs}, args.repeats, calls_per_block=1, settle={})
    m_ours, m_theirs = (statistics.median(timing["times"][n]) for n in ("numnet", "torch"))
    ratio = statistics.median(timing["ratios"]["torch"])
    print(
        f"randn({args.n}) {args.dtype}: numnet {m_ours * 1e3:.3f} ms, torch {m_theirs * 1e3:.3f} ms "
        f"(torch threads: {torch.get_num_threads()}, median of {args.repeats})"
    )
    print(f"speed ratio torch_time/numnet_time = {ratio:.2f}x (target >= 0.5)")


if __name__ == "__main__":
    main()
