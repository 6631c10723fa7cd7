"""``numnet gpu-report``: numnet.cuda on this machine's GPU, every op in one table.

For each op, on data that lives on the GPU, float32:

- **identical?** how many elements of numnet.cuda's result differ, bit for bit, from
  numnet's CPU op on the same inputs: 0 expected for the ops in IDENTICAL (a difference
  fails the report), dot and neuron counted only (the GPU sums in a tree);
- **correct?** numnet.cuda's result against numnet's CPU result and against torch on the
  same GPU tensors, within numnet.testing's tolerance for that op (sum bounds, ULPs);
- **how fast?** numnet.cuda's median time per call, the rate it achieves (GB/s for the
  memory-bound ops, counting each input and output element once; GFLOP/s for the products,
  2nkm per n x k @ k x m), that rate as a fraction of the device's peak, torch's time and
  the ratio torch's time / numnet's (above 1: numnet is faster). torch's products run in
  true float32: TF32 off.

Times: numnet and torch are timed side by side by numnet/commands/timing.py, the core
``numnet bench`` uses: two warm-up calls (compilation), then interleaved blocks of
back-to-back calls (about ``block_seconds`` each, the order rotating, each started with
untimed calls) between device synchronises; the medians over the repeats, and a
torch/numnet ratio marked noisy when its repeats spread widely. Then the targets of issue 13 are checked, and
``numnet train --device cuda``'s accuracy on the digits (when scikit-learn is present).

The device's peaks come from its attributes, as the CUDA samples compute them: memory
bandwidth = 2 (double data rate) x memory clock x bus width / 8; float32 = SMs x float32
lanes per SM (by compute capability, CUDA C++ Programming Guide, arithmetic instructions
table) x 2 (a fused multiply-add) x the SM clock. The report says where each came from.

It installs nothing, and says what it could not run (no torch, torch without CUDA, no
scikit-learn, unknown peaks). Without a GPU it says so in one line and returns 2; in
Numba's CUDA simulator too (its times mean nothing), except through ``report(...,
allow_simulator=True)``, which the tests call on tiny sizes.
"""

import platform
import sys
import time

import numpy as np

import numnet
from numnet import testing
from numnet.commands import timing
from numnet.commands.timing import count, seconds

# n for the elementwise ops, shapes for the others: (n, k, m) linear, (n, widths...)
# forward and loss_and_grads, (rows, columns) softmax, (widths...) the SGD step's network.
SIZES = {
    "full": {
        "sigmoid": 10**8,
        "dot": 10**8,
        "neuron": 10**7,
        "mm": 4096,
        "linear": (4096, 784, 256),
        "forward": (4096, 784, 256, 10),
        "log_softmax": (2**20, 10),
        "softmax": (2**20, 10),
        "loss_and_grads": (4096, 784, 256, 10),
        "SGD.step": (784, 256, 10),
    },
    "quick": {
        "sigmoid": 10**6,
        "dot": 10**6,
        "neuron": 10**5,
        "mm": 1024,
        "linear": (1024, 784, 256),
        "forward": (1024, 784, 256, 10),
        "log_softmax": (10**4, 10),
        "softmax": (10**4, 10),
        "loss_and_grads": (1024, 784, 256, 10),
        "SGD.step": (784, 256, 10),
    },
    "tiny": {
        "sigmoid": 300,
        "dot": 300,
        "neuron": 50,
        "mm": 20,
        "linear": (9, 7, 5),  # the simulator
        "forward": (9, 7, 5, 3),
        "log_softmax": (6, 4),
        "softmax": (6, 4),
        "loss_and_grads": (6, 5, 4, 3),
        "SGD.step": (5, 4, 3),
    },
}

# Issue 13's targets: (op, size, what, minimum). "torch": torch's time / numnet's;
# "peak": the rate as a fraction of the device's peak.
TARGETS = [
    ("mm", "4096x4096 @ 4096x4096", "torch", 0.5),
    ("sigmoid kernel", "10^8", "peak", 0.7),
    ("forward", "4096x784 -> 256 -> 10", "torch", 1.0),
    ("dot", "10^8", "peak", 0.5),
    ("train", "digits, numnet train defaults", "accuracy", 0.95),
]

