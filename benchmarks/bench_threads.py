"""When do threads pay? The figures behind numnet's thread policy (numnet/_jit.py:
threads, numnet/kernels.py: PARALLEL_MIN, PARALLEL_LARGE), on this machine.

    python -m benchmarks.bench_threads

For products of growing size, the median time of numnet's blocked kernel (linear_act_kernel,
float32) on one thread and on all of them:

- "in a burst": back-to-back calls (a training loop): numba's workers are awake;
- "alone": each call after 50 ms of idleness (a notebook cell): the workers have gone to
  sleep and the threaded call must wake them first.

With --busy, a process spinning on one CPU runs alongside (a learner's laptop).
"""

import statistics
import sys
import time

import numpy as np

from numnet import kernels as K

SIZES = [(64, 64, 64), (64, 128, 64), (16, 784, 128), (64, 784, 128), (512, 784, 128), (1024, 1024, 1024)]


def median_seconds(fn, calls, idle=0.0):
    fn()
    times = []
    for _ in range(calls):
        if idle:
            time.sleep(idle)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    busy = "--busy" in sys.argv
    spinner = None
    if busy:
        from numnet.commands.bench import start_busy_core

        spinner = start_busy_core()
    rng = np.random.default_rng(0)
    threads = K.THREADS
    print(
        f"numnet's blocked product, float32, 1 vs {threads} threads; median us per call"
        + (" (one CPU kept busy by another process)" if busy else "")
    )
    print(
        f"{'size':>18} {'MACs':>8} {'burst 1':>9} {'burst ' + str(threads):>9} {'alone 1':>9} {'alone ' + str(threads):>9}"
    )
    try:
        for n, k, m in SIZES:
            x = rng.standard_normal((n, k), np.float32)
            W = rng.standard_normal((k, m), np.float32)
            b = np.zeros(m, np.float32)
            out = np.empty((n, m), np.float32)
            calls = max(5, min(300, int(2e9 / (n * k * m))))
            row = []
            for idle in (0.0, 0.05):
                for t in (1, threads):
                    row.append(
                        median_seconds(
                            lambda x=x, W=W, b=b, out=out, t=t: K.linear_act_kernel(x, W, b, out, K.IDENTITY, t),
                            calls if not idle else min(calls, 20),
                            idle,
                        )
                    )
            print(f"{f'{n}x{k} @ {k}x{m}':>18} {n * k * m / 1e6:>7.2g}M " + " ".join(f"{s * 1e6:>9.0f}" for s in row))
    finally:
        if spinner is not None:
            spinner.terminate()


if __name__ == "__main__":
    main()
