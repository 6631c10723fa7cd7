"""``numnet bench``: numnet's speed against numpy and torch, op by op, as ratios.

Every figure is measured the same way, side by side in this one process:

- each competitor computes the same op on the same data: numnet on numpy arrays, torch
  on tensors that share their memory (``torch.from_numpy``), numpy as one writes it by
  hand (``a @ b``, ``1 / (1 + np.exp(-x))``); on a GPU, gpu-report's cases
  (numnet/commands/gpu_report.py): numnet.cuda on GPU arrays and torch on views of the
  same memory, TF32 off, checked against numnet's CPU op within numnet.testing's bounds;
- before timing, each is called until it has compiled and warmed its caches, and the
  results are compared (a competitor that computes something else is not timed: the
  row says MISMATCH and the command exits 1);
- the competitors are timed side by side by numnet/commands/timing.py (the same core
  as ``numnet gpu-report``): medians of interleaved repeats of blocks of calls, the order
  rotating, each block started warm, with settling pauses between blocks so that one
  library's spinning threads do not slow the next (``SETTLE``); a ratio whose repeats
  spread widely is marked noisy.

A ratio is the competitor's time divided by numnet's: above 1, numnet is faster. Rates
(GFLOP/s, GB/s) are numnet's own, from its median time.

The same code runs as ``python -m benchmarks.bench_all``; ``main(args)`` takes the
arguments that ``numnet bench`` declares (numnet/commands/cli.py). torch, rich (the table
and progress bar) and matplotlib (``--plot``) are imported only when needed.
"""

import json
import math
import os
import platform
import sys
import time

import numpy as np

from numnet.commands import timing
from numnet.commands.timing import NOISE_NOTE, SETTLE, count, measure, medians, rate, seconds

# The targets: (device, op, size, competitor, minimum ratio). For the
# GPU sigmoid the figure is the kernel's bytes per second as a fraction of the GPU's peak
# memory bandwidth (the kernel alone: the op also allocates its output, with cudaMalloc).
# "cpu busy" rows run while another process keeps one core busy (--busy).
TARGETS = [
    *[("cpu", "mm", f"{n}x{n} @ {n}x{n}", against, 0.9) for n in (1024, 2048) for against in ("numpy", "torch")],
    ("cpu", "mm float64", "1024x1024 @ 1024x1024", "numpy", 0.9),
    ("cpu", "forward", "4096x784 -> 256 -> 10", "torch", 1.2),
    ("cpu", "forward", "notebook 1x3 -> 2 -> 1", "torch", 5.0),
    ("cpu", "sigmoid", "10^7", "torch", 1.0),
    ("cpu", "sigmoid kernel", "10^7", "torch", 1.0),
    ("cpu", "sum", "10^7", "torch", 1.0),  # one pass over 40 MB: as fast as torch.sum
    *[
        ("cpu", op, f"{n}x784 -> {m}", against, 1.0)
        for op in ("linear", "forward")
        for n in (16, 64, 512)
        for m in (128, 256)
        for against in ("torch", "numpy")
    ],
    ("cpu", "train step", "784-128-64-10, batch 64", "torch", 2.0),
    ("cpu", "train step", "64-64-10, batch 64", "torch", 4.0),
    ("cpu", "train step", "784-128-64-10, batch 512", "torch", 1.2),
    ("cpu busy", "train step", "784-128-64-10, batch 64", "torch", 1.0),
    ("cuda", "mm", "4096x4096 @ 4096x4096", "torch", 0.5),
    ("cuda", "sigmoid kernel", "10^8", "bandwidth", 0.7),
]

INSTALL_HINT = (
    "numnet bench: needs torch to compare against; install the test extra: "
    "pip install -e '.[test]' (torch==2.13.0, the CPU build)"
)


# -- the cases -----------------------------------------------------------------------------