# The ops whose results equal the CPU's bit for bit (docs/cuda.md): one source compiled for
# both devices for the elementwise functions, the losses, their gradients and SGD's update,
# and the same in-order chain of fused multiply-adds for the products. A difference there
# is a bug: the report fails. dot and neuron add on the GPU in a fixed tree, not in
# torch.sum's order on the CPU: they agree within numnet.testing's bound, not bit for bit.
IDENTICAL = {"sigmoid", "mm", "linear", "forward", "log_softmax", "softmax", "loss_and_grads", "SGD.step"}
TREE = {"dot", "neuron"}

# float32 lanes per SM by compute capability (CUDA C++ Programming Guide, "Arithmetic
# Instructions": results per clock cycle per multiprocessor, 32-bit floating-point add,
# multiply, multiply-add).
FP32_LANES = {
    (7, 0): 64,
    (7, 2): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
    (10, 0): 128,
    (10, 3): 128,
    (11, 0): 128,
    (12, 0): 128,
    (12, 1): 128,
}

NO_GPU = "numnet gpu-report: no GPU: "


# -- the device ---------------------------------------------------------------------------


def device_info(torch=None):
    """The GPU's name, compute capability and peaks, with how each was derived. Asks
    numba's device attributes, then torch's device properties; None where neither says."""
    from numba import cuda

    info = {"name": None, "compute_capability": None, "bandwidth_GBps": None, "fp32_GFLOPs": None}
    attrs = {}
    try:
        device = cuda.get_current_device()
        name = device.name
        info["name"] = name.decode() if isinstance(name, bytes) else str(name)
        info["compute_capability"] = tuple(device.compute_capability)
        for key in ("MULTIPROCESSOR_COUNT", "CLOCK_RATE", "MEMORY_CLOCK_RATE", "GLOBAL_MEMORY_BUS_WIDTH"):
            try:
                attrs[key] = int(getattr(device, key))
            except Exception:
                pass
        source = "numba's device attributes"
    except Exception:
        source = None
    if torch is not None and len(attrs) < 4:
        try:
            props = torch.cuda.get_device_properties(0)
            info["name"] = info["name"] or props.name
            info["compute_capability"] = info["compute_capability"] or (props.major, props.minor)
            for key, field in (
                ("MULTIPROCESSOR_COUNT", "multi_processor_count"),
                ("CLOCK_RATE", "clock_rate"),
                ("MEMORY_CLOCK_RATE", "memory_clock_rate"),
                ("GLOBAL_MEMORY_BUS_WIDTH", "memory_bus_width"),
            ):
                if key not in attrs and getattr(props, field, None):
                    attrs[key] = int(getattr(props, field))
            source = (source + " and " if source else "") + "torch's device properties"
        except Exception:
            pass
    info["attributes"] = attrs
    if attrs.get("MEMORY_CLOCK_RATE") and attrs.get("GLOBAL_MEMORY_BUS_WIDTH"):
        mhz, bits = attrs["MEMORY_CLOCK_RATE"] / 1e3, attrs["GLOBAL_MEMORY_BUS_WIDTH"]
        info["bandwidth_GBps"] = 2 * mhz * 1e6 * bits / 8 / 1e9
        info["bandwidth_how"] = (
            f"2 x {mhz:.0f} MHz memory clock x {bits}-bit bus / 8 = {info['bandwidth_GBps']:.0f} GB/s ({source})"
        )
    else:
        info["bandwidth_how"] = "unknown: no memory clock or bus width reported"
    cc = info["compute_capability"]
    lanes = FP32_LANES.get(cc) if cc else None
    if attrs.get("MULTIPROCESSOR_COUNT") and attrs.get("CLOCK_RATE") and lanes:
        sms, mhz = attrs["MULTIPROCESSOR_COUNT"], attrs["CLOCK_RATE"] / 1e3
        info["fp32_GFLOPs"] = sms * lanes * 2 * mhz * 1e6 / 1e9
        info["fp32_how"] = (
            f"{sms} SMs x {lanes} float32 lanes (cc {cc[0]}.{cc[1]}) x 2 x {mhz:.0f} MHz "
            f"= {info['fp32_GFLOPs']:.0f} GFLOP/s ({source})"
        )
    else:
        why = (
            "no float32 lanes known for this compute capability"
            if cc and not lanes
            else "no SM count or clock reported"
        )
        info["fp32_how"] = f"unknown: {why}"
    return info


