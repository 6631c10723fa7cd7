"""numnet's compiled-code cache and threads in real programs (numnet/_jit.py says why):
sequences of processes sharing one cache, forked and spawned workers, Python threads,
a learner's edit to a kernel, damaged caches, and ``numnet cache``.

Every test here that starts processes gives them a cache folder of its own
(NUMNET_CACHE_DIR in tmp_path), so that what one process leaves is what the next finds.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import numnet
from numnet import _jit

PACKAGE = Path(numnet.__file__).resolve().parent


def cache_env(cache):
    """The environment of a process under test: ``cache`` as its cache folder, and the
    numnet this test imported first on its path (not another install of it).
    NUMBA_CACHE_DIR too: where numba's own cache=True put numnet's code before numnet
    had a cache of its own, so that these tests mean the same on an older numnet."""
    path = os.pathsep.join([str(PACKAGE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"NUMNET_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": path}


def run(code, cache, timeout=300, env=None, **kwargs):
    """Run ``python -c code`` in a new process with ``cache`` as numnet's cache folder."""
    environment = {**os.environ, **cache_env(cache), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environment,
        timeout=timeout,
        capture_output=True,
        text=True,
        **kwargs,
    )


def stderr_of(proc):
    """What a process wrote on stderr, less numnet's one line saying it is compiling."""
    return without_notice(proc.stderr)


def without_notice(stderr):
    """stderr less numnet's compile notice (printed when compiling takes over 2 s: a
    loaded machine can take that long for any first run)."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not line.startswith("numnet: compiling numnet's kernels")
    )


def assert_clean(proc, stdout=None):
    """Exit status 0 (a segfault is -11), nothing on stderr (no traceback, no warning)."""
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert stderr_of(proc) == "", proc.stderr
    if stdout is not None:
        assert proc.stdout == stdout


# -- sequences of processes ------------------------------------------------------------

LINEAR = """
import numpy as np, numnet
x = np.ones((1, 5), np.float32); W = np.ones((5, 1), np.float32)
print(numnet.linear(x, W, np.ones({bias}, np.float32)))
"""


def test_three_runs_sharing_a_cache(tmp_path):
    """The issue's sequence: a new bias form compiled where _mm came from the cache was
    saved without "start the threading layer", and the third run jumped to address 0."""
    for bias in ["(1, 1)", "(1,)", "(1,)"]:
        assert_clean(run(LINEAR.format(bias=bias), tmp_path), "[[6.]]\n")


def test_walkthrough_then_train_twice(tmp_path):
    """The same crash reached through the commands: loss_and_grads's linear_act_kernel."""
    env = {**os.environ, **cache_env(tmp_path)}
    numnet_command = [sys.executable, "-m", "numnet"]
    walk = subprocess.run([*numnet_command, "walkthrough"], env=env, capture_output=True, text=True, timeout=300)
    assert walk.returncode == 0 and "tensor([[0.3171]])" in walk.stdout, walk.stderr
    for _ in range(2):
        train = subprocess.run(
            [*numnet_command, "train", "--epochs", "2"], env=env, capture_output=True, text=True, timeout=300
        )
        assert train.returncode == 0, train.stdout + train.stderr
        assert "accuracy" in train.stdout


def test_concurrent_first_compiles_into_one_empty_cache(tmp_path):
    """Three processes compile the same functions at once (two bias forms: two
    signatures of one function, the case numba's numbered data files mixed up)."""
    procs = []
    environment = {**os.environ, **cache_env(tmp_path)}
    for bias in ["(1, 1)", "(1,)", "(1, 1)"]:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", LINEAR.format(bias=bias)],
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert (p.returncode, out, without_notice(err)) == (0, "[[6.]]\n", ""), err
    for bias in ["(1,)", "(1, 1)"]:  # then both forms from the cache
        assert_clean(run(LINEAR.format(bias=bias), tmp_path), "[[6.]]\n")