def _case(op, size, work, unit, calls, check=None):
    """One row: ``calls`` maps competitor -> zero-argument function (numnet first);
    ``work`` is the FLOPs or bytes of one call, ``unit`` its rate's name; ``check``
    compares the results (returns None when they agree, else a message)."""
    return {"op": op, "size": size, "work": work, "unit": unit, "calls": calls, "check": check}


def _close(got, want, rtol=1e-3, atol=1e-4):
    """None when got and want agree within rtol, atol (loose: timing guards, not tests)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return f"shapes differ: {got.shape} and {want.shape}"
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        return f"values differ: max |diff| {np.nanmax(np.abs(got - want)):.3g}"
    return None


def _sizes(quick, busy=False):
    """The sizes of each op: a few small ones with --quick (for CI), the sizes where a
    busy core shows (--busy), else a range."""
    if quick:
        return {
            "sigmoid": [1000],
            "sum": [1000],
            "dot": [1000],
            "mm": [16, 64],
            "linear": [(8, 32, 16)],
            "forward": ["notebook", (64, 32, 16, 4)],
            "randn": [1000],
            "train step": [(16, 32, 16, 4)],
        }
    batches = [(n, 784, m) for n in (16, 64, 512) for m in (128, 256)]
    if busy:
        return {
            "sigmoid": [10**3, 10**5],
            "mm": [64, 256],
            "linear": [(64, 128, 64), *batches[2:4]],
            "forward": ["notebook", (64, 784, 256)],
            "train step": [(64, 784, 128, 64, 10), (64, 64, 64, 10)],
        }
    return {
        "sigmoid": [10**3, 10**5, 10**7],
        "sigmoid kernel": [10**7],
        "sum": [10**3, 10**5, 10**7],
        "dot": [10**3, 10**5, 10**7],
        "mm": [64, 256, 1024, 2048],
        "mm float64": [1024],
        "linear": [(64, 128, 64), (64, 64, 10), *batches, (4096, 784, 256)],
        "forward": ["notebook", *batches, (4096, 784, 256, 10)],
        "randn": [10**3, 10**6],
        "train step": [(64, 784, 128, 64, 10), (512, 784, 128, 64, 10), (64, 64, 64, 10)],
        "train epoch": ["digits"],
    }


def notebook_network(torch):
    """The notebook's seed-7 network: x (1, 3), W1 (3, 2), W2 (2, 1), B1 (1, 2), B2 (1, 1)."""
    torch.manual_seed(7)
    x = torch.randn((1, 3))
    W1, W2 = torch.randn(3, 2), torch.randn(2, 1)
    B1, B2 = torch.randn((1, 2)), torch.randn((1, 1))
    return x, [(W1, B1), (W2, B2)]


def torch_forward(torch, x, layers):
    """torch eager, as one writes it: sigmoid(addmm(b, h, W)) layer by layer."""
    h = x
    for W, b in layers:
        h = torch.sigmoid(torch.addmm(b, h, W))
    return h


def numpy_forward(x, layers):
    """The same network in numpy, as one writes it (``@`` runs OpenBLAS)."""
    h = x
    for W, b in layers:
        h = 1 / (1 + np.exp(-(h @ W + b)))
    return h