# -- the cases ----------------------------------------------------------------------------


def references(torch):
    """Float64 matmul and sigmoid for the tolerances' scales (numnet.testing.op_tolerance):
    torch's on the CPU when torch is here, else numnet's own CPU kernels in float64."""
    if torch is not None:
        from numnet.commands.parity import torch_references

        return torch_references(torch)
    return (
        lambda a, b: numnet.mm(np.asarray(a, np.float64), np.asarray(b, np.float64)),
        lambda x: numnet.sigmoid(np.asarray(x, np.float64)),
    )


def _host(result):
    """A numpy array from a numba device array, a torch tensor or a numpy array."""
    if hasattr(result, "copy_to_host"):
        return result.copy_to_host()
    if hasattr(result, "detach"):
        return result.detach().cpu().numpy()
    return np.asarray(result)


def _flat_grads(result):
    """loss_and_grads's (loss, [(dW, db), ...]) as a list of numpy arrays."""
    loss, grads = result
    return [_host(loss), *(_host(g) for pair in grads for g in pair)]


def _network_flops(n, widths, backward=False):
    """2 n k m per layer forward; backward adds dW = h^T delta (2 n k m each layer) and the
    delta below (2 n k m each layer but the first)."""
    forward = sum(2 * n * k * m for k, m in zip(widths, widths[1:]))
    if not backward:
        return forward
    return 2 * forward + sum(2 * n * k * m for k, m in list(zip(widths, widths[1:]))[1:])


