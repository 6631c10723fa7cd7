"""numnet.forward on the notebook's 1x3 -> 2 -> 1 network against torch eager.

Run: python -m benchmarks.bench_forward  (needs torch: pip install -e '.[test]')

Timed by numnet.commands.bench.measure, as every row of ``numnet bench``: each repeat times a
block of calls of numnet, then of each other, interleaved in the same process, and
records each one's ratio to numnet; the median ratio over the repeats is reported, so
that a noisy neighbour slowing one block shifts one ratio, not the result.
"""

import argparse
import statistics

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)

    import torch

    import numnet
    from numnet.commands import bench

    x, tlayers = bench.notebook_network(torch)
    (W1, B1), (W2, B2) = tlayers
    xn = x.numpy()
    layers = [(W.numpy(), b.numpy()) for W, b in tlayers]
    assert numnet.forward(xn, layers).tobytes() == bench.torch_forward(torch, x, tlayers).numpy().tobytes()
    fns = {
        "numnet.forward": lambda: numnet.forward(xn, layers),
        "torch eager (addmm + sigmoid)": lambda: bench.torch_forward(torch, x, tlayers),
        "torch as in the notebook": lambda: (
            1 / (1 + torch.exp(-(torch.mm(1 / (1 + torch.exp(-(torch.mm(x, W1) + B1))), W2) + B2)))
        ),
        "numpy (np.dot, for scale)": lambda: (
            1
            / (
                1
                + np.exp(
                    -(np.dot(1 / (1 + np.exp(-(np.dot(xn, layers[0][0]) + layers[0][1]))), layers[1][0]) + layers[1][1])
                )
            )
        ),
    }
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"median of {args.repeats} interleaved repeats of {args.calls} calls"
    )
    timing = bench.measure(
        fns, args.repeats, calls_per_block=args.calls, settle={"numpy (np.dot, for scale)": bench.SETTLE["numpy"]}
    )
    for name in fns:
        seconds = statistics.median(timing["times"][name])
        ratio = statistics.median(timing["ratios"][name])
        verdict = "" if name == "numnet.forward" else f"   numnet is {ratio:5.2f}x faster"
        print(f"  {name:32s} {seconds * 1e6:8.2f} us/call{verdict}")


if __name__ == "__main__":
    main()
