"""``numnet.cuda`` after ``import numnet`` alone, loaded on first use (numnet.__getattr__).

Each check runs in a fresh interpreter: what ``import numnet`` loads can only be seen
before anything else in the process has imported numba.cuda.
"""

import subprocess
import sys
import textwrap


def run_fresh(code):
    """Run ``code`` in a new Python (this one's, with this environment: conftest.py has
    set NUMBA_ENABLE_CUDASIM) and return what it printed."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


CUDA_LOADED = "any(m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda')) for m in sys.modules)"


def test_import_numnet_does_not_load_numba_cuda():
    assert run_fresh(f"""
        import sys
        import numnet
        print({CUDA_LOADED}, 'numnet.cuda' in sys.modules)
    """) == ["False", "False"]


def test_numnet_cuda_is_usable_after_import_numnet_alone():
    assert run_fresh(f"""
        import sys
        import numnet
        print(numnet.cuda.is_available() in (True, False))
        print({CUDA_LOADED}, numnet.cuda is sys.modules['numnet.cuda'])
    """) == ["True", "True", "True"]


def test_numnet_cuda_mm_runs_after_import_numnet_alone():
    # In Numba's CUDA simulator (conftest.py sets NUMBA_ENABLE_CUDASIM=1 unless told otherwise).
    out = run_fresh("""
        import numpy as np
        import numnet
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        b = np.arange(12, dtype=np.float32).reshape(3, 4)
        print(numnet.cuda.is_available())
        if numnet.cuda.is_available():
            print(numnet.cuda.mm(a, b).tolist() == (a.astype(np.float64) @ b).tolist())
    """)
    assert out in (["True", "True"], ["False"])


def test_import_star_and_dir():
    assert run_fresh(f"""
        import sys
        import numnet
        names = {{}}
        exec("from numnet import *", names)
        print('cuda' in dir(numnet), 'cuda' in numnet.__all__, 'mm' in names, {CUDA_LOADED})
    """) == ["True", "False", "True", "False"]


def test_other_missing_attributes_still_raise():
    assert run_fresh("""
        import numnet
        try:
            numnet.cdua
        except AttributeError as exc:
            print(str(exc) == "module 'numnet' has no attribute 'cdua'", hasattr(numnet, 'cdua'))
    """) == ["True", "False"]