def build_cases(sizes, torch, rng):
    """The report's rows before they run, as {op: a function that builds its row} (so that
    only one row's arrays live at a time; each reads only its own entry of ``sizes``): a
    dict with op, size, unit, work (bytes or FLOPs of one call) and the functions that
    compute, compare and time it. ``numnet bench --device cuda`` times the same cases."""
    from numba import cuda

    import numnet.cuda as gpu
    from numnet.cuda import kernels as K
    from numnet.cuda import ops as G

    f32 = np.float32
    on_torch = torch is not None

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(f32)

    def tt(*arrays):  # torch views of numba device arrays: the same GPU memory, no copy
        return [torch.as_tensor(a, device="cuda") for a in arrays]

    def case(
        op,
        size,
        unit,
        work,
        host,
        numnet_call,
        torch_call,
        tolerance,
        time_numnet=None,
        time_torch=None,
        outputs=lambda r: [_host(r)],
    ):
        """host: numpy args; numnet_call(ops, args) for numnet (host args) and numnet.cuda
        (the same on the GPU); torch_call(*tensors); tolerance(host, refs): compare keywords."""
        device_args = [cuda.to_device(a) for a in host]
        tensors = tt(*device_args) if on_torch else None
        return {
            "op": op,
            "size": size,
            "unit": unit,
            "work": work,
            "gpu": lambda: outputs(numnet_call(gpu, device_args)),
            "cpu": lambda: outputs(numnet_call(numnet, host)),
            "torch": (lambda: outputs(torch_call(*tensors))) if tensors else None,
            "tolerance": lambda refs: tolerance(host, refs),
            "time_numnet": time_numnet or (lambda: numnet_call(gpu, device_args)),
            "time_torch": time_torch or ((lambda: torch_call(*tensors)) if tensors else None),
        }

    def op_tol(op):
        return lambda host, refs: [testing.op_tolerance(op, host, *refs)]

    def layers_of(a):  # [x, W1, b1, W2, b2, ...] -> [(W1, b1), ...]
        return list(zip(a[1::2], a[2::2]))

    def network(n, widths):
        return [randn(n, widths[0])] + [
            a for i, o in zip(widths, widths[1:]) for a in (randn(i, o, scale=i**-0.5), randn(o))
        ]

    def arrow(n, widths):
        return f"{n}x{widths[0]} -> " + " -> ".join(map(str, widths[1:]))

    def sigmoid():
        n = sizes["sigmoid"]
        return case(
            "sigmoid",
            count(n),
            "GB/s",
            8 * n,
            [randn(n, scale=4.0)],
            lambda ops, a: ops.sigmoid(a[0]),
            lambda x: torch.sigmoid(x),
            op_tol("sigmoid"),
        )

    def sigmoid_kernel():
        n = sizes["sigmoid"]
        x, out = cuda.to_device(randn(n, scale=4.0)), cuda.device_array(n, f32)
        kernel = G.launch(K.sigmoid_kernel, G.launch_shape(n))
        x_t, y_t = (torch.as_tensor(x, device="cuda"), torch.empty(n, device="cuda")) if on_torch else (None, None)
        return {
            "op": "sigmoid kernel",
            "size": count(n),
            "unit": "GB/s",
            "work": 8 * n,
            "note": "the kernel alone, into a preallocated output (the op also allocates its output)",
            "time_numnet": lambda: kernel(x, out),
            "time_torch": (lambda: torch.sigmoid(x_t, out=y_t)) if on_torch else None,
        }

    def dot():
        n = sizes["dot"]
        return case(
            "dot",
            count(n),
            "GB/s",
            8 * n,
            [randn(n), randn(n)],
            lambda ops, a: ops.dot(*a),
            lambda a, b: torch.dot(a, b),
            op_tol("dot"),
        )

    def neuron():
        n = sizes["neuron"]
        return case(
            "neuron",
            count(n),
            "GB/s",
            8 * n,
            [randn(n), randn(n, scale=n**-0.5), randn(1)],
            lambda ops, a: ops.neuron(*a),
            lambda x, w, b: torch.sigmoid(torch.dot(x, w) + b),
            op_tol("neuron"),
        )

    def mm():
        n = sizes["mm"]
        return case(
            "mm",
            f"{n}x{n} @ {n}x{n}",
            "GFLOP/s",
            2 * n**3,
            [randn(n, n), randn(n, n)],
            lambda ops, a: ops.mm(*a),
            lambda a, b: torch.mm(a, b),
            op_tol("mm"),
        )

    def linear():
        n, k, m = sizes["linear"]
        return case(
            "linear",
            f"{n}x{k} -> {m}",
            "GFLOP/s",
            2 * n * k * m,
            [randn(n, k), randn(k, m, scale=k**-0.5), randn(m)],
            lambda ops, a: ops.linear(*a),
            lambda x, W, b: torch.addmm(b, x, W),
            op_tol("linear"),
        )

    def forward():
        n, *widths = sizes["forward"]

        def torch_forward(x, *params):
            h = x
            for W, b in zip(params[::2], params[1::2]):
                h = torch.sigmoid(torch.addmm(b, h, W))  # torch eager, as one writes it
            return h

        return case(
            "forward",
            arrow(n, widths),
            "GFLOP/s",
            _network_flops(n, widths),
            network(n, widths),
            lambda ops, a: ops.forward(a[0], layers_of(a)),
            torch_forward,
            lambda h, refs: [testing.op_tolerance("forward", (h[0], layers_of(h)), *refs)],
        )

    def rows_op(op):
        rows, columns = sizes[op]
        return case(
            op,
            f"{rows}x{columns}",
            "GB/s",
            8 * rows * columns,
            [randn(rows, columns, scale=3.0)],
            lambda ops, a: getattr(ops, op)(a[0]),
            lambda x: getattr(torch, op)(x, dim=-1),
            op_tol(op),
        )

    def loss_and_grads():
        n, *widths = sizes["loss_and_grads"]
        classes = rng.integers(0, widths[-1], n)
        classes_dev = cuda.to_device(classes)
        names = ("relu", "none", "cross_entropy")

        def numnet_loss(ops, a):
            target = classes if ops is numnet else classes_dev
            return ops.loss_and_grads(a[0], target, layers_of(a), *names)

        def torch_loss(x, *params):
            params = [p.detach().requires_grad_() for p in params]
            h = x
            for i, (W, b) in enumerate(zip(params[::2], params[1::2])):
                h = torch.addmm(b, h, W)
                h = torch.relu(h) if i < len(params) // 2 - 1 else h
            loss = torch.nn.functional.cross_entropy(h, torch.as_tensor(classes, device="cuda"))
            grads = torch.autograd.grad(loss, params)
            return loss, list(zip(grads[::2], grads[1::2]))

        def tolerance(h, refs):
            tol = testing.op_tolerance("loss_and_grads", (h[0], classes, layers_of(h), *names), *refs)
            return [tol["loss"], *(t for pair in tol["grads"] for t in pair)]

        return case(
            "loss_and_grads",
            arrow(n, widths) + ", cross_entropy",
            "GFLOP/s",
            _network_flops(n, widths, backward=True),
            network(n, widths),
            numnet_loss,
            torch_loss,
            tolerance,
            outputs=_flat_grads,
        )

    def sgd():
        widths = sizes["SGD.step"]
        params = [a for i, o in zip(widths, widths[1:]) for a in (randn(i, o), randn(o))]
        grads = [randn(*p.shape) for p in params]
        count = sum(p.size for p in params)
        half = len(params)

        def first_step(ops, a):
            """One first step (buf = g, p = fma(g, -lr, p)) on fresh copies of the parameters."""
            ps = [np.array(p) if ops is numnet else cuda.to_device(_host(p)) for p in a[:half]]
            ops.SGD(list(zip(ps[::2], ps[1::2])), lr=0.1, momentum=0.9).step(list(zip(a[half::2], a[half + 1 :: 2])))
            return ps

        def torch_step(*tensors):
            ps = [t.clone() for t in tensors[:half]]
            for p, g in zip(ps, tensors[half:]):
                p.grad = g.clone()
            torch.optim.SGD(ps, lr=0.1, momentum=0.9).step()
            return ps

        # timed: later steps (momentum * buf + g), the parameters and buffers on the GPU
        p_dev, g_dev = [cuda.to_device(p) for p in params], [cuda.to_device(g) for g in grads]
        timed = gpu.SGD(list(zip(p_dev[::2], p_dev[1::2])), lr=1e-6, momentum=0.9)
        timed_grads = list(zip(g_dev[::2], g_dev[1::2]))
        time_torch = None
        if on_torch:
            torch_params = tt(*[cuda.to_device(p) for p in params])
            for p, g in zip(torch_params, tt(*g_dev)):
                p.grad = g
            time_torch = torch.optim.SGD(torch_params, lr=1e-6, momentum=0.9).step
        row = case(
            "SGD.step",
            " -> ".join(map(str, widths)) + f" ({count} parameters), momentum",
            "GB/s",
            20 * count,
            params + grads,
            first_step,
            torch_step,
            lambda h, refs: [{"ulp": 0}] * half,
            time_numnet=lambda: timed.step(timed_grads),
            time_torch=time_torch,
            outputs=lambda ps: [_host(p) for p in ps],
        )
        row["torch_ulp"] = 1  # torch's CUDA step may or may not fuse p - lr * buf into one rounding
        return row

    return {
        "sigmoid": sigmoid,
        "sigmoid kernel": sigmoid_kernel,
        "dot": dot,
        "neuron": neuron,
        "mm": mm,
        "linear": linear,
        "forward": forward,
        "log_softmax": lambda: rows_op("log_softmax"),
        "softmax": lambda: rows_op("softmax"),
        "loss_and_grads": loss_and_grads,
        "SGD.step": sgd,
    }


