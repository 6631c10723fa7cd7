"""numnet.format against live torch: format_tensor(a) == str(torch.from_numpy(a)).

Arrays are drawn from small pools of awkward values (NaN, +-Inf, -0.0, subnormals,
whole numbers, values on the 1e-4 / 1e8 / ratio-1000 style boundaries and on .4f
rounding ties) so that one tensor mixes styles, in shapes that straddle the
1000-element summary threshold and the 80-column line wrap.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from numnet._format import format_tensor  # noqa: E402

DTYPES = {32: np.float32, 64: np.float64}

# Where torch's style or rounding changes: the sci switches, .4f ties, extremes.
BOUNDARIES = [
    0.0,
    -0.0,
    np.nan,
    np.inf,
    -np.inf,
    1.0,
    -1.0,
    0.5,
    2.5,
    1e-4,
    9.999e-5,
    1.0001e-4,
    1e8,
    1e8 + 8,
    99999999.0,
    1000.0,
    1000.5,
    1e-3,
    5e-5,
    0.00015,
    0.99995,
    9.99995,
    -0.00004,
    1.5e-45,
    5e-324,
    1.2e-38,
    3.4e38,
    1.7e308,
    2.0**24 + 1,
    123456789.0,
]


def values(width):
    """One element, as a Python float (rounded to float32 later when width is 32)."""
    return st.one_of(
        st.floats(width=width),
        st.floats(-10, 10, width=width),
        st.integers(-(10**6), 10**6).map(float),
        st.sampled_from(BOUNDARIES),
        st.builds(lambda m, e: m * 10.0**e, st.floats(-10, 10), st.integers(-40, 40)),
    )


SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7),
    st.tuples(st.integers(1, 3), st.integers(0, 40)),  # rows that wrap at 80 columns
    st.integers(990, 1010).map(lambda n: (n,)),
    st.tuples(st.integers(15, 45), st.integers(20, 70)),  # around 1000 elements
    st.sampled_from(
        [
            (1000,),
            (1001,),
            (10, 10, 10),
            (10, 10, 11),
            (1, 1, 1001),
            (7, 7, 21),
            (2, 500),
            (3, 334),
            (0, 2000),
            (1001, 0),
            (8, 5, 26),
        ]
    ),
)


@st.composite
def arrays(draw):
    """An array whose every element is drawn from a small pool of values."""
    width = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(SHAPES)
    pool = draw(st.lists(values(width), min_size=1, max_size=6))
    seed = draw(st.integers(0, 2**32 - 1))
    with np.errstate(over="ignore"):  # 1e40 -> inf in float32, as torch would store it
        pool = np.array(pool, dtype=DTYPES[width])
    picks = np.random.default_rng(seed).integers(0, len(pool), size=shape)
    return np.asarray(pool[picks])  # a 0-d pick would be a numpy scalar


def _assert_prints_like_torch(a):
    expected = str(torch.from_numpy(a))
    got = format_tensor(a)
    assert got == expected, f"shape {a.shape} {a.dtype}\ntorch:\n{expected}\nnumnet:\n{got}"


@given(arrays())
def test_format_matches_torch(a):
    _assert_prints_like_torch(a)


@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
    )
)
def test_format_matches_torch_any_floats(a):
    _assert_prints_like_torch(a)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(1, 5), (1, 1), (4, 8), (64,), (2, 3, 4), (40, 50)])
def test_format_matches_torch_randn(shape, seed):
    # The notebook's usual data: standard normal float32.
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    _assert_prints_like_torch(a)