# -- workers: fork, spawn, threads -------------------------------------------------------

WORKERS = """
import multiprocessing as mp, numpy as np, numnet

def product(_):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 200), np.float32), rng.standard_normal((200, 300), np.float32)
    return numnet.mm(a, b).tobytes()

if __name__ == "__main__":
    if {parent_runs}:
        want = product(0)
    ctx = mp.get_context("{method}")
    with ctx.Pool(2) as pool:
        result = pool.map_async(product, range(4))
        got = result.get(timeout=120)
    print("same" if set(got) == {{product(0)}} else "different")
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("parent_runs", [False, True], ids=["after-import", "after-a-product"])
def test_worker_processes_run_a_large_product(method, parent_runs, tmp_path):
    """A child forked after its parent started GNU OpenMP runs numnet on one thread (an
    OpenMP region there would be killed by numba: "fork() called from a process already
    using GNU OpenMP"); the results are the same bits either way."""
    script = tmp_path / "workers.py"  # spawn re-imports the main module: it must be a file
    script.write_text(textwrap.dedent(WORKERS.format(method=method, parent_runs=parent_runs)))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **cache_env(tmp_path / "cache")},
    )
    assert_clean(proc, "same\n")


def test_a_forked_child_of_an_openmp_parent_runs_serially():
    """What the fork rule decides, in this process's terms (numnet/_jit.py)."""
    numnet.mm(np.ones((300, 200), np.float32), np.ones((200, 300), np.float32))  # starts the layer
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and exit without running pytest's teardown
        os.write(write, f"{int(_jit._serial_only)}{_jit.threads()}".encode())
        os._exit(0)
    os.close(write)
    serial_only, child_threads = os.read(read, 16).decode()
    os.waitpid(pid, 0)
    import numba

    gnu_openmp = numba.threading_layer() == "omp" and sys.platform.startswith("linux")
    assert serial_only == str(int(gnu_openmp))
    if gnu_openmp:
        assert child_threads == "1"
    assert not _jit._serial_only


def test_python_threads_get_the_serial_results():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 300), np.float32)
    layers = [
        (rng.standard_normal((300, 64), np.float32) / 17, rng.standard_normal(64, np.float32)),
        (rng.standard_normal((64, 10), np.float32) / 8, rng.standard_normal(10, np.float32)),
    ]
    target = rng.integers(0, 10, 200)
    big = rng.standard_normal(100_000, np.float32)
    tasks = [
        lambda: numnet.mm(x, layers[0][0]),
        lambda: numnet.linear(x, *layers[0]),
        lambda: numnet.forward(x, layers, hidden="relu", output="none"),
        lambda: numnet.forward(x[:2, :3], [(layers[0][0][:3, :2], layers[0][1][:2])]),
        lambda: numnet.sigmoid(big),
        lambda: numnet.loss_and_grads(x, target, layers, hidden="relu", output="none", loss="cross_entropy")[1][0][0],
    ]
    serial = [task().tobytes() for task in tasks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(tasks[i % len(tasks)]) for i in range(8 * len(tasks))]
        threaded = [f.result().tobytes() for f in futures]
    assert all(got == serial[i % len(tasks)] for i, got in enumerate(threaded))


# -- a learner's edit ---------------------------------------------------------------------

FORWARD_IDENTITY = """
import numpy as np, numnet
assert numnet.__file__.startswith({root!r}), numnet.__file__
x = np.array([[1.0, 2.0, 3.0]], np.float32)
print(numnet.forward(x, [(np.eye(3, dtype=np.float32), np.zeros(3, np.float32))], hidden="none", output="none"))
"""