# -- running them -----------------------------------------------------------------------------


def differing(outputs, expected):
    """(elements whose bits differ, elements) between two lists of arrays; NaN and NaN
    count as the same, +0 and -0 as different."""
    differ = total = 0
    for got, want in zip(outputs, expected):
        got, want = np.asarray(got), np.asarray(want).astype(np.asarray(got).dtype, copy=False)
        if got.shape != want.shape:
            differ, total = differ + max(got.size, want.size), total + max(got.size, want.size)
            continue
        uint = np.dtype(f"u{got.dtype.itemsize}")
        same = (got.view(uint) == want.view(uint)) | (np.isnan(got) & np.isnan(want))
        differ, total = differ + int(np.count_nonzero(~same)), total + got.size
    return differ, total


def _verdict(outputs, expected, tolerances, name, ulp=None):
    """(ok, text) of numnet.cuda's outputs against another path's, each within its tolerance."""
    worst_ulp, worst_err, ok = 0, 0.0, True
    for got, want, tolerance in zip(outputs, expected, tolerances):
        if ulp is not None:
            tolerance = {"ulp": ulp}
        report = testing.compare(got, want.astype(got.dtype, copy=False), name=name, **tolerance)
        ok &= report.ok
        worst_ulp, worst_err = max(worst_ulp, report.max_ulp), max(worst_err, report.max_abs_err)
        if not report.ok:
            return False, f"FAIL: {report}"
    return ok, f"ok, max {worst_ulp} ULP"