def cpu_cases(torch, quick, busy=False):
    """Factories of the CPU rows (each builds its data when called, so that only one
    row's arrays are alive at a time)."""
    import numnet

    rng = np.random.default_rng(0)
    f32 = np.float32

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(f32)

    def sigmoid(n):
        x = randn(n, scale=4.0)
        t = torch.from_numpy(x)
        with np.errstate(over="ignore"):
            calls = {
                "numnet": lambda: numnet.sigmoid(x),
                "numpy": lambda: 1 / (1 + np.exp(-x)),
                "torch": lambda: torch.sigmoid(t),
            }
        return _case(
            "sigmoid", count(n), 8 * n, "GB/s", calls, lambda: _close(numnet.sigmoid(x), torch.sigmoid(t), atol=1e-6)
        )

    def sigmoid_kernel(n):
        """Into a preallocated output: the arithmetic alone, without the allocation (and
        first-touch page faults) of a new result that the op pays."""
        from numnet import kernels

        x = randn(n, scale=4.0)
        t, out, t_out = torch.from_numpy(x), np.empty_like(x), torch.empty(n)

        def numpy_sigmoid():
            np.negative(x, out=out)
            np.exp(out, out=out)
            out.__iadd__(1)
            np.reciprocal(out, out=out)

        with np.errstate(over="ignore"):
            calls = {
                "numnet": lambda: kernels.sigmoid_kernel(x, out, kernels.sigmoid_threads(n)),
                "numpy": numpy_sigmoid,
                "torch": lambda: torch.sigmoid(t, out=t_out),
            }
        return _case("sigmoid kernel", count(n), 8 * n, "GB/s", calls)

    def sum_case(n):
        """numnet.sum: torch.sum's order, so its bits are torch's (the check is exact)."""
        x = randn(n)
        t = torch.from_numpy(x)
        calls = {"numnet": lambda: numnet.sum(x), "numpy": lambda: np.sum(x), "torch": lambda: torch.sum(t)}

        def exact():
            ours = numnet.sum(x, torch_threads=torch.get_num_threads())
            return None if ours.tobytes() == torch.sum(t).numpy().tobytes() else "not torch.sum's bits"

        return _case("sum", count(n), 4 * n, "GB/s", calls, exact)

    def dot(n):
        a, b = randn(n), randn(n)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        calls = {"numnet": lambda: numnet.dot(a, b), "numpy": lambda: np.dot(a, b), "torch": lambda: torch.dot(ta, tb)}
        return _case(
            "dot", count(n), 8 * n, "GB/s", calls, lambda: _close(numnet.dot(a, b), torch.dot(ta, tb), atol=1e-2)
        )

    def mm(n, dtype=f32):
        a, b = randn(n, n).astype(dtype), randn(n, n).astype(dtype)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        calls = {"numnet": lambda: numnet.mm(a, b), "numpy": lambda: a @ b, "torch": lambda: torch.mm(ta, tb)}
        return _case(
            "mm" if dtype == f32 else "mm float64",
            f"{n}x{n} @ {n}x{n}",
            2 * n**3,
            "GFLOP/s",
            calls,
            lambda: _close(numnet.mm(a, b), torch.mm(ta, tb), atol=1e-3 * math.sqrt(n)),
        )

    def linear(shape):
        n, k, m = shape
        x, W, b = randn(n, k), randn(k, m, scale=k**-0.5), randn(m)
        tx, tW, tb = torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b)
        calls = {
            "numnet": lambda: numnet.linear(x, W, b),
            "numpy": lambda: x @ W + b,
            "torch": lambda: torch.addmm(tb, tx, tW),
        }
        return _case(
            "linear",
            f"{n}x{k} -> {m}",
            2 * n * k * m,
            "GFLOP/s",
            calls,
            lambda: _close(numnet.linear(x, W, b), torch.addmm(tb, tx, tW)),
        )

    def forward(shape):
        if shape == "notebook":
            tx, tlayers = notebook_network(torch)
            size, flops = "notebook 1x3 -> 2 -> 1", 2 * (3 * 2 + 2 * 1)
        else:
            n, *widths = shape
            tx = torch.from_numpy(randn(n, widths[0]))
            tlayers = [
                (torch.from_numpy(randn(i, o, scale=i**-0.5)), torch.from_numpy(randn(o)))
                for i, o in zip(widths, widths[1:])
            ]
            size = f"{n}x{widths[0]} -> " + " -> ".join(map(str, widths[1:]))
            flops = 2 * n * sum(i * o for i, o in zip(widths, widths[1:]))
        x = tx.numpy()
        layers = [(W.numpy(), b.numpy()) for W, b in tlayers]
        with np.errstate(over="ignore"):
            calls = {
                "numnet": lambda: numnet.forward(x, layers),
                "numpy": lambda: numpy_forward(x, layers),
                "torch": lambda: torch_forward(torch, tx, tlayers),
            }
        return _case(
            "forward",
            size,
            flops,
            "GFLOP/s",
            calls,
            lambda: _close(numnet.forward(x, layers), torch_forward(torch, tx, tlayers)),
        )

    def randn_case(n):
        generator = np.random.default_rng(0)

        def same_numbers():
            numnet.manual_seed(0)
            torch.manual_seed(0)
            ours, theirs = numnet.randn(n), torch.randn(n).numpy()
            return None if ours.tobytes() == theirs.tobytes() else "not the same numbers as torch"

        calls = {
            "numnet": lambda: numnet.randn(n),
            "numpy": lambda: generator.standard_normal(n, np.float32),  # another generator: for scale
            "torch": lambda: torch.randn(n),
        }
        return _case("randn", count(n), 4 * n, "GB/s", calls, same_numbers)

    def train_step(shape):
        batch, *widths = shape
        x = randn(batch, widths[0])
        y = rng.integers(0, widths[-1], batch)
        steps = training_steps(torch, x, y, widths)
        return _case(
            "train step",
            "-".join(map(str, widths)) + f", batch {batch}",
            6 * batch * sum(i * o for i, o in zip(widths, widths[1:])),
            "GFLOP/s",
            {"numnet": steps["numnet"], "torch": steps["torch"]},
            steps["check"],
        )

    def train_epoch(data):
        from numnet.data import load_digits

        x_train, y_train, _, _ = load_digits()
        widths, batch = [64, 64, 10], 64
        batches = np.array_split(np.arange(len(y_train)), len(y_train) // batch)
        steps = training_steps(torch, x_train, y_train, widths)
        return _case(
            "train epoch",
            f"digits 64-64-10, {len(batches)} batches of {batch}",
            6 * len(y_train) * sum(i * o for i, o in zip(widths, widths[1:])),
            "GFLOP/s",
            {name: (lambda step=steps[name]: [step(b) for b in batches]) for name in ("numnet", "torch")},
        )

    makers = {
        "sigmoid": sigmoid,
        "sigmoid kernel": sigmoid_kernel,
        "sum": sum_case,
        "dot": dot,
        "mm": mm,
        "mm float64": lambda n: mm(n, np.float64),
        "linear": linear,
        "forward": forward,
        "randn": randn_case,
        "train step": train_step,
        "train epoch": train_epoch,
    }
    return [lambda op=op, size=size: makers[op](size) for op, sizes in _sizes(quick, busy).items() for size in sizes]


def training_steps(torch, x, y, widths, lr=0.01, momentum=0.9):
    """One SGD step of a relu classifier of these widths (cross-entropy on the logits), in
    numnet and in torch eager, from the same initial weights: {"numnet": step, "torch":
    step, "check": compare}. step(rows) trains on x[rows], y[rows] (all rows by default).

    numnet's step is SGD.train_step (loss_and_grads, then step, in one compiled call);
    torch's is what one writes: zero_grad, forward through nn.Linear layers and relu,
    cross_entropy, backward, optimizer.step. check() compares the two first losses.
    """
    import numnet
    from numnet.commands.train import init_layers

    layers = init_layers(widths, seed=0)
    model = torch.nn.Sequential(*[m for W, b in layers for m in (torch.nn.Linear(*W.shape), torch.nn.ReLU())][:-1])
    with torch.no_grad():
        for linear, (W, b) in zip(model[::2], layers):
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    ours = numnet.SGD(layers, lr=lr, momentum=momentum)
    theirs = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    every = slice(None)

    def numnet_step(rows=every):  # loss_and_grads and SGD.step in one compiled call
        return ours.train_step(x[rows], y[rows], hidden="relu", output="none", loss="cross_entropy")

    def torch_step(rows=every):
        theirs.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(tx[rows]), ty[rows])
        loss.backward()
        theirs.step()
        return loss

    def check():
        first = numnet.loss_and_grads(x, y, layers, hidden="relu", output="none", loss="cross_entropy")[0]
        with torch.no_grad():
            return _close(first, torch.nn.functional.cross_entropy(model(tx), ty).numpy(), rtol=1e-4)

    return {"numnet": numnet_step, "torch": torch_step, "check": check}


