"""``numnet parity``: every op of each path against torch, printed as a table.

The first rows are the notebook's reference values as each path computes them; then
every op on random shapes and values (the corners included) on each path, and numnet's
generator against torch's, bit for bit. Tolerances are numnet.testing's, stated and
justified there. The exit code is 0 only if every row passes.

Needs torch (``pip install 'numnet[test]'``); rich draws the table and the progress bar.
"""

from dataclasses import dataclass

import numpy as np

import numnet
from numnet import testing

OPS = ("sigmoid", "dot", "mm", "neuron", "linear", "forward")
CORNERS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1000.0, -1000.0, 1e-40])


@dataclass
class Row:
    op: str
    path: str
    shape: str
    dtype: str
    max_abs_err: float
    max_ulp: int
    tolerance: str
    ok: bool
    note: str = ""


@dataclass
class NotebookRow:
    value: str
    path: str
    printed: str
    numnet: float
    torch: float
    ulp: int
    ok: bool


def torch_references(torch):
    """Trusted float64 references for the tolerances: torch's matmul and sigmoid."""

    def matmul(a, b):
        return torch.mm(torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))).numpy()

    def sigmoid(x):
        return torch.sigmoid(torch.from_numpy(np.asarray(x, np.float64))).numpy()

    return matmul, sigmoid


def torch_op(torch, op, args):
    """What torch computes for numnet's ``op`` on ``args``, as a numpy array."""
    t = [torch.from_numpy(np.ascontiguousarray(a)) for a in args] if op != "forward" else None
    if op == "sigmoid":
        return torch.sigmoid(t[0]).numpy()
    if op == "dot":
        return torch.sum(t[0] * t[1]).numpy()
    if op == "mm":
        return torch.mm(t[0], t[1]).numpy()
    if op == "neuron":
        return torch.sigmoid(torch.sum(t[0] * t[1]) + t[2]).numpy()
    if op == "linear":
        return (torch.mm(t[0], t[1]) + t[2]).numpy()
    x, layers = args
    h = torch.from_numpy(np.ascontiguousarray(x))
    for W, b in layers:
        h = torch.sigmoid(torch.addmm(torch.from_numpy(b), h, torch.from_numpy(np.ascontiguousarray(W))))
    return h.numpy()


KINDS = ("normal", "magnitudes", "corners")


def random_values(rng, shape, dtype, kind):
    """Standard normals ("normal"); scaled by 10**-6..10**6 elementwise ("magnitudes");
    or with one element in a hundred a corner: NaN, +-inf, +-1e30, 1e-40 ("corners")."""
    a = rng.standard_normal(shape)
    if kind == "magnitudes":
        a = a * 10.0 ** rng.integers(-6, 7, shape)
    a = a.astype(dtype)
    if kind == "corners" and a.size:
        flat = a.reshape(-1)
        picks = rng.random(flat.size) < 0.01
        with np.errstate(under="ignore"):
            flat[picks] = rng.choice(CORNERS, int(picks.sum())).astype(dtype)
    return a


def random_cases(rng, small):
    """(op, args) for every op and dtype on random shapes; ``small`` for the simulator."""
    top = 6 if small else 64
    for dtype in (np.float32, np.float64):
        for kind in KINDS:
            n, k, m = (int(v) for v in rng.integers(0, top + 1, 3))
            values = lambda *shape, dtype=dtype, kind=kind: random_values(rng, shape, dtype, kind)  # noqa: E731
            yield "sigmoid", (values(n, k),)
            yield "dot", (values(n, k), values(n, k))
            yield "mm", (values(n, k), values(k, m))
            yield "neuron", (values(k), values(k), values(1, 1))
            yield "linear", (values(n, k), values(k, m), values(m))
            widths = [int(v) for v in rng.integers(0, top + 1, 3)]
            layers = [(values(a, b), values(1, b)) for a, b in zip(widths, widths[1:])]
            yield "forward", (values(n, widths[0]), layers)


def compare_op(torch, ops, path, op, args, references):
    got = getattr(ops, op)(*args)
    expected = torch_op(torch, op, args)
    tolerance = testing.op_tolerance(op, args, *references)
    report = testing.compare(got, expected, **tolerance)
    dims = lambda a: "x".join(map(str, np.shape(a))) or "()"  # noqa: E731
    if op == "forward":
        shape = dims(args[0]) + "".join(f">{W.shape[1]}" for W, _ in args[1])
    elif op in ("mm", "linear"):
        shape = f"{dims(args[0])}@{dims(args[1])}"
    else:
        shape = dims(args[0])
    note = f"{report.n_order_dependent} skipped" if report.n_order_dependent else ""
    tolerance = f"{testing.SIGMOID_ULP} ULP" if op == "sigmoid" else "sum bound"
    return Row(op, path, shape, report.dtype, report.max_abs_err, report.max_ulp, tolerance, report.ok, note)


