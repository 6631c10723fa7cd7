"""numnet.forward on the notebook's 1x3 -> 2 -> 1 network against torch eager.

Run: python -m benchmarks.bench_forward  (needs torch: pip install -e '.[test]')

Both sides are called from Python, interleaved in the same process: each repeat times a
block of calls of numnet, then a block of torch, and the ratio of the two is recorded;
the median ratio over the repeats is reported, so that a noisy neighbour slowing one
block shifts one ratio, not the result.
"""
import argparse
import statistics
import time

import numpy as np


def per_call_seconds(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved(fns, repeats, calls):
    """Median seconds per call of each fn, and median ratio of each to the first."""
    for fn in fns.values():  # warm-up: compile, fill caches
        per_call_seconds(fn, calls)
    times = {name: [] for name in fns}
    ratios = {name: [] for name in fns}
    for _ in range(repeats):
        block = {name: per_call_seconds(fn, calls) for name, fn in fns.items()}
        base = next(iter(block.values()))
        for name, seconds in block.items():
            times[name].append(seconds)
            ratios[name].append(seconds / base)
    return {name: (statistics.median(times[name]), statistics.median(ratios[name])) for name in fns}


def notebook_network():
    import torch

    torch.manual_seed(7)
    x = torch.randn((1, 3))
    W1, W2 = torch.randn(3, 2), torch.randn(2, 1)
    B1, B2 = torch.randn((1, 2)), torch.randn((1, 1))
    return x, W1, W2, B1, B2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)

    import torch

    import numnet

    x, W1, W2, B1, B2 = notebook_network()
    xn = x.numpy()
    layers = [(W1.numpy(), B1.numpy()), (W2.numpy(), B2.numpy())]
    assert numnet.forward(xn, layers).tobytes() == torch.sigmoid(
        torch.addmm(B2, torch.sigmoid(torch.addmm(B1, x, W1)), W2)).numpy().tobytes()
    fns = {
        "numnet.forward": lambda: numnet.forward(xn, layers),
        "torch eager (addmm + sigmoid)": lambda: torch.sigmoid(
            torch.addmm(B2, torch.sigmoid(torch.addmm(B1, x, W1)), W2)),
        "torch as in the notebook": lambda: 1 / (1 + torch.exp(-(torch.mm(
            1 / (1 + torch.exp(-(torch.mm(x, W1) + B1))), W2) + B2))),
        "numpy (np.dot, for scale)": lambda: 1 / (1 + np.exp(-(np.dot(
            1 / (1 + np.exp(-(np.dot(xn, layers[0][0]) + layers[0][1]))), layers[1][0]) + layers[1][1]))),
    }
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"median of {args.repeats} interleaved repeats of {args.calls} calls")
    results = interleaved(fns, args.repeats, args.calls)
    for name, (seconds, ratio) in results.items():
        verdict = "" if name == "numnet.forward" else f"   numnet is {ratio:5.2f}x faster"
        print(f"  {name:32s} {seconds * 1e6:8.2f} us/call{verdict}")


if __name__ == "__main__":
    main()