def check_case(case, refs):
    """The row's checks: how many elements differ from the CPU's, and numnet.cuda against
    the CPU and torch within numnet.testing's tolerances (a case that is only timed, such
    as the sigmoid kernel, has none)."""
    row = {k: case[k] for k in ("op", "size", "unit", "work")}
    if "note" in case:
        row["note"] = case["note"]
    if "gpu" in case:
        got, cpu = case["gpu"](), case["cpu"]()
        tolerances = case["tolerance"](refs)
        row["differ_from_cpu"], row["elements"] = differing(got, cpu)
        row["identical_expected"] = case["op"] in IDENTICAL
        row["cpu_ok"], row["vs_cpu"] = _verdict(got, cpu, tolerances, f"{case['op']} vs CPU")
        if case["torch"] is not None:
            row["torch_ok"], row["vs_torch"] = _verdict(
                got, case["torch"](), tolerances, f"{case['op']} vs torch", ulp=case.get("torch_ulp")
            )
    return row


def run_case(case, refs, sync, repeats, block_seconds, peaks):
    """Check and time one case; returns its row (plain data, for the table and the JSON)."""
    row = check_case(case, refs)
    if not repeats:  # correctness only (the tests, in the simulator)
        return row
    calls = {"numnet": case["time_numnet"]}
    if case["time_torch"] is not None:
        calls["torch"] = case["time_torch"]
    found = timing.medians(timing.measure(calls, repeats, block_seconds, settle={}, sync=sync))
    times = found["median_time"]
    row["numnet_s"] = times["numnet"]
    row["rate"] = timing.rate(case["work"], times["numnet"])
    peak = peaks.get(row["unit"])
    row["of_peak"] = row["rate"] / peak if peak else None
    if "torch" in times:
        row["torch_s"] = times["torch"]
        row["torch_rate"] = timing.rate(case["work"], times["torch"])
        row["vs_torch_speed"] = found["median_ratio"]["torch"]  # median of the repeats' torch / numnet
        row["noisy"] = found["noisy"]
    return row


def train_row(gpu):
    """``numnet train --device cuda``'s defaults on the digits: the final test accuracy."""
    from numnet.commands.train import fit, init_layers
    from numnet.data import load_digits

    data = load_digits(test_fraction=0.2, seed=0)
    layers = init_layers([data[0].shape[1], 64, 10], seed=0)
    start = time.perf_counter()
    history = fit(layers, data, epochs=20, batch_size=64, lr=0.1, momentum=0.9, hidden="relu", seed=0, ops=gpu)
    return {
        "op": "train",
        "size": "digits, numnet train defaults",
        "unit": "accuracy",
        "accuracy": history["test_accuracy"][-1],
        "seconds": time.perf_counter() - start,
    }


def compiled_kernels():
    """Each numnet.cuda kernel as this GPU's driver compiled it for the signatures the report
    launched: registers and local memory per thread, static shared memory per block, the
    most threads a block may have (tests/test_ptx.py checks the same from ptxas, no GPU)."""
    import importlib

    found = []
    for name in ("numnet.cuda.kernels", "numnet.cuda.backward_kernels"):
        for attr, kernel in vars(importlib.import_module(name)).items():
            overloads = getattr(kernel, "overloads", None)
            if overloads is None or getattr(kernel, "targetoptions", {}).get("device", True):
                continue
            for args, compiled in list(overloads.items()):
                entry = {"kernel": attr, "signature": ", ".join(map(str, args))}
                for key in ("regs_per_thread", "local_mem_per_thread", "shared_mem_per_block", "max_threads_per_block"):
                    try:
                        entry[key] = int(getattr(compiled, key))
                    except Exception:
                        entry[key] = None
                found.append(entry)
    return found


