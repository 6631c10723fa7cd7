"""numnet._jit's choice of cache folder and its thread count, in this process (the
processes that share a cache are tests/test_cache.py's)."""

import os

import numba

from numnet import _jit


def test_the_first_writable_folder_is_taken(monkeypatch, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.touch()
    monkeypatch.setenv("NUMNET_CACHE_DIR", str(a_file / "cache"))  # cannot be made
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert _jit._choose_root() == (tmp_path / "numba" / "numnet", [])
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(a_file))
    monkeypatch.setattr(_jit.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert _jit._choose_root()[0].parent == tmp_path / "tmp"


def test_numnet_cache_0_turns_the_cache_off(monkeypatch):
    monkeypatch.setenv("NUMNET_CACHE", "0")
    assert _jit._choose_root() == (None, [])


def test_options_name_the_files_apart():
    """The threaded and the serial compilation of one function must not share files
    (numba's index key does not hold the options)."""

    def f(x):
        return x

    parallel = _jit._CacheImpl(f, {"parallel": True}).filename_base
    serial = _jit._CacheImpl(f, {}).filename_base
    assert parallel != serial and f.__qualname__.replace("<", "").replace(">", "") in serial


def test_threads_leaves_out_the_cores_others_keep_busy(monkeypatch):
    cores = numba.config.NUMBA_NUM_THREADS
    readings = iter([0.0, cores * _jit.SAMPLE_SECONDS])  # the whole machine busy between readings
    monkeypatch.setattr(_jit, "_machine_busy_seconds", lambda: next(readings))
    monkeypatch.setattr(os, "times", lambda: os.times_result((0, 0, 0, 0, 0)))
    load = _jit._Load()
    load.read(100.0)
    load.read(100.0 + _jit.SAMPLE_SECONDS)
    assert load.threads == 1
    assert load.next_reading == 100.0 + 2 * _jit.SAMPLE_SECONDS


def test_threads_counts_this_process_as_no_one_else(monkeypatch):
    cores = numba.config.NUMBA_NUM_THREADS
    readings = iter([0.0, cores * _jit.SAMPLE_SECONDS])
    spent = iter([0.0, cores * _jit.SAMPLE_SECONDS])  # and all of it was ours
    monkeypatch.setattr(_jit, "_machine_busy_seconds", lambda: next(readings))
    monkeypatch.setattr(os, "times", lambda: os.times_result((next(spent), 0, 0, 0, 0)))
    load = _jit._Load()
    load.read(100.0)
    load.read(100.0 + _jit.SAMPLE_SECONDS)
    assert load.threads == cores


def test_only_numnet_directories_are_pruned_or_cleared(monkeypatch, tmp_path):
    """The cache folder may be one the user shares ($NUMBA_CACHE_DIR/numnet, or any
    $NUMNET_CACHE_DIR): numnet removes nothing there but its own tag directories."""
    mine = [tmp_path / f"0.1.0-{i:016x}" for i in range(6)]
    theirs = [tmp_path / "notes", tmp_path / "0.1.0-not-a-hash", tmp_path / "build"]
    for d in mine + theirs:
        d.mkdir()
        (d / "f").write_bytes(b"x")
    for age, d in enumerate(mine):
        os.utime(d, (1000 + age, 1000 + age))
    monkeypatch.setattr(_jit, "CACHE_ROOT", tmp_path)
    monkeypatch.setattr(_jit, "CACHE_DIR", mine[-1])
    _jit._prune_old_tags()
    assert sorted(d for d in tmp_path.iterdir()) == sorted(mine[-_jit.KEEP_TAGS :] + theirs)
    _jit.clear_cache()
    assert sorted(d for d in tmp_path.iterdir()) == sorted(theirs)


def test_a_long_compile_is_announced_once(tmp_path):
    """An empty cache's first run compiles for many seconds: numnet says so, once, on
    stderr, and only for its own code (a user's numba function compiles silently)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import numba, numpy as np
        from numnet import _jit
        _jit.NOTICE_SECONDS = 0.0  # announce at once (2 s in real use)
        numba.njit(lambda x: x + 1)(1)  # the user's own function: nothing said
        import sys; print("user compiled", file=sys.stderr, flush=True)
        import numnet
        numnet.sigmoid(np.zeros(3, np.float32))
        numnet.mm(np.ones((2, 2)), np.ones((2, 2)))
    """)
    env = {**os.environ, "NUMNET_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["user compiled", _jit.compile_notice()], done.stderr