# The GPU rows: (op, size) of numnet gpu-report's cases (numnet/commands/gpu_report.py).
CUDA_PLAN = {
    "quick": [("mm", 64), ("sigmoid", 10**4), ("dot", 10**4), ("linear", (64, 32, 16)), ("forward", (64, 32, 16, 4))],
    "full": [
        ("mm", 1024),
        ("mm", 4096),
        ("sigmoid", 10**6),
        ("sigmoid", 10**8),
        ("sigmoid kernel", 10**8),
        ("dot", 10**7),
        ("linear", (4096, 784, 256)),
        ("forward", (4096, 784, 256, 10)),
    ],
}


def cuda_cases(torch, quick, plan=None):
    """Factories of the GPU rows, built by gpu-report's case builder: numnet.cuda on GPU
    arrays and torch on views of the same memory, TF32 off. The check before timing is
    gpu-report's: numnet.cuda against numnet's CPU op (and torch) within numnet.testing's
    tolerances. ``plan``: [(op, size), ...], CUDA_PLAN's by default."""
    from numnet.commands import gpu_report

    rng = np.random.default_rng(0)
    refs = gpu_report.references(torch)

    def make(op, size):
        case = gpu_report.build_cases({"sigmoid" if op == "sigmoid kernel" else op: size}, torch, rng)[op]()
        calls = {"numnet": case["time_numnet"]}
        if case["time_torch"] is not None:
            calls["torch"] = case["time_torch"]

        def check():
            row = gpu_report.check_case(case, refs)
            failed = [row[k] for k in ("vs_cpu", "vs_torch") if row.get(k, "ok").startswith("FAIL")]
            return "; ".join(failed) or None

        return _case(op, case["size"], case["work"], case["unit"], calls, check if "gpu" in case else None)

    plan = plan or CUDA_PLAN["quick" if quick else "full"]
    return [lambda op=op, size=size: make(op, size) for op, size in plan]


