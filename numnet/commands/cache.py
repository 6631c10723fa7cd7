"""``numnet cache [--clear]``: where numnet keeps its compiled code, and how much
(numnet/_jit.py holds the cache itself)."""


def _megabytes(size):
    return f"{size / 1e6:.1f} MB"


def run(clear):
    """``numnet cache [--clear]``."""
    from numnet import _jit

    if clear:
        print(f"numnet cache: removed {_megabytes(_jit.clear_cache())}")
        return 0
    tags, (legacy, legacy_size, legacy_files) = _jit.cache_report()
    for folder, why in _jit.PASSED_OVER:
        print(f"passed over {folder}: {why}" if folder else f"passed over: {why}")
    if _jit.CACHE_ROOT is None:
        print("numnet cache: no folder numnet trusts and can write; numnet runs without a cache")
    else:
        print(f"folder   {_jit.CACHE_ROOT}")
        print(f"         {_jit.describe_folder(_jit.CACHE_ROOT)}")
        print(
            "         (the first of $NUMNET_CACHE_DIR, $NUMBA_CACHE_DIR/numnet, ~/.cache/numnet and "
            "a temp folder that numnet trusts and can write)"
        )
        if not any(current for *_, current in tags):
            print(f"current  {_jit.CACHE_TAG}: empty (nothing compiled yet)")
        for path, size, files, current in tags:
            label = "current" if current else "older"
            print(f"{label:<8} {path.name}: {_megabytes(size)} in {files} files, {_jit.describe_folder(path)}")
        print(f"total    {_megabytes(sum(size for _, size, _, _ in tags))}")
    if legacy_files:
        print(
            f"left by an older numnet beside its sources: {_megabytes(legacy_size)} in {legacy_files} files "
            "(numnet cache --clear removes them)"
        )
    return 0
