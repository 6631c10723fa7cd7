"""numnet.random against torch's CPU generator, bit for bit (tobytes equality, no tolerance).

Seeds (0, 2**32 - 1, negatives, up to 2**64 - 1), sizes on both sides of the 16-element
switch, shapes, dtypes, and mixed sequences of calls on one seeded generator, each
compared with torch.manual_seed / torch.randn and torch.Generator. Bit equality holds on
x86-64 with AVX2 (torch routes AVX-512 to the same kernel); see numnet.random's docstring.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

torch = pytest.importorskip("torch")

import numnet.random as nr  # noqa: E402

TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
SEEDS = st.one_of(
    st.sampled_from([0, 1, 7, 2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1, -1, -(2**63)]),
    st.integers(-(2**63), 2**64 - 1),
)
SIZES = st.one_of(st.sampled_from([0, 1, 5, 15, 16, 17, 31, 32, 33, 1000]), st.integers(0, 4000))
DTYPES = st.sampled_from([np.float32, np.float64])


def assert_same_bits(ours, theirs):
    """numnet's array and torch's tensor: same shape, dtype and bytes."""
    theirs = theirs.numpy()
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    if ours.tobytes() != theirs.tobytes():
        bad = np.flatnonzero(ours.reshape(-1) != theirs.reshape(-1))
        raise AssertionError(
            f"{bad.size} of {ours.size} elements differ, first at {bad[:5]}: "
            f"{ours.reshape(-1)[bad[:5]]} vs {theirs.reshape(-1)[bad[:5]]}"
        )


@given(SEEDS, SIZES, DTYPES)
def test_randn_matches_torch(seed, n, dtype):
    nr.manual_seed(seed)
    torch.manual_seed(seed)
    assert_same_bits(nr.randn(n, dtype=dtype), torch.randn(n, dtype=TORCH_DTYPES[dtype]))
    assert nr.initial_seed() == torch.initial_seed()


@given(SEEDS, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12), DTYPES)
def test_shapes_match_torch(seed, shape, dtype):
    nr.manual_seed(seed)
    torch.manual_seed(seed)
    assert_same_bits(nr.randn(shape, dtype=dtype), torch.randn(shape, dtype=TORCH_DTYPES[dtype]))
    if shape:  # randn() with no size at all is a TypeError in both
        assert_same_bits(nr.randn(*shape, dtype=dtype), torch.randn(*shape, dtype=TORCH_DTYPES[dtype]))


CALLS = st.lists(st.tuples(st.one_of(st.integers(0, 20), st.integers(0, 300)), DTYPES), min_size=1, max_size=8)


@given(SEEDS, CALLS)
def test_call_sequences_match_torch_generator(seed, calls):
    """Mixed small/large, float32/float64 calls on one generator: the cached double
    normal and the tail-block redraws must line up with torch's after every call."""
    ours = nr.Generator(seed)
    theirs = torch.Generator().manual_seed(seed)
    for n, dtype in calls:
        assert_same_bits(ours.randn(n, dtype=dtype), torch.randn(n, dtype=TORCH_DTYPES[dtype], generator=theirs))
    assert ours.get_state().tobytes() == theirs.get_state().numpy().tobytes()


@given(SEEDS, CALLS, CALLS)
def test_states_cross_over(seed, before, after):
    """A torch state loaded into numnet, and a numnet state loaded into torch, replay alike."""
    theirs = torch.Generator().manual_seed(seed)
    for n, dtype in before:
        torch.randn(n, dtype=TORCH_DTYPES[dtype], generator=theirs)
    ours = nr.Generator(0)
    ours.set_state(theirs.get_state().numpy())
    for n, dtype in after:
        assert_same_bits(ours.randn(n, dtype=dtype), torch.randn(n, dtype=TORCH_DTYPES[dtype], generator=theirs))
    theirs.manual_seed(1)
    theirs.set_state(torch.from_numpy(ours.get_state()))
    for n, dtype in before:
        assert_same_bits(ours.randn(n, dtype=dtype), torch.randn(n, dtype=TORCH_DTYPES[dtype], generator=theirs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_million(dtype):
    nr.manual_seed(2024)
    torch.manual_seed(2024)
    assert_same_bits(nr.randn(1_000_000, dtype=dtype), torch.randn(1_000_000, dtype=TORCH_DTYPES[dtype]))
    assert_same_bits(nr.randn(5, dtype=dtype), torch.randn(5, dtype=TORCH_DTYPES[dtype]))


def test_randn_like_matches_torch():
    nr.manual_seed(7)
    torch.manual_seed(7)
    t = torch.zeros(3, 7, dtype=torch.float64)
    assert_same_bits(nr.randn_like(t), torch.randn_like(t))  # a torch tensor works as the template
    assert_same_bits(nr.randn_like(np.zeros((4, 5), np.float32)), torch.randn_like(torch.zeros(4, 5)))
    assert_same_bits(
        nr.randn_like(np.zeros(20), dtype=np.float32),
        torch.randn_like(torch.zeros(20, dtype=torch.float64), dtype=torch.float32),
    )


def test_seed_range_errors_match_torch():
    for seed in (2**64, -(2**63) - 1):
        with pytest.raises(ValueError):
            torch.manual_seed(seed)
        with pytest.raises(ValueError):
            nr.manual_seed(seed)


@pytest.mark.parametrize("size", [(-1,), (2, -3)])
def test_negative_sizes_raise_like_torch(size):
    with pytest.raises(RuntimeError, match=f"negative dimension {min(size)}"):
        torch.randn(*size)
    with pytest.raises(ValueError, match=f"negative dimension {min(size)}"):
        nr.randn(*size)


@pytest.mark.parametrize("size", [(3.0,), (True,), ()])
def test_bad_sizes_raise_type_error_like_torch(size):
    with pytest.raises(TypeError):
        torch.randn(*size)
    with pytest.raises(TypeError):
        nr.randn(*size)