def run_cases(device, factories, repeats, block_seconds, settle, sync, progress, stalls=False):
    """Build, check and time each case; returns the result rows (plain data). With
    ``stalls``, also numnet's median, 99th percentile and slowest single call."""
    rows = []
    for make in factories:
        case = make()
        row = {k: case[k] for k in ("op", "size", "work", "unit")}
        row["device"] = device
        task = progress(f"{device} {case['op']} {case['size']}", repeats)
        problem = case["check"]() if case["check"] else None
        if problem:
            row["mismatch"] = problem
            rows.append(row)
            task(repeats)
            continue
        timing = measure(case["calls"], repeats, block_seconds, settle, sync, tick=lambda task=task: task(1))
        row.update(timing)
        row.update(medians(timing))
        row["rate"] = rate(case["work"], row["median_time"]["numnet"])
        if stalls:
            row["numnet_single_calls"] = dict(zip(("median", "p99", "max"), worst_calls(case["calls"]["numnet"])))
        rows.append(row)
        del case
    return rows


# -- the GPU's memory bandwidth ---------------------------------------------------------------


def gpu_bandwidth(torch=None):
    """The GPU's peak memory bandwidth in GB/s, from its memory clock (kHz) and bus
    width (bits), double data rate; asked of numba, else of torch; None when neither says."""
    try:
        from numba import cuda

        device = cuda.get_current_device()
        clock_khz, bus_bits = device.MEMORY_CLOCK_RATE, device.GLOBAL_MEMORY_BUS_WIDTH
    except Exception:
        try:
            props = torch.cuda.get_device_properties(0)
            clock_khz, bus_bits = props.memory_clock_rate, props.memory_bus_width
        except Exception:
            return None
    return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9 if clock_khz and bus_bits else None