def test_an_edited_kernel_is_used_everywhere(tmp_path):
    """_mm_loops (kernels.py) is compiled into ops._forward_if_fit (ops.py): numba's own
    cache kept serving the old _forward_if_fit after an edit to kernels.py."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE, root / "numnet", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(root)}
    code = FORWARD_IDENTITY.format(root=str(root))
    assert_clean(run(code, tmp_path / "cache", env=env, cwd=root), "[[1. 2. 3.]]\n")
    kernels = root / "numnet" / "kernels.py"
    source = kernels.read_text()
    plain = "        for j in range(m):\n            out[i, j] = zero\n"
    assert source.count(plain) == 1, "the line this test edits has moved: update the test"
    kernels.write_text(source.replace(plain, "        for j in range(m):\n            out[i, j] = zero + one\n"))
    assert_clean(run(code, tmp_path / "cache", env=env, cwd=root), "[[2. 3. 4.]]\n")


# -- damage --------------------------------------------------------------------------------

NOTEBOOK_FORWARD = """
import numnet
numnet.manual_seed(7)
features = numnet.randn((1, 3)); W1 = numnet.randn(3, 2); W2 = numnet.randn(2, 1)
B1 = numnet.randn((1, 2)); B2 = numnet.randn((1, 1))
print(numnet.format(numnet.forward(features, [(W1, B1), (W2, B2)])))
"""
NOTEBOOK_OUTPUT = "tensor([[0.3171]])\n"


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory):
    """A cache folder after one run of the notebook's network."""
    cache = tmp_path_factory.mktemp("filled")
    assert_clean(run(NOTEBOOK_FORWARD, cache), NOTEBOOK_OUTPUT)
    return cache


def _files(cache, suffix):
    found = list(Path(cache).rglob(f"*{suffix}"))
    assert found, f"no {suffix} files in {cache}"
    return found


def truncate(cache, suffix):
    for f in _files(cache, suffix):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def garble(cache, suffix):
    rng = np.random.default_rng(0)
    for f in _files(cache, suffix):
        f.write_bytes(rng.integers(0, 256, f.stat().st_size, dtype=np.uint8).tobytes())


def flip_one_byte(cache, suffix):
    """One byte inside the compiled code: still a valid pickle, wrong machine code."""
    for f in _files(cache, suffix):
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))


