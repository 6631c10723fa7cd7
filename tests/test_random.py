"""numnet.random without torch: torch's own numbers for seed 7, bit for bit, and the
generator's rules (shapes, dtypes, stream continuity, state, seeds, errors).

Every expected value below was printed once by torch 2.13.0 (x86-64 CPU wheel, AVX2
path, glibc libm) and written down here; numnet never produced them.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numnet.random import STATE_DTYPE, Generator, default_generator, initial_seed, manual_seed, randn, randn_like

hx = float.fromhex


def f32(*hexes):
    return np.array([hx(h) for h in hexes], np.float32)


def bits32(*words):
    return np.array(words, np.uint32).view(np.float32)


def assert_bits(actual, expected):
    """Same shape, dtype and bytes (so -0.0 != 0.0 and NaNs compare by payload)."""
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.tobytes() == expected.tobytes(), f"\n{actual!r}\n!=\n{expected!r}"


# torch 2.13.0: torch.manual_seed(7); f = torch.randn((1, 5)); w = torch.randn_like(f); b = torch.randn((1, 1))
TORCH_SEED7_F = f32("-0x1.2ca2e8p-3", "0x1.92811cp-1", "0x1.e4c5cep-1", "-0x1.1d45a6p+0", "0x1.b0d7a0p+0")
TORCH_SEED7_W = f32("-0x1.ca26e2p-1", "-0x1.6c28f8p-2", "0x1.3b7da2p+0", "0x1.1afa44p-3", "-0x1.aea490p+0")
TORCH_SEED7_B = f32("0x1.454d76p-2")
# torch 2.13.0: the two-layer cell's B1 (1, 2) and B2 (1, 1), drawn after features, W1, W2
TORCH_SEED7_B1 = f32("0x1.0ffd1ap-3", "0x1.193d60p-3")
TORCH_SEED7_B2 = f32("0x1.eca372p-3")
# torch 2.13.0: torch.manual_seed(7); torch.randn(17), float32 bit patterns (large AVX2 path + tail block)
TORCH_SEED7_N17 = bits32(
    0xBF51F456,
    0xBEA62D99,
    0x3FF6933B,
    0xBEA8F74C,
    0x3E4B352E,
    0x3F4835EA,
    0x3F85017B,
    0xBF397989,
    0xBF595213,
    0xBE5C827D,
    0xBFE869CC,
    0xBEB0C38E,
    0xC003EF41,
    0x3F2C91DD,
    0xBFA96365,
    0xBFAE0CE9,
    0xBF5DE028,
)
# torch 2.13.0: torch.manual_seed(7); torch.randn(1000): first four and last four, bit patterns
TORCH_SEED7_N1000_HEAD = bits32(0xBF51F456, 0x3ECA902B, 0x3F661EDE, 0xBFB1B738)
TORCH_SEED7_N1000_TAIL = bits32(0x3EAB1FA2, 0x401CA231, 0x3E2D46F7, 0xBF59495A)
# torch 2.13.0: torch.manual_seed(7); torch.randn(1000, dtype=torch.float64): first and last three
TORCH_SEED7_N1000_F64_HEAD = [hx("0x1.0f6e8d3a53973p-4"), hx("0x1.80f46f1ebf213p-5"), hx("0x1.d6276549d121ep+0")]
TORCH_SEED7_N1000_F64_TAIL = [hx("-0x1.b9d1de48c6741p-1"), hx("-0x1.649193705a7dep+0"), hx("-0x1.e93f787e3d63fp-2")]
# torch 2.13.0: torch.manual_seed(7); torch.randn(5, dtype=torch.float64) (small path, not rounded to float32)
TORCH_SEED7_N5_F64 = np.array(
    [
        hx("-0x1.2ca2e8774a1c0p-3"),
        hx("0x1.92811cc01ae83p-1"),
        hx("0x1.e4c5cd4ba2dcfp-1"),
        hx("-0x1.1d45a657cf2b6p+0"),
        hx("0x1.b0d79f26af9afp+0"),
    ]
)
# torch 2.13.0: torch.manual_seed(0); torch.randn(2)
TORCH_SEED0_N2 = f32("0x1.8a7eb8p+0", "-0x1.2c78a0p-2")


# ---------------------------------------------------------------- torch's numbers
def test_notebook_neuron_seed7():
    manual_seed(7)
    features = randn((1, 5))
    weights = randn_like(features)
    bias = randn((1, 1))
    assert_bits(features, TORCH_SEED7_F.reshape(1, 5))
    assert_bits(weights, TORCH_SEED7_W.reshape(1, 5))
    assert_bits(bias, TORCH_SEED7_B.reshape(1, 1))


def test_notebook_network_seed7():
    manual_seed(7)
    features = randn((1, 3))
    W1 = randn(3, 2)
    W2 = randn(2, 1)
    B1 = randn((1, 2))
    B2 = randn((1, 1))
    stream = np.concatenate([TORCH_SEED7_F, TORCH_SEED7_W, TORCH_SEED7_B])  # the same 11 normals
    assert_bits(features, stream[0:3].reshape(1, 3))
    assert_bits(W1, stream[3:9].reshape(3, 2))
    assert_bits(W2, stream[9:11].reshape(2, 1))
    assert_bits(B1, TORCH_SEED7_B1.reshape(1, 2))
    assert_bits(B2, TORCH_SEED7_B2.reshape(1, 1))


def test_large_float32_seed7():
    manual_seed(7)
    assert_bits(randn(17), TORCH_SEED7_N17)
    manual_seed(7)
    x = randn(1000)
    assert_bits(x[:4], TORCH_SEED7_N1000_HEAD)
    assert_bits(x[-4:], TORCH_SEED7_N1000_TAIL)


def test_float64_seed7():
    manual_seed(7)
    x = randn(1000, dtype=np.float64)
    assert_bits(x[:3], np.array(TORCH_SEED7_N1000_F64_HEAD))
    assert_bits(x[-3:], np.array(TORCH_SEED7_N1000_F64_TAIL))
    manual_seed(7)
    assert_bits(randn(5, dtype=np.float64), TORCH_SEED7_N5_F64)


def test_small_float32_is_the_float64_stream_rounded():
    manual_seed(7)
    assert_bits(randn(5), TORCH_SEED7_N5_F64.astype(np.float32))


def test_seed0():
    assert_bits(manual_seed(0).randn(2), TORCH_SEED0_N2)


# ---------------------------------------------------------------- shapes and dtypes
@pytest.mark.parametrize(
    "size, shape",
    [
        ((3, 5), (3, 5)),
        (((3, 5),), (3, 5)),
        (([3, 5],), (3, 5)),
        ((5,), (5,)),
        (((),), ()),
        ((np.int64(4), 2), (4, 2)),
        ((0,), (0,)),
        ((2, 0, 20), (2, 0, 20)),
        ((4, 1, 5), (4, 1, 5)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype(size, shape, dtype):
    x = Generator(1).randn(*size, dtype=dtype)
    assert x.shape == shape and x.dtype == dtype and x.flags.c_contiguous


@pytest.mark.parametrize("dtype", ["float32", np.dtype("float64"), float, None])
def test_dtype_spellings(dtype):
    expected = {None: np.float32, float: np.float64}.get(dtype, np.dtype(dtype))
    assert Generator(1).randn(3, dtype=dtype).dtype == expected


def test_randn_like_takes_shape_and_dtype():
    g = Generator(3)
    a = np.zeros((4, 6), np.float64)
    assert g.randn_like(a).dtype == np.float64 and g.randn_like(a).shape == (4, 6)
    assert g.randn_like(a, dtype=np.float32).dtype == np.float32
    assert g.randn_like(np.zeros((2, 3), np.int64), dtype=np.float32).shape == (2, 3)
    assert g.randn_like(np.zeros((5, 4)).T).flags.c_contiguous  # always a fresh C-order array


def test_large_call_is_a_flat_call_reshaped():
    assert_bits(Generator(5).randn(7, 9), Generator(5).randn(63).reshape(7, 9))
    assert_bits(Generator(5).randn(3, 2), Generator(5).randn(6).reshape(3, 2))


def test_empty_draws_nothing():
    g = Generator(5)
    before = g.get_state()
    assert g.randn(0).size == 0 and g.randn(40, 0).size == 0
    assert_bits(g.get_state(), before)


# ---------------------------------------------------------------- the stream
@given(st.lists(st.integers(0, 15), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_small_calls_continue_one_stream(sizes, seed):
    """Below 16 elements every call continues the per-element stream, cached normal included."""
    g, h = Generator(seed), Generator(seed)
    pieces = np.concatenate([g.randn(n) for n in sizes])
    one_by_one = np.concatenate([h.randn(1) for _ in range(sum(sizes))] + [np.empty(0, np.float32)])
    assert_bits(pieces, one_by_one)


@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_blocks_of_16_continue_one_stream(blocks, seed):
    """Large calls whose sizes are multiples of 16 use every uniform they draw, in order."""
    g = Generator(seed)
    pieces = np.concatenate([g.randn(16 * b) for b in blocks])
    assert_bits(pieces, Generator(seed).randn(16 * sum(blocks)))


@given(
    st.lists(st.sampled_from([1, 2, 5, 15, 16, 17, 100, 1000]), min_size=1, max_size=4),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**64 - 1),
)
def test_state_save_restore_replays(sizes, dtype, seed):
    g = Generator(seed)
    g.randn(3)  # leave a cached normal in the state
    state = g.get_state()
    first = [g.randn(n, dtype=dtype) for n in sizes]
    g.randn(7)
    g.set_state(state)
    for n, x in zip(sizes, first):
        assert_bits(g.randn(n, dtype=dtype), x)
    other = Generator(0)
    other.set_state(state)
    assert_bits(other.randn(sizes[0], dtype=dtype), first[0])


def test_get_state_is_a_copy_in_torch_layout():
    g = Generator(11)
    g.randn(1)
    state = g.get_state()
    assert state.dtype == np.uint8 and state.shape == (5056,)
    fields = state.view(STATE_DTYPE)[0]
    assert fields["the_initial_seed"] == 11 and fields["seeded"] == 1
    assert fields["normal_is_valid"] == 1  # randn(1) left r sin(theta) behind
    state[:] = 0
    assert g.get_state().view(STATE_DTYPE)[0]["the_initial_seed"] == 11


def test_generator_is_independent_of_the_default():
    manual_seed(7)
    g = Generator(7)
    assert_bits(g.randn(5), TORCH_SEED7_F)
    g.randn(100)
    assert_bits(randn(5), TORCH_SEED7_F)  # drawing from g did not move the default
    randn(100)
    h = Generator(7)
    h.randn(5), h.randn(100)
    assert_bits(g.randn(3), h.randn(3))  # drawing from the default did not move g


def test_generators_do_not_share_state():
    a, b = Generator(7), Generator(7)
    a.randn(50)
    assert_bits(b.randn(1, 5), TORCH_SEED7_F.reshape(1, 5))


def test_manual_seed_clears_the_cached_normal():
    manual_seed(7)
    first = randn(1)  # caches r sin(theta)
    manual_seed(7)
    assert_bits(randn(1), first)
    assert default_generator.get_state().view(STATE_DTYPE)[0]["normal_is_valid"] == 1
    manual_seed(7)
    assert default_generator.get_state().view(STATE_DTYPE)[0]["normal_is_valid"] == 0


def test_large_path_leaves_the_cached_normal_alone():
    manual_seed(7)
    randn(1)  # stream position 1: the cache holds TORCH_SEED7_F[1]
    randn(32)
    assert_bits(randn(1), TORCH_SEED7_F[1:2])


# ---------------------------------------------------------------- seeds
def test_manual_seed_returns_the_default_generator():
    assert manual_seed(3) is default_generator
    assert initial_seed() == 3 == default_generator.initial_seed()
    g = Generator()
    assert g.manual_seed(4) is g and g.initial_seed() == 4


@pytest.mark.parametrize(
    "seed, same_as, initial",
    [
        (-1, 2**64 - 1, 2**64 - 1),  # torch: negative seeds wrap mod 2**64
        (-(2**63), 2**63, 2**63),
        (2**32, 0, 2**32),  # only the low 32 bits reach mt19937
        (2**32 + 7, 7, 2**32 + 7),
        (True, 1, 1),
        (np.int64(7), 7, 7),
    ],
)
def test_seed_rules(seed, same_as, initial):
    g = Generator(seed)
    assert g.initial_seed() == initial
    assert_bits(g.randn(20), Generator(same_as).randn(20))


def test_unseeded_generators_differ():
    seeds = {Generator().initial_seed() for _ in range(4)}
    assert len(seeds) == 4 and all(0 <= s < 2**64 for s in seeds)


@pytest.mark.parametrize(
    "seed, error, match",
    [
        (2**64, ValueError, r"outside \[-2\*\*63, 2\*\*64\)"),
        (-(2**63) - 1, ValueError, "outside"),
        (1.5, TypeError, "seed must be an int, got float"),
        ("7", TypeError, "seed must be an int, got str"),
        (None, TypeError, "seed must be an int, got NoneType"),
    ],
)
def test_bad_seeds(seed, error, match):
    with pytest.raises(error, match=match):
        manual_seed(seed)
    with pytest.raises(error, match=match):
        Generator(1).manual_seed(seed)


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "size, error, match",
    [
        ((-1,), ValueError, r"randn\(\): negative dimension -1 in size \(-1,\)"),
        ((2, -3), ValueError, r"negative dimension -3 in size \(2, -3\)"),
        (((2, -3),), ValueError, "negative dimension -3"),
        ((3.0,), TypeError, r"size must be a tuple of ints, got float"),
        ((2, "3"), TypeError, "got str"),
        ((True,), TypeError, "got bool"),
        ((), TypeError, r"missing size; for a 0-d array pass \(\)"),  # torch.randn() raises too
    ],
)
def test_bad_sizes(size, error, match):
    with pytest.raises(error, match=match):
        randn(*size)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, "complex64", "float128x", object])
def test_bad_dtypes(dtype):
    with pytest.raises(TypeError, match=r"randn\(\): dtype must be float32 or float64"):
        randn(3, dtype=dtype)


def test_randn_like_bad_arguments():
    with pytest.raises(TypeError, match=r"randn_like\(\): dtype must be float32 or float64, got dtype\('int64'\)"):
        randn_like(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match=r"randn_like\(\): expected an array with \.shape, got list"):
        randn_like([1.0, 2.0])


def test_bad_states():
    g = Generator(1)
    with pytest.raises(TypeError, match=r"expected a uint8 array of shape \(5056,\)"):
        g.set_state(np.zeros(5056, np.int8))
    with pytest.raises(TypeError, match=r"got uint8 \(100,\)"):
        g.set_state(np.zeros(100, np.uint8))
    with pytest.raises(ValueError, match="invalid mt19937 state"):
        g.set_state(np.zeros(5056, np.uint8))  # never seeded, left = 0
    bad = g.get_state()
    bad.view(STATE_DTYPE)[0]["left"] = 625
    with pytest.raises(ValueError, match=r"left=625"):
        g.set_state(bad)