def notebook_rows(torch, ops, path):
    """output1 (sum), output2 (matrix product) and the two-layer output, beside torch's."""
    torch.manual_seed(7)
    f = torch.randn((1, 5))
    w = torch.randn_like(f)
    b = torch.randn((1, 1))
    torch.manual_seed(7)
    x = torch.randn((1, 3))
    W1, W2 = torch.randn(3, 2), torch.randn(2, 1)
    B1, B2 = torch.randn((1, 2)), torch.randn((1, 1))
    cells = [
        ("output1 (sum)", ops.neuron(f.numpy(), w.numpy(), b.numpy()), torch.sigmoid(torch.sum(f * w) + b), 0.1595),
        (
            "output2 (mm)",
            ops.sigmoid(ops.linear(f.numpy(), w.view(5, 1).numpy(), b.numpy())),
            torch.sigmoid(torch.mm(f, w.view(5, 1)) + b),
            0.1595,
        ),
        (
            "two-layer output",
            ops.forward(x.numpy(), [(W1.numpy(), B1.numpy()), (W2.numpy(), B2.numpy())]),
            torch.sigmoid(torch.mm(torch.sigmoid(torch.mm(x, W1) + B1), W2) + B2),
            0.3171,
        ),
    ]
    rows = []
    for name, got, expected, printed in cells:
        report = testing.compare(got, expected.numpy(), ulp=2 * testing.SIGMOID_ULP)
        shows = f"{got.item():.4f}" == f"{printed:.4f}" == f"{expected.item():.4f}"
        rows.append(
            NotebookRow(
                name, path, f"{got.item():.4f}", got.item(), expected.item(), report.max_ulp, report.ok and shows
            )
        )
    return rows


def generator_rows(torch, rng):
    """numnet's generator against torch's, bit for bit, on a few seeds and sizes."""
    rows = []
    for size in (1, 5, 15, 16, 17, 1000, int(rng.integers(1, 5000))):
        for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
            seed = int(rng.integers(0, 2**63))
            numnet.manual_seed(seed)
            torch.manual_seed(seed)
            ours = np.concatenate([numnet.randn(size, dtype=dtype), numnet.randn(3, dtype=dtype)])
            theirs = np.concatenate([torch.randn(size, dtype=tdtype).numpy(), torch.randn(3, dtype=tdtype).numpy()])
            report = testing.compare(ours, theirs, ulp=0)
            same = ours.tobytes() == theirs.tobytes()
            rows.append(
                Row("randn", "cpu", f"{size}, 3", report.dtype, report.max_abs_err, report.max_ulp, "bits", same)
            )
    return rows


def available_paths(device):
    """[(path name, ops module)] for --device; 'all' means every path that can run here."""
    paths = []
    if device in ("cpu", "all"):
        paths.append(("cpu", numnet))
    if device in ("cuda", "all"):
        from numnet import cuda

        if cuda.is_available():
            paths.append(("cuda-sim" if cuda.on_simulator() else "cuda", cuda))
        elif device == "cuda":
            raise SystemExit(f"numnet parity: {cuda.unavailable_message()}")
    return paths


def run(device="all", seed=0, console=None):
    """Print the table; return the exit code (0: every row passed, 1: some failed)."""
    try:
        import torch
        from rich import box
        from rich.console import Console
        from rich.progress import track
        from rich.table import Table
    except ImportError as exc:
        needs = "torch" if exc.name == "torch" else exc.name
        print(f"numnet parity needs {needs}: pip install 'numnet[test]' (or pip install torch==2.13.0 rich)")
        return 2

    console = console or Console(width=None if Console().is_terminal else 110)
    rng = np.random.default_rng(seed)
    references = torch_references(torch)
    jobs = []
    for path, ops in available_paths(device):
        jobs.append(lambda ops=ops, path=path: notebook_rows(torch, ops, path))
        for op, args in random_cases(rng, small=path != "cpu"):
            jobs.append(
                lambda ops=ops, path=path, op=op, args=args: [compare_op(torch, ops, path, op, args, references)]
            )
    jobs.append(lambda: generator_rows(torch, rng))
    rows = []
    for job in track(jobs, description="comparing with torch", console=console, transient=True):
        rows.extend(job())
    verdict = lambda ok: "pass" if ok else "[bold red]FAIL[/]"  # noqa: E731

    notebook = Table(title="The notebook's values", box=box.SIMPLE_HEAD)
    for column in ("value", "path", "prints", "numnet", "torch", "ULP apart", "result"):
        notebook.add_column(column)
    ops_table = Table(title=f"Every op against torch {torch.__version__} (seed {seed})", box=box.SIMPLE_HEAD)
    for column in ("op", "path", "shape", "dtype", "max abs err", "max ULP", "tolerance", "result"):
        ops_table.add_column(column, justify="right" if column.startswith("max") else "left")
    for r in rows:
        if isinstance(r, NotebookRow):
            notebook.add_row(r.value, r.path, r.printed, repr(r.numnet), repr(r.torch), str(r.ulp), verdict(r.ok))
        else:
            ulps = str(r.max_ulp) if r.max_ulp < 10**6 else f"{r.max_ulp:.2g}"
            ops_table.add_row(
                r.op,
                r.path,
                r.shape,
                r.dtype,
                f"{r.max_abs_err:.3g}",
                ulps,
                r.tolerance,
                verdict(r.ok) + (f" ({r.note})" if r.note else ""),
            )
    console.print(notebook)
    console.print(ops_table)
    console.print(
        f"tolerances (numnet/testing.py): sigmoid within {testing.SIGMOID_ULP} ULP; 'sum bound' = "
        "2*gamma_k*sum|terms| for a k-term sum, passed through sigmoid's slope for neuron and "
        "forward; 'skipped' elements could overflow, so their value depends on the order of "
        "additions; randn must match bit for bit. The notebook rows allow "
        f"{2 * testing.SIGMOID_ULP} ULP and must print as the notebook does."
    )
    failed = [r for r in rows if not r.ok]
    console.print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
