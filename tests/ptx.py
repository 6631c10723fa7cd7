"""numnet's CUDA kernels compiled for real GPUs without one: PTX from NVVM, resources
from ptxas. The machinery of tests/test_ptx.py, in two halves, because numba reads
NUMBA_ENABLE_CUDASIM once, when it is first imported:

- ``record_launches(calls)`` runs in the test process, in the simulator: it calls the
  public ops and notes every kernel launch they make, with each argument typed as numba
  types it on a GPU (dtype, dimensions, layout C, F or A) and the threads per block;
- ``python -m tests.ptx REQUEST.json`` runs with the simulator off: it compiles every
  recorded signature for every compute capability asked for with numba-cuda's
  ``compile_ptx`` (NVVM and libdevice, no driver), reads the PTX (float64 instructions,
  local and shared memory), runs ``ptxas -v`` on it where ptxas is found (registers,
  spills, shared memory) and prints one JSON row per kernel, signature and capability.

Without a driver numba-cuda needs two things it would otherwise ask the GPU: the compute
capability of device functions (``numba.cuda.dispatcher.compile_device`` asks the current
device; a stand-in that knows only its capability answers here) and the CUDA libraries,
which it finds by itself: NVRTC, NVVM and libdevice from the nvidia-* wheels of the
``ptx`` extra, CUDA_HOME or a system toolkit. Where they cannot be found the request
answers ``{"skip": why}``.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types as pytypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

KERNEL_MODULES = ("numnet.cuda.kernels", "numnet.cuda.backward_kernels")
CCS = ((7, 5), (8, 0), (9, 0))

# The per-block limits of compute capabilities 7.5, 8.0 and 9.0 (CUDA C++ Programming
# Guide, "Features and Technical Specifications"): registers are handed out per warp in
# units of 256; static shared memory is capped at 48 KiB (more needs dynamic shared memory
# and an opt-in, which numnet does not use).
MAX_THREADS_PER_BLOCK = 1024
MAX_REGISTERS_PER_THREAD = 255
REGISTERS_PER_BLOCK = 65536
REGISTER_UNIT = 256
WARP = 32
STATIC_SHARED_LIMIT = 48 * 1024


def registers_per_block(registers, threads):
    """Registers a block of ``threads`` takes when each thread uses ``registers``."""
    per_warp = math.ceil(registers * WARP / REGISTER_UNIT) * REGISTER_UNIT
    return per_warp * math.ceil(threads / WARP)


# -- the test process, in the simulator: what the ops launch ----------------------------


def numba_type(value):
    """How numba types a kernel argument on a GPU, as plain data: ["array", dtype, ndim,
    layout] or ["scalar", dtype]. A device array is C when C-contiguous, else F when
    Fortran-contiguous, else A (numba's DeviceNDArray._numba_type_, broadcasts A)."""
    import numba
    from numba.np import numpy_support

    if getattr(value, "__cuda_ndarray__", False) or isinstance(value, np.ndarray):
        broadcast = 0 in value.strides and value.size != 0
        c, f = _contiguity(value)
        layout = "C" if c and not broadcast else "F" if f and not broadcast else "A"
        return ["array", value.dtype.name, value.ndim, layout]
    return ["scalar", numpy_support.as_dtype(numba.typeof(value)).name]


def _contiguity(a):
    if hasattr(a, "is_c_contiguous"):  # numba's device arrays, the simulator's too
        return a.is_c_contiguous(), a.is_f_contiguous()
    return a.flags.c_contiguous, a.flags.f_contiguous


def threads_per_block(shape):
    """The threads per block of a launch shape (blocks, threads), threads an int or a tuple."""
    threads = shape[1]
    return math.prod(threads) if isinstance(threads, tuple) else int(threads)


def record_launches(calls):
    """Run each zero-argument function of ``calls`` (numnet.cuda ops, in the simulator)
    and return the launches they made: {(module, kernel): {"signatures": set of tuples of
    numba_type rows, "threads": largest threads per block}}.

    The kernels are configured but not run: only their arguments matter here, and the
    simulator would spend seconds on each launch (a thread per CUDA thread). The ops'
    results are then garbage, which no op looks at before it returns them."""
    import pytest

    from numnet.cuda import backward as GB
    from numnet.cuda import ops as G

    seen = {}
    original = G.launch

    def recording_launch(kernel, shape):
        original(kernel, shape)  # configured as the op would, not run

        def run(*args):
            fn = getattr(kernel, "fn", None) or kernel.py_func  # the simulator's, or numba's
            key = (fn.__module__, fn.__name__)
            entry = seen.setdefault(key, {"signatures": set(), "threads": 0})
            entry["signatures"].add(tuple(tuple(numba_type(a)) for a in args))
            entry["threads"] = max(entry["threads"], threads_per_block(shape))

        return run

    with pytest.MonkeyPatch.context() as mp:
        # backward.py holds its own reference (from numnet.cuda.ops import launch)
        for module in (G, GB):
            mp.setattr(module, "launch", recording_launch)
        for call in calls:
            call()
    return seen


def kernels_in_modules():
    """(module, name) of every kernel (not device function) in numnet's CUDA modules, as
    the simulator sees them."""
    import importlib

    found = set()
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            fn = getattr(value, "fn", None) or getattr(value, "py_func", None)
            device = getattr(value, "_device", None)
            if device is None and hasattr(value, "targetoptions"):
                device = value.targetoptions.get("device")
            if fn is not None and device is False and fn.__module__ == name:
                found.add((name, attr))
    return found


def compile_in_subprocess(launches, workdir, ccs=CCS, timeout=600):
    """Send the recorded launches to ``python -m tests.ptx``, simulator off, one process
    per compute capability, side by side. Returns {"skip": why} or {"toolchain": ...,
    "kernels": [...], "rows": [...]}, the rows of every capability together."""
    launches = [
        {"module": module, "kernel": kernel, "threads": entry["threads"], "args": [list(a) for a in sig]}
        for (module, kernel), entry in sorted(launches.items())
        for sig in sorted(entry["signatures"])
    ]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    running = []
    for cc in ccs:
        path = Path(workdir) / f"request-sm{cc[0]}{cc[1]}.json"
        path.write_text(json.dumps({"cc": list(cc), "launches": launches}))
        running.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.ptx", str(path), str(workdir)],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    answers = []
    for process in running:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise RuntimeError(f"python -m tests.ptx failed (exit {process.returncode}):\n{err[-4000:]}")
        answers.append(json.loads(out))
    if any("skip" in a for a in answers):
        return next(a for a in answers if "skip" in a)
    return {**answers[0], "rows": [row for a in answers for row in a["rows"]]}


# -- the subprocess, simulator off: compile, read the PTX, run ptxas ---------------------

F64 = re.compile(r"\.f64\b|%fd\d|\b0d[0-9A-Fa-f]{16}\b")  # f64 types, f64 registers, f64 constants
LOCAL = re.compile(r"\.local\b")  # local-memory declarations, loads and stores
FMA = re.compile(r"\bfma\.rn\.f(?:32|64)\b")  # fused multiply-adds, explicit or contracted by NVVM
FLOAT_MUL_ADD = re.compile(r"\b(?:mul|add|sub)(?:\.rn)?\.f(?:32|64)\b")  # a separate float multiply, add
SHARED = re.compile(r"^\s*(?:\.visible\s+)?\.shared\s+(?:\.align\s+\d+\s+)?\.\w+\s+[\w$]+\[(\d+)\]")


def code_lines(ptx):
    """The PTX lines that are code, comments removed."""
    lines = (line.split("//", 1)[0].strip() for line in ptx.splitlines())
    return [line for line in lines if line]


def read_ptx(ptx):
    """What the PTX says about float64, local memory and static shared memory."""
    lines = code_lines(ptx)
    return {
        "f64_lines": [t for t in lines if F64.search(t)],
        "fma_count": sum(1 for t in lines if FMA.search(t)),
        "float_mul_add_lines": [t for t in lines if FLOAT_MUL_ADD.search(t)],
        "local_lines": [t for t in lines if LOCAL.search(t)],
        "shared_bytes": sum(int(m.group(1)) for t in lines if (m := SHARED.match(t))),
        "instructions": sum(1 for t in lines if not t.startswith((".", "{", "}", "$", "//")) and not t.endswith(":")),
        "ptx_target": next((t.split()[1] for t in lines if t.startswith(".target")), None),
    }


def source_of(ptx_with_lines, pattern):
    """file:line and the Python source of each PTX instruction matching ``pattern``,
    from the .loc directives that lineinfo adds."""
    lines = code_lines(ptx_with_lines)
    files = {t.split()[1]: t.split('"')[1] for t in lines if t.startswith(".file")}  # NVVM puts them last
    here, found = None, []
    for text in lines:
        if text.startswith(".loc"):
            parts = text.split()
            here = (files.get(parts[1], "?"), int(parts[2]))
        elif pattern.search(text) and here and here not in found:
            found.append(here)
    out = []
    for path, line in found:
        try:
            source = Path(path).read_text().splitlines()[line - 1].strip()
        except (OSError, IndexError):
            source = ""
        out.append(f"{Path(path).name}:{line}: {source}")
    return out


PTXAS_USED = re.compile(r"Used (\d+) registers")
PTXAS_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
PTXAS_SMEM = re.compile(r"(\d+) bytes smem")
# ptxas older than the NVVM that wrote the PTX: a toolchain mismatch, not a kernel's fault
PTXAS_TOO_OLD = re.compile(r"Unsupported \.version|Unsupported \.target|not (?:defined|supported) for")


def find_ptxas():
    """ptxas and where it came from: the nvidia-cuda-nvcc wheel (the ptx extra), CUDA_HOME
    or CUDA_PATH, PATH, /usr/local/cuda; (None, why) when none is found."""
    from importlib import metadata

    candidates = []
    try:
        for file in metadata.distribution("nvidia-cuda-nvcc").files or ():
            if file.name == "ptxas":
                candidates.append(("nvidia-cuda-nvcc wheel", Path(file.locate())))
    except metadata.PackageNotFoundError:
        pass
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append((var, Path(os.environ[var]) / "bin" / "ptxas"))
    if shutil.which("ptxas"):
        candidates.append(("PATH", Path(shutil.which("ptxas"))))
    candidates.append(("/usr/local/cuda", Path("/usr/local/cuda/bin/ptxas")))
    for how, path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path), how
    return None, "no ptxas: not in the nvidia-cuda-nvcc wheel, CUDA_HOME, CUDA_PATH, PATH or /usr/local/cuda"