def check_targets(rows, bandwidth=None):
    """Each target of TARGETS with the figure measured for it (None when not run)."""

    def find(t):
        return next(
            (
                r
                for r in rows
                if (r["device"], r["op"], r["size"]) == (t["device"], t["op"], t["size"]) and "median_ratio" in r
            ),
            None,
        )

    def figure(t, row):
        if t["against"] == "bandwidth":
            return row["rate"] / bandwidth if bandwidth else None
        return row["median_ratio"].get(t["against"])  # their time / numnet's

    keys = ("device", "op", "size", "against", "minimum")
    return timing.check_targets([dict(zip(keys, t)) for t in TARGETS], find, figure)


# -- output ----------------------------------------------------------------------------------


def table_rows(rows):
    """The table's cells: op, size, times (numnet, numpy, torch), numnet's rate, and
    numnet's speed relative to numpy and to torch (their time / numnet's)."""
    cells = []
    for r in rows:
        if "mismatch" in r:
            cells.append([r["device"], r["op"], r["size"], "MISMATCH: " + r["mismatch"], "", "", "", "", ""])
            continue
        t, q = r["median_time"], r["median_ratio"]
        single = r.get("numnet_single_calls")
        cells.append(
            [
                r["device"],
                r["op"],
                r["size"],
                *(seconds(t[n]) if n in t else "-" for n in ("numnet", "numpy", "torch")),
                f"{r['rate']:.3g} {r['unit']}",
                *(
                    f"{q[n]:.2f}x" + (" noisy" if n in r.get("noisy", ()) else "") if n in q else "-"
                    for n in ("numpy", "torch")
                ),
                *([f"{seconds(single['p99'])} / {seconds(single['max'])}"] if single else []),
            ]
        )
    return cells


HEADERS = ["device", "op", "size", "numnet", "numpy", "torch", "numnet rate", "vs numpy", "vs torch"]


TITLE = "numnet against numpy and torch: median time per call; 'vs' = their time / numnet's"


def print_table(rows, targets, console=None):
    headers = HEADERS + (["numnet p99 / slowest call"] if any("numnet_single_calls" in r for r in rows) else [])
    unmeasured = sum(t["measured"] is None for t in targets)
    targets = [t for t in targets if t["measured"] is not None]
    notes = ([NOISE_NOTE] if any(r.get("noisy") for r in rows) else []) + (
        [f"{unmeasured} targets are for sizes or devices this run did not time"] if unmeasured else []
    )
    target_cells = [
        [
            t["device"],
            t["op"],
            t["size"],
            f">= {t['minimum']:g}" + (" of peak bandwidth" if t["against"] == "bandwidth" else f"x {t['against']}"),
            f"{t['measured']:.2f}",
            timing.verdict(t),
        ]
        for t in targets
    ]
    timing.write_table(
        TITLE + (" (above 1: numnet faster)" if console is not None else ""),
        headers,
        table_rows(rows),
        console=console,
        left=("device", "op", "size"),
    )
    if target_cells:
        timing.write_table(
            "targets: their time / numnet's, at least",
            ["device", "op", "size", "target", "measured", ""],
            target_cells,
            console=console,
            left=("device", "op", "size", "target", "measured", ""),
        )
    timing.write_lines(None, notes, console=console)


def plot(rows, targets, path):
    """A chart of numnet's speed ratios, one panel per op, to ``path`` (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    timed = [r for r in rows if "median_ratio" in r]
    panels = sorted({(r["device"], r["op"]) for r in timed})
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * max(len(panels), 1)), squeeze=False)
    for ax, (device, op) in zip(axes[:, 0], panels):
        mine = [r for r in timed if (r["device"], r["op"]) == (device, op)]
        xs = np.arange(len(mine))
        for shift, other in ((-0.2, "numpy"), (0.2, "torch")):
            speed = [r["median_ratio"].get(other, np.nan) for r in mine]  # their time / numnet's
            ax.bar(xs + shift, speed, width=0.4, label=f"vs {other}")
        sizes = [r["size"] for r in mine]
        for t in targets:  # a dotted bar over the pair of bars it is a target for
            if (t["device"], t["op"]) == (device, op) and t["size"] in sizes and t["against"] != "bandwidth":
                x = sizes.index(t["size"]) + (-0.2 if t["against"] == "numpy" else 0.2)
                ax.hlines(t["minimum"], x - 0.25, x + 0.25, linestyles=":", colors="black")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%gx"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xticks(xs, [r["size"] for r in mine], fontsize=7)
        ax.set_title(f"{device}: {op}: their time / numnet's (above 1: numnet faster; dotted: target)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def environment(torch):
    import numba

    import numnet

    info = {
        "numnet": numnet.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
    }
    return info


def cpu_slug(name=None):
    """The CPU model as a file name: "AMD EPYC" -> "amd-epyc" (benchmarks/results/)."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", (name or _cpu_name()).lower()).strip("-") or "unknown-cpu"


RESULTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks", "results"
)


def compare(fresh, kept, slower=0.10):
    """The rows of ``fresh`` (a --json result) more than ``slower`` slower than in ``kept``
    (the last one kept for this CPU): numnet's median time per call, row by row. Returns
    lines "op size: kept -> fresh (+x%)"; rows in only one of them are skipped."""
    old = {(r["device"], r["op"], r["size"]): r for r in kept["rows"] if "median_time" in r}
    found = []
    for r in fresh["rows"]:
        before = old.get((r["device"], r["op"], r["size"]))
        if before is None or "median_time" not in r:
            continue
        t0, t1 = before["median_time"]["numnet"], r["median_time"]["numnet"]
        if t1 > (1 + slower) * t0:
            found.append(
                f"{r['device']} {r['op']} {r['size']}: {seconds(t0)} -> {seconds(t1)} (+{100 * (t1 / t0 - 1):.0f}%)"
            )
    return found


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# -- --busy: another process keeps one core busy -------------------------------------------------


def _spin():
    while True:
        pass


def start_busy_core():
    """Start a process that keeps the last CPU busy (a Python busy loop pinned to it, as
    another program on a learner's laptop would); returns it (terminate() to stop)."""
    import multiprocessing

    proc = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    proc.start()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, {max(os.sched_getaffinity(0))})
    time.sleep(0.5)  # numnet reads how busy the machine is every 0.25 s (numnet._jit.threads)
    return proc


def worst_calls(fn, seconds=0.5, most=2000):
    """Each call of ``fn`` timed alone for about ``seconds``: (median, 99th percentile,
    slowest) in seconds: what a stall looks like, which medians of blocks hide."""
    times = []
    end = time.perf_counter() + seconds
    while len(times) < most and (not times or time.perf_counter() < end):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(0.99 * len(times)))], times[-1]


# -- the command ---------------------------------------------------------------------------------


def _progress(console):
    """A function (label, total) -> advance(k): a rich progress bar, or nothing."""
    if console is None or not console.is_terminal:

        def start(label, total):
            print(f"  timing {label} ...", file=sys.stderr, flush=True)
            return lambda k: None

        return start, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description:40s}"), BarColumn(), TimeRemainingColumn(), console=console, transient=True
    )

    def start(label, total):
        task = bar.add_task(label, total=total)
        return lambda k: bar.advance(task, k)

    return start, bar


def _cuda_ready(torch):
    """None when the GPU rows can run, else why not."""
    if not torch.cuda.is_available():
        return "torch has no CUDA device here"
    try:
        import numnet.cuda
    except Exception as exc:
        return f"numnet.cuda does not import: {exc}"
    if numnet.cuda.on_simulator():
        return "numba runs in its CUDA simulator (NUMBA_ENABLE_CUDASIM=1): no timings there"
    if not numnet.cuda.is_available():
        return "numba finds no usable CUDA GPU"
    return None