DAMAGE = {
    "truncated .nbc": lambda c: truncate(c, ".nbc"),
    "truncated .nbi": lambda c: truncate(c, ".nbi"),
    "garbage .nbc": lambda c: garble(c, ".nbc"),
    "garbage .nbi": lambda c: garble(c, ".nbi"),
    "one byte of .nbc": lambda c: flip_one_byte(c, ".nbc"),
    "empty files": lambda c: [f.write_bytes(b"") for f in _files(c, ".nbi") + _files(c, ".nbc")],
    "folder vanished": lambda c: shutil.rmtree(c),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_recompiles(damage, filled_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(filled_cache, cache)
    DAMAGE[damage](cache)
    assert_clean(run(NOTEBOOK_FORWARD, cache), NOTEBOOK_OUTPUT)
    assert_clean(run(NOTEBOOK_FORWARD, cache), NOTEBOOK_OUTPUT)  # and what it saved instead


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_cache_is_passed_over(filled_cache, tmp_path):
    """A cache folder that became read-only between runs: numnet takes the next folder
    (here the temp folder) and runs. Root writes through permissions, so as root the
    folder is made immutable (chattr +i) instead."""
    cache = tmp_path / "cache"
    shutil.copytree(filled_cache, cache)
    if os.geteuid() == 0:
        lock = subprocess.run(["chattr", "-R", "+i", str(cache)], capture_output=True, text=True)
        if lock.returncode:
            pytest.skip(f"cannot make a folder read-only for root here: {lock.stderr.strip()}")
    else:
        for path in [cache, *cache.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    temp = tmp_path / "tmp"
    temp.mkdir()
    not_a_folder = tmp_path / "a-file"  # as $XDG_CACHE_HOME: ~/.cache/numnet cannot be made
    not_a_folder.touch()
    try:
        proc = run(NOTEBOOK_FORWARD, cache, env={"TMPDIR": str(temp), "XDG_CACHE_HOME": str(not_a_folder)})
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-R", "-i", str(cache)])
        else:
            for path in [cache, *cache.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
    assert_clean(proc, NOTEBOOK_OUTPUT)
    assert any(temp.rglob("*.nbi")), "expected the run to cache in the temp folder"


def test_saving_into_a_folder_that_fails_does_not_raise(monkeypatch):
    """Within one process: the folder stops being writable between two compiles."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_jit._CacheFile, "save", refuse)

    @_jit.jit
    def plus_one(x):
        return x + 1

    assert plus_one(41) == 42 and plus_one(0.5) == 1.5


def test_a_data_file_for_another_key_is_a_miss(tmp_path):
    f = _jit._CacheFile(str(tmp_path), "f-1.py311", "stamp")
    f.save(("key", 1), {"code": 1})
    f.save(("key", 2), {"code": 2})
    assert f.load(("key", 1)) == {"code": 1} and f.load(("key", 2)) == {"code": 2}
    index = f._load_index()
    index[("key", 1)] = index[("key", 2)]  # an index that points at another key's file
    f._save_index(index)
    assert f.load(("key", 1)) is None


# -- numnet cache ------------------------------------------------------------------------------


def test_numnet_cache_shows_and_clears(filled_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(filled_cache, cache)
    (cache / "0.0.9-0123456789abcdef").mkdir()  # an older numnet's, kept beside the current one
    (cache / "0.0.9-0123456789abcdef" / "f.nbi").write_bytes(b"x" * 1000)
    show = run("from numnet.commands.cli import main; main(['cache'])", cache)
    assert_clean(show)
    assert f"folder   {cache}" in show.stdout
    assert "current  0.1.0-" in show.stdout and "older    0.0.9-0123456789abcdef: 0.0 MB in 1 files" in show.stdout
    assert_clean(run("from numnet.commands.cli import main; main(['cache', '--clear'])", cache))
    assert not any(cache.iterdir())
    assert_clean(run(NOTEBOOK_FORWARD, cache), NOTEBOOK_OUTPUT)  # and numnet runs on


def test_the_tag_follows_the_sources(tmp_path):
    """CACHE_TAG changes with any source file of the package, and only with them."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE, root / "numnet", ignore=shutil.ignore_patterns("__pycache__"))
    code = "from numnet import _jit; print(_jit.CACHE_TAG)"
    env = {"PYTHONPATH": str(root)}
    first = run(code, tmp_path / "c", env=env, cwd=root).stdout
    assert run(code, tmp_path / "c", env=env, cwd=root).stdout == first == f"{_jit.CACHE_TAG}\n"
    with open(root / "numnet" / "walkthrough.py", "a") as f:
        f.write("\n# an edit\n")
    assert run(code, tmp_path / "c", env=env, cwd=root).stdout != first


def test_a_garbled_index_is_never_unpickled(tmp_path, monkeypatch):
    """An index that is not what numnet wrote reads as empty without reaching pickle:
    unpickling some garbage makes CPython print errors to stderr that no except can
    catch ('SystemError: deallocated bytearray object has exported buffers' came out of
    a garbled index once). One that numnet wrote reads back."""
    from numnet import _jit

    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    index = _jit._CacheFile(str(folder), "f.py311", "stamp")
    index._save_index({"key": "f-1.nbc"})
    assert index._load_index() == {"key": "f-1.nbc"}
    path = Path(index._index_path)
    whole = path.read_bytes()
    for garbled in (np.random.default_rng(0).integers(0, 256, len(whole), dtype=np.uint8).tobytes(), whole[:-1]):
        path.write_bytes(garbled)
        with monkeypatch.context() as m:
            m.setattr(_jit.pickle, "load", lambda *a: pytest.fail("a garbled index was unpickled"))
            m.setattr(_jit.pickle, "loads", lambda *a: pytest.fail("a garbled index was unpickled"))
            assert index._load_index() == {}
