"""numnet._jit: compiled kernels are cached, and a read-only install without a writable
home falls back to a per-user folder in the temp directory instead of failing."""
from numba import config

from numnet import _jit


def test_no_locator_falls_back_to_a_temp_cache_dir(monkeypatch):
    calls = []

    def fake_njit(**options):
        calls.append((options, config.CACHE_DIR))
        if options.get("cache") and not config.CACHE_DIR:
            raise RuntimeError("cannot cache function 'f': no locator available for file '/ro/f.py'")
        return lambda fn: ("compiled", options)

    monkeypatch.setattr(_jit, "njit", fake_njit)
    monkeypatch.setattr(config, "CACHE_DIR", "")
    compiled = _jit.jit(lambda x: x, inline="always")
    assert compiled == ("compiled", {"cache": True, "inline": "always"})
    assert config.CACHE_DIR == _jit._temp_cache_dir()
    assert len(calls) == 2


def test_no_cache_at_all_still_compiles(monkeypatch):
    def fake_njit(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available")
        return lambda fn: ("compiled", options)

    monkeypatch.setattr(_jit, "njit", fake_njit)
    monkeypatch.setattr(config, "CACHE_DIR", "/somewhere/read-only")
    assert _jit.jit(lambda x: x) == ("compiled", {})