def main(args):
    """``numnet bench``: returns the exit code (0, 1 on a mismatch, 2 without torch)."""
    try:
        import torch
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    try:
        from rich.console import Console

        console = Console(file=sys.stdout)
        if not console.is_terminal:  # a log or a pipe: no wrapping at 80 columns
            console = Console(file=sys.stdout, width=160)
    except ImportError:
        console = None
    quick = bool(getattr(args, "quick", False))
    busy = bool(getattr(args, "busy", False))
    device = getattr(args, "device", "all")
    repeats, block_seconds = (5, 0.005) if quick else (15, 0.05)
    settle = SETTLE  # even --quick: one spinning library can slow the next a thousandfold

    env = environment(torch)
    print(
        f"numnet {env['numnet']}, numpy {env['numpy']}, numba {env['numba']}, torch {env['torch']}; "
        f"{env['processor']}, {env['cpu_count']} CPUs, threads: numba {env['numba_threads']}, "
        f"torch {env['torch_threads']}; float32; median of {repeats} interleaved repeats"
        + (" (--quick: small sizes, figures not meaningful)" if quick else ""),
        flush=True,
    )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    env["load_average_at_start"] = load
    if load > 0.5:
        print(
            f"warning: load average {load:.2f}: other processes share the CPUs; the ratios will vary from run to run",
            flush=True,
        )
    plan = []
    if device in ("cpu", "all"):
        plan.append(("cpu busy" if busy else "cpu", cpu_cases(torch, quick, busy), lambda: None))
    bandwidth = None
    if device in ("cuda", "all"):
        why_not = _cuda_ready(torch)
        if why_not:
            print(f"cuda: skipped: {why_not}", flush=True)
        else:
            torch.backends.cuda.matmul.allow_tf32 = False  # float32 products in float32, as numnet's
            torch.backends.cudnn.allow_tf32 = False
            bandwidth = gpu_bandwidth(torch)
            env["gpu"] = torch.cuda.get_device_name()
            env["gpu_bandwidth_GBps"] = bandwidth
            print(
                f"cuda: {env['gpu']}, peak memory bandwidth "
                f"{'unknown' if bandwidth is None else f'{bandwidth:.0f} GB/s'}; TF32 off",
                flush=True,
            )
            plan.append(("cuda", cuda_cases(torch, quick), torch.cuda.synchronize))

    spinner = None
    if busy:
        spinner = start_busy_core()
        env["busy"] = "a process spinning on the last CPU"
        print("--busy: another process keeps one CPU busy for the whole run", flush=True)
    start, bar = _progress(console)
    rows = []
    if bar is not None:
        bar.start()
    try:
        for name, factories, sync in plan:
            rows += run_cases(
                name,
                factories,
                repeats,
                block_seconds,
                settle if name.startswith("cpu") else {},
                sync,
                start,
                stalls=busy,
            )
    finally:
        if bar is not None:
            bar.stop()
        if spinner is not None:
            spinner.terminate()

    targets = check_targets(rows, bandwidth)
    print_table(rows, targets, console)
    result = {
        "environment": env,
        "quick": quick,
        "repeats": repeats,
        "block_seconds": block_seconds,
        "settle_seconds": settle,
        "rows": rows,
        "targets": targets,
    }
    if getattr(args, "json", None):
        timing.write_json(args.json, result)
    if getattr(args, "compare", False):
        kept_path = os.path.join(RESULTS, cpu_slug(env["processor"]) + ".json")
        if not os.path.exists(kept_path):
            print(
                f"--compare: no kept result for this CPU ({kept_path}); keep one with numnet bench --json {kept_path}"
            )
        else:
            with open(kept_path) as f:
                slower = compare(result, json.load(f))
            print(
                f"--compare against {kept_path}: "
                + ("no row more than 10% slower" if not slower else f"{len(slower)} rows more than 10% slower:")
            )
            for line in slower:
                print("  " + line)
    if getattr(args, "plot", None):
        try:
            plot(rows, targets, args.plot)
        except ImportError:
            print("numnet bench: --plot needs matplotlib: pip install 'numnet[plot]'", file=sys.stderr)
            return 2
        print(f"wrote {args.plot}")
    return 1 if any("mismatch" in r for r in rows) else 0
