"""How numnet compiles its CPU kernels: one decorator, ``jit``, for all of them.

Compiled machine code is cached on disk (``cache=True``), so a second process starts
without compiling. Numba keeps the cache beside the source (``__pycache__``) or, where
that is read-only, in ``~/.cache/numba``; where neither is writable (a read-only install
run by a user without a home directory) numba would refuse at import with "no locator
available". numnet then points numba at a per-user folder in the temp directory, and
only if even that fails compiles without a cache.
"""
import os
import tempfile

from numba import config, njit


def _temp_cache_dir():
    user = os.environ.get("USER") or str(getattr(os, "getuid", lambda: "user")())
    return os.path.join(tempfile.gettempdir(), f"numnet-numba-cache-{user}")


def jit(fn=None, **options):
    """``@numba.njit(cache=True, **options)``, falling back as the module docstring says."""
    if fn is None:
        return lambda f: jit(f, **options)
    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        if not config.CACHE_DIR:
            config.CACHE_DIR = _temp_cache_dir()
            try:
                return njit(cache=True, **options)(fn)
            except RuntimeError:
                pass
        return njit(**options)(fn)