def run_ptxas(ptxas, ptx_path, cc):
    """ptxas -v on one PTX file: registers, spills, stack and shared memory, or the error."""
    done = subprocess.run(
        [ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", ptx_path, "-o", os.devnull], capture_output=True, text=True
    )
    log = done.stdout + done.stderr
    if done.returncode != 0:
        return {"error": log.strip(), "toolchain_mismatch": bool(PTXAS_TOO_OLD.search(log))}
    spills = [tuple(map(int, m)) for m in PTXAS_SPILLS.findall(log)]
    used = PTXAS_USED.findall(log)
    smem = PTXAS_SMEM.findall(log)
    return {
        "registers": max(map(int, used)) if used else 0,
        "stack_bytes": sum(s[0] for s in spills),
        "spill_store_bytes": sum(s[1] for s in spills),
        "spill_load_bytes": sum(s[2] for s in spills),
        "smem_bytes": max(map(int, smem)) if smem else 0,
    }


def _toolchain():
    """numba-cuda's NVRTC, NVVM and libdevice, loaded as a compile would; raises if missing."""
    from numba.cuda.cuda_paths import get_cuda_paths
    from numba.cuda.cudadrv import nvvm

    paths = get_cuda_paths()
    version = nvvm.NVVM().get_version()
    return {name: f"{paths[name].info} (found via {paths[name].by})" for name in ("nvvm", "libdevice", "nvrtc")} | {
        "nvvm_version": ".".join(map(str, version))
    }


def _argtypes(args):
    from numba import types
    from numba.np import numpy_support

    out = []
    for arg in args:
        dtype = numpy_support.from_dtype(np.dtype(arg[1]))
        out.append(types.Array(dtype, arg[2], arg[3]) if arg[0] == "array" else dtype)
    return tuple(out)


def compile_request(request, workdir):
    """Answer a request {"cc": [major, minor], "launches": [...]} (see compile_in_subprocess)."""
    import importlib

    try:
        from numba import cuda
        from numba.cuda import dispatcher

        toolchain = _toolchain()
    except Exception as exc:  # the CUDA libraries are missing: say which, and skip
        return {
            "skip": f"numba-cuda cannot compile for a GPU here ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); "
            "install the NVVM, NVRTC and ptxas wheels: pip install -e '.[ptx]'"
        }
    ptxas, ptxas_how = find_ptxas()
    toolchain["ptxas"] = f"{ptxas} ({ptxas_how})" if ptxas else ptxas_how
    if ptxas:
        toolchain["ptxas_version"] = (
            subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
        )
    kernels = {}
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                isinstance(value, dispatcher.CUDADispatcher)
                and not value.targetoptions.get("device")
                and value.py_func.__module__ == name
            ):
                kernels[(name, attr)] = value
    cc = tuple(request["cc"])
    # Device functions are compiled for the current device's compute capability (numba-cuda's
    # CUDADispatcher.compile_device asks the driver): a stand-in device answers instead.
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=cc)
    rows, jobs = [], []
    for launch in request["launches"]:
        row = {**launch, "cc": list(cc)}
        rows.append(row)
        kernel = kernels.get((launch["module"], launch["kernel"]))
        if kernel is None:
            row["error"] = "no such kernel"
            continue
        options = kernel.targetoptions  # compile as the dispatcher does at launch
        compile_options = dict(
            debug=options["debug"],
            lineinfo=options["lineinfo"],
            fastmath=options["fastmath"],
            opt=options["opt"],
            launch_bounds=options["launch_bounds"],
            cc=cc,
        )
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, _argtypes(launch["args"]), **compile_options)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
            continue
        row.update(read_ptx(ptx))
        with_lines = None
        if row["f64_lines"] and _float_dtypes(launch["args"]) == {"float32"}:
            with_lines, _ = cuda.compile_ptx(
                kernel.py_func, _argtypes(launch["args"]), **{**compile_options, "lineinfo": True}
            )
            row["f64_sources"] = source_of(with_lines, F64)
        if cc == CCS[0]:  # fma.rn with NVVM's contraction off (-fma=0): explicit fma only
            row["fma_count_uncontracted"] = read_ptx(
                _compile_uncontracted(kernel.py_func, _argtypes(launch["args"]), compile_options)
            )["fma_count"]
        if row["fma_count"] and cc == CCS[0]:  # where each fma.rn comes from (one capability suffices)
            if with_lines is None:
                with_lines, _ = cuda.compile_ptx(
                    kernel.py_func, _argtypes(launch["args"]), **{**compile_options, "lineinfo": True}
                )
            row["fma_sources"] = source_of(with_lines, FMA)
        path = Path(workdir) / f"{launch['kernel']}-{len(rows)}-sm{cc[0]}{cc[1]}.ptx"
        path.write_text(ptx)
        row["ptx"] = str(path)
        if ptxas:
            jobs.append((row, str(path), cc))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for row, result in zip([j[0] for j in jobs], pool.map(lambda j: run_ptxas(ptxas, j[1], j[2]), jobs)):
            row["ptxas"] = result
    return {"toolchain": toolchain, "kernels": sorted(map(list, kernels)), "rows": rows}


def _compile_uncontracted(py_func, argtypes, compile_options):
    """The PTX of a kernel with NVVM told not to contract a * b + c (its -fma=0 option,
    which numba-cuda does not expose: passed by wrapping nvvm.compile_ir for this call).
    Explicit fma (llvm.fma) stays fma.rn; only contractions disappear."""
    from numba import cuda
    from numba.cuda.cudadrv import nvvm

    original = nvvm.compile_ir

    def no_contraction(llvmir, **options):
        return original(llvmir, **{**options, "fma": False})

    nvvm.compile_ir = no_contraction
    try:
        ptx, _ = cuda.compile_ptx(py_func, argtypes, **compile_options)
    finally:
        nvvm.compile_ir = original
    return ptx


def _float_dtypes(args):
    return {a[1] for a in args if a[0] == "array" and a[1].startswith("float")}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") != "0":
        sys.exit("tests.ptx: run with NUMBA_ENABLE_CUDASIM=0 (the simulator compiles nothing)")
    request = json.loads(Path(argv[0]).read_text())
    workdir = argv[1] if len(argv) > 1 else tempfile.mkdtemp(prefix="numnet-ptx-")
    json.dump(compile_request(request, workdir), sys.stdout)


if __name__ == "__main__":
    main()