def check_targets(rows):
    def find(t):
        return next((r for r in rows if r["op"] == t["op"] and r["size"] == t["size"]), None)

    def figure(t, row):
        return {"torch": row.get("vs_torch_speed"), "peak": row.get("of_peak"), "accuracy": row.get("accuracy")}[
            t["against"]
        ]

    keys = ("op", "size", "against", "minimum")
    return timing.check_targets([dict(zip(keys, t)) for t in TARGETS], find, figure)


def report(
    size="full",
    torch=None,
    json_path=None,
    allow_simulator=False,
    repeats=7,
    block_seconds=0.03,
    train=True,
    out=sys.stdout,
):
    """Run the report; returns (exit code, the JSON document). 0: every check passed;
    1: a result is out of tolerance; 2: no GPU (or the simulator, unless allowed)."""
    import numnet.cuda as gpu

    if not gpu.is_available():
        why = gpu.unavailable_message().split(". ")[0]  # why, without the simulator's how-to
        print(f"{NO_GPU}{why}; on a machine with an NVIDIA GPU: pip install 'numnet[cuda]'", file=sys.stderr)
        return 2, None
    if gpu.on_simulator() and not allow_simulator:
        print(
            NO_GPU + "numba runs in its CUDA simulator (NUMBA_ENABLE_CUDASIM=1), where times mean "
            "nothing; unset it on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        return 2, None
    from numba import cuda

    not_run = []
    if torch is None:
        not_run.append("torch: not importable, so no comparison with torch (pip install torch, a CUDA build)")
    elif not torch.cuda.is_available():
        not_run.append(
            f"torch {torch.__version__}: no CUDA device, so no comparison with torch (install a CUDA build of torch)"
        )
        torch = None
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 products in float32, as numnet's
        torch.backends.cudnn.allow_tf32 = False

    def sync():
        cuda.synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    device = device_info(torch)
    for key in ("bandwidth", "fp32"):
        if device[f"{key}_how"].startswith("unknown"):
            not_run.append(f"peak {key}: {device[f'{key}_how']}; no fractions of it")
    env = {
        "numnet": numnet.__version__,
        "numpy": np.__version__,
        "numba": __import__("numba").__version__,
        "torch": torch.__version__ if torch is not None else None,
        "python": platform.python_version(),
        "simulator": gpu.on_simulator(),
    }
    print(
        f"numnet gpu-report: {device['name']}, compute capability "
        f"{'.'.join(map(str, device['compute_capability'] or ())) or '?'}; numba {env['numba']}"
        f"{', torch ' + env['torch'] + ' (TF32 off)' if torch is not None else ''}; float32; "
        f"median of {repeats} interleaved repeats",
        file=out,
        flush=True,
    )
    print(f"  peak memory bandwidth: {device['bandwidth_how']}", file=out)
    print(f"  peak float32:          {device['fp32_how']}", file=out, flush=True)
    peaks = {"GB/s": device["bandwidth_GBps"], "GFLOP/s": device["fp32_GFLOPs"]}
    refs = references(torch)
    rows = []
    for make in build_cases(SIZES[size], torch, np.random.default_rng(0)).values():
        case = make()
        print(f"  {case['op']} {case['size']} ...", file=sys.stderr, flush=True)
        try:
            rows.append(run_case(case, refs, sync, repeats, block_seconds, peaks))
        except Exception as exc:  # one op's failure is reported, the others still run
            rows.append(
                {"op": case["op"], "size": case["size"], "unit": case["unit"], "error": f"{type(exc).__name__}: {exc}"}
            )
        del case
    if train:
        try:
            rows.append(train_row(gpu))
        except ImportError as exc:
            not_run.append(f"train: {exc}")
        except Exception as exc:
            rows.append(
                {
                    "op": "train",
                    "size": "digits, numnet train defaults",
                    "unit": "accuracy",
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
    else:
        not_run.append("train: not asked for")
    targets = check_targets(rows)
    kernels = compiled_kernels()
    print_table(rows, targets, not_run, out)
    print_kernels(kernels, out)
    document = {
        "device": device,
        "environment": env,
        "size": size,
        "repeats": repeats,
        "block_seconds": block_seconds,
        "rows": rows,
        "targets": targets,
        "not_run": not_run,
        "kernels": kernels,
    }
    if json_path:
        timing.write_json(json_path, document, out)
    failed = any(
        "error" in r
        or r.get("cpu_ok") is False
        or r.get("torch_ok") is False
        or (r.get("identical_expected") and r["differ_from_cpu"])
        for r in rows
    )
    return (1 if failed else 0), document


# -- output -------------------------------------------------------------------------------------

HEADERS = ["op", "size", "differ from CPU", "vs CPU", "vs torch", "numnet", "rate", "of peak", "torch", "torch/numnet"]


def differ_cell(r):
    """ "0 of 300", or why a difference is or is not expected."""
    if "differ_from_cpu" not in r:
        return "-"
    text = f"{r['differ_from_cpu']} of {r['elements']}"
    if r["identical_expected"]:
        return text if r["differ_from_cpu"] == 0 else text + " (0 expected): FAIL"
    return text + " (GPU sums in a tree)" if r["op"] in TREE else text


def table_cells(rows):
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([r["op"], r["size"], "ERROR: " + r["error"][:100]])
        elif r["op"] == "train":
            cells.append([r["op"], r["size"], "-", f"accuracy {100 * r['accuracy']:.1f}%", "-", seconds(r["seconds"])])
        elif "numnet_s" not in r:
            cells.append(
                [r["op"], r["size"], differ_cell(r), r.get("vs_cpu", "-"), r.get("vs_torch", "-"), "not timed"]
            )
        else:
            cells.append(
                [
                    r["op"],
                    r["size"],
                    differ_cell(r),
                    r.get("vs_cpu", "-"),
                    r.get("vs_torch", "-"),
                    seconds(r["numnet_s"]),
                    f"{r['rate']:.4g} {r['unit']}",
                    f"{100 * r['of_peak']:.0f}%" if r.get("of_peak") else "-",
                    seconds(r["torch_s"]) if "torch_s" in r else "-",
                    f"{r['vs_torch_speed']:.2f}x" + (" noisy" if "torch" in r.get("noisy", ()) else "")
                    if "vs_torch_speed" in r
                    else "-",
                ]
            )
    return cells


def print_table(rows, targets, not_run, out=sys.stdout):
    timing.write_table(
        "numnet.cuda per op: correct within numnet.testing's tolerance against the CPU path and "
        "torch; median time per call; torch/numnet above 1: numnet faster",
        HEADERS,
        table_cells(rows),
        out,
    )
    timing.write_lines(None, [f"  {r['op']}: {r['note']}" for r in rows if "note" in r], out)
    if any(r.get("noisy") for r in rows):
        timing.write_lines(None, [timing.NOISE_NOTE], out)
    lines = []
    for t in targets:
        goal = {
            "torch": f">= {t['minimum']:g}x torch",
            "peak": f">= {100 * t['minimum']:.0f}% of peak",
            "accuracy": f">= {100 * t['minimum']:.0f}% accuracy",
        }[t["against"]]
        measured = (
            "not run"
            if t["measured"] is None
            else (f"{t['measured']:.2f}x" if t["against"] == "torch" else f"{100 * t['measured']:.1f}%")
        )
        lines.append(f"{t['op']} {t['size']}: {goal}: {measured} {timing.verdict(t)}")
    timing.write_lines("targets (issue 13):", lines, out)
    if not_run:
        timing.write_lines("not run:", not_run, out)


def print_kernels(kernels, out=sys.stdout):
    if not kernels:
        return
    print(
        "kernels as compiled for this GPU (registers and local memory per thread, shared memory "
        "per block, most threads per block):",
        file=out,
    )
    for k in kernels:
        print(
            f"  {k['kernel']}({k['signature']}): {k['regs_per_thread']} registers, "
            f"{k['local_mem_per_thread']} B local, {k['shared_mem_per_block']} B shared, "
            f"<= {k['max_threads_per_block']} threads",
            file=out,
        )
    out.flush()


def main(args):
    """``numnet gpu-report``: the exit code (0 all correct, 1 a result out of tolerance or
    an op failed, 2 no GPU)."""
    try:
        import torch
    except ImportError:
        torch = None
    code, _ = report(
        size="quick" if getattr(args, "quick", False) else "full", torch=torch, json_path=getattr(args, "json", None)
    )
    return code
