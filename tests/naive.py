"""Slow, obviously correct references: plain Python loops and NumPy, in float64.

numnet never imports this file. Each reference returns the exact-as-float64 value and,
for the sums, ``scale`` = sum |term| that numnet.testing.sum_bound turns into a tolerance.
"""

import math
from fractions import Fraction

import numpy as np

from numnet import testing
from numnet.testing import finite_abs, mm_scale


def sigmoid_ref(x):
    """1 / (1 + e^-x) in float64, elementwise, computed the stable way for each sign."""
    x = np.asarray(x, np.float64)
    out = np.empty(x.shape)
    for i, v in np.ndenumerate(x):
        if math.isnan(v):
            out[i] = math.nan
        elif v >= 0:
            out[i] = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            out[i] = e / (1.0 + e)
    return out


def matmul_loop(a, b):
    """(n, k) @ (k, m) in float64 by a Python triple loop, p in order."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n, k = a.shape
    m = b.shape[1]
    out = np.zeros((n, m))
    with np.errstate(all="ignore"):
        for i in range(n):
            for j in range(m):
                for p in range(k):
                    out[i, j] += a[i, p] * b[p, j]
    return out


def mm_ref(a, b):
    """a @ b in float64; returns (value, scale), scale = sum |a_ip b_pj| (numnet.testing)."""
    return matmul_loop(a, b), mm_scale(a, b, matmul_loop)


def dot_ref(a, b):
    """sum(a * b) over all elements; returns (value, scale) as 0-d float64 arrays."""
    value, scale = mm_ref(np.reshape(a, (1, -1)), np.reshape(b, (-1, 1)))
    return value.reshape(()), scale.reshape(())


def linear_ref(x, W, b):
    """x @ W + b; returns (value, scale), the bias counted as one more term."""
    value, scale = mm_ref(x, W)
    row = np.asarray(b, np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        return value + row, scale + finite_abs(row)


def neuron_ref(x, w, b):
    """sigma(sum(x * w) + b), shaped like b; returns (value, pre-activation scale)."""
    s, scale = dot_ref(x, w)
    b = np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        return sigmoid_ref(s + b), scale + finite_abs(b)


def forward_ref(x, layers):
    """sigma(... sigma(x @ W1 + b1) ... @ WL + bL) in float64."""
    h = np.asarray(x, np.float64)
    for W, b in layers:
        h = sigmoid_ref(linear_ref(h, W, b)[0])
    return h


def tolerance(op, *args):
    """numnet.testing.op_tolerance with these references."""
    return testing.op_tolerance(op, args, matmul=matmul_loop, sigmoid=sigmoid_ref)


def rounded(value, dtype):
    """The float64 reference rounded to ``dtype`` (overflowing to inf where it must)."""
    with np.errstate(over="ignore"):
        return np.asarray(value).astype(dtype)


# -- activations, softmax, losses and gradients (numnet.backward) ------------------------


def activation_ref(name, z):
    """f(z) in float64: sigmoid, relu (NaN and -0.0 kept, as torch.relu), tanh, or z."""
    return testing.activation64(name, z, sigmoid_ref)


def forward_layers_ref(x, layers, hidden="sigmoid", output="sigmoid"):
    """Every layer's output of the network in float64: [h_0 = x, h_1, ..., h_L]."""
    hs = [np.asarray(x, np.float64)]
    for i, (W, b) in enumerate(layers, start=1):
        z = linear_ref(hs[-1], W, b)[0]
        hs.append(activation_ref(output if i == len(layers) else hidden, z))
    return hs


def forward_act_ref(x, layers, hidden="sigmoid", output="sigmoid"):
    """f_out(... f(x @ W1 + b1) ... @ WL + bL) in float64."""
    return forward_layers_ref(x, layers, hidden, output)[-1]


def log_softmax_ref(x):
    """log softmax over the last axis in float64, from the definition: each entry minus
    log(sum(e^x)), with the row's max factored out so that e^ cannot overflow."""
    x = np.asarray(x, np.float64)
    if x.ndim == 0:
        return log_softmax_ref(x.reshape(1)).reshape(())
    out = np.empty(x.shape)
    for index in np.ndindex(x.shape[:-1]):
        row = x[index]
        if row.size == 0:
            continue
        m = max(row.tolist(), key=lambda v: (math.isnan(v), v))  # NaN wins, as in torch
        with np.errstate(all="ignore"):
            total = math.fsum(math.exp(v - m) if not math.isnan(v - m) else math.nan for v in row)
            out[index] = [(v - m) - math.log(total) if total == total and total > 0 else math.nan for v in row]
    return out


def softmax_ref(x):
    """e^x / sum(e^x) over the last axis in float64: the exponential of log_softmax_ref."""
    with np.errstate(all="ignore"):
        return np.exp(log_softmax_ref(x))


def _through(name, g, y):
    """g * f'(z), f' written with f's output y. relu selects instead of multiplying, as
    torch's threshold_backward does: 0 where y <= 0 (even for g = NaN), g elsewhere (also
    where y is NaN)."""
    if name == "sigmoid":
        return g * (y * (1 - y))
    if name == "tanh":
        return g * (1 - y * y)
    if name == "relu":
        return np.where(y <= 0, 0.0, g)
    return g


def loss_and_grads_ref(x, target, layers, hidden="sigmoid", output="sigmoid", loss="mse"):
    """(loss, [(dW, db), ...]) in float64 by the chain rule, one plain step at a time.

    mse: l = mean((y - t)^2) over all elements, dl/dy = 2 (y - t) / N.
    cross_entropy: l = mean over rows of -log_softmax(y)[t], dl/dy = (softmax(y) - onehot) / n.
    delta = dl/dz = dl/dy * f'(z); dW = h^T delta, db = column sums of delta, and the
    delta of the layer below is (delta W^T) * f'(z_below).
    """
    hs = forward_layers_ref(x, layers, hidden, output)
    y = hs[-1]
    n = y.shape[0]
    with np.errstate(all="ignore"):
        if loss == "mse":
            d = y - np.asarray(target, np.float64)
            value = math.fsum((d * d).ravel()) / d.size if d.size else math.nan
            dy = 2 * d / max(d.size, 1)
        else:
            t = np.asarray(target).astype(np.int64)
            logp = log_softmax_ref(y)
            value = -math.fsum(logp[np.arange(n), t]) / n if n else math.nan
            onehot = np.zeros(y.shape)
            onehot[np.arange(n), t] = 1
            dy = (np.exp(logp) - onehot) / max(n, 1)
        delta = _through(output, dy, y)
        grads = []
        for i in range(len(layers) - 1, -1, -1):
            W, b = layers[i]
            dW = matmul_loop(hs[i].T, delta)
            db = delta.sum(axis=0).reshape(np.shape(b))
            grads.append((dW, db))
            if i:
                delta = _through(hidden, matmul_loop(delta, np.asarray(W, np.float64).T), hs[i])
    return np.array(value), grads[::-1]


def torch_sum_order(values, lanes=8, torch_threads=2):
    """sum(values) of a contiguous 1-D array in torch.sum's order (numnet/sums.py draws
    it), in plain Python on numpy scalars of the array's dtype: slow, for short arrays."""
    x = list(np.asarray(values).reshape(-1))
    zero = np.asarray(values).dtype.type(0)
    grain = 32768

    def ceil_log2(n):
        return 1 if n <= 2 else (n - 1).bit_length()

    def cascade(rows):  # rows: lists of equal width; the four-level cascade, folded
        width = len(rows[0]) if rows else 0
        power = max(4, ceil_log2(len(rows)) // 4)
        step, levels, i = 1 << power, [[zero] * width for _ in range(4)], 0
        while i + step <= len(rows):
            for row in rows[i : i + step]:
                levels[0] = [a + v for a, v in zip(levels[0], row)]
            i += step
            for j in range(1, 4):
                levels[j] = [a + b for a, b in zip(levels[j], levels[j - 1])]
                levels[j - 1] = [zero] * width
                if i & ((step - 1) << (j * power)):
                    break
        for row in rows[i:]:
            levels[0] = [a + v for a, v in zip(levels[0], row)]
        return [((a + b) + c) + d for a, b, c, d in zip(*levels)]

    def row_sum(v):
        if len(v) >= lanes:
            nv = len(v) // lanes
            vecs = [v[k * lanes : (k + 1) * lanes] for k in range(nv)]
            fours = [sum(vecs[r * 4 : r * 4 + 4], []) for r in range(nv // 4)]
            acc = cascade(fours) if fours else [zero] * (4 * lanes)
            groups = [acc[g * lanes : (g + 1) * lanes] for g in range(4)]
            for vec in vecs[(nv // 4) * 4 :]:
                groups[0] = [a + b for a, b in zip(groups[0], vec)]
            first = [((a + b) + c) + d for a, b, c, d in zip(*groups)]
            total = zero
            for value in v[nv * lanes :] + first:
                total += value
            return total
        rows = [v[r * 4 : r * 4 + 4] for r in range(len(v) // 4)]
        acc = cascade(rows) if rows else [zero] * 4
        for value in v[(len(v) // 4) * 4 :]:
            acc[0] += value
        return ((acc[0] + acc[1]) + acc[2]) + acc[3]

    n = len(x)
    if n <= grain or torch_threads == 1:
        return zero + row_sum(x)
    chunks = min(torch_threads, -(-n // grain))
    size = -(-n // chunks)
    partial = [zero + row_sum(x[c * size : (c + 1) * size]) for c in range(chunks)]
    return zero + row_sum(partial + [zero] * (torch_threads - chunks))


# -- the products' exact arithmetic: in-order fused multiply-adds ------------------------------


def round_to(value, dtype):
    """The Fraction ``value`` rounded once to the nearest ``dtype`` (ties to even): float()
    rounds a Fraction correctly to float64; a float32 is settled between the two float32
    neighbours of that float64 by exact comparison (rounding twice would be wrong exactly
    where the float64 lands halfway between them). Finite values only."""
    nearest = np.float64(float(value))
    if dtype == np.float64:
        return nearest
    guess = np.float32(nearest)
    toward = np.float32(np.inf if Fraction(float(guess)) < value else -np.inf)
    other = np.nextafter(guess, toward)
    d_guess, d_other = abs(Fraction(float(guess)) - value), abs(Fraction(float(other)) - value)
    if d_other < d_guess or (d_other == d_guess and int(other.view(np.uint32)) % 2 == 0):
        return other
    return guess


def fma_ref(a, b, c):
    """a * b + c rounded once, in the dtype of a (exactly, by Fractions)."""
    dtype = np.asarray(a).dtype.type
    return round_to(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)), dtype)


def fused_mm_ref(a, b):
    """a @ b as numnet defines it: s = 0; s = fma(a[i, p], b[p, j], s) for p in order,
    each step rounded once to a's dtype (exact Fractions between roundings). Finite inputs."""
    n, k = a.shape
    m = b.shape[1]
    dtype = a.dtype.type
    out = np.empty((n, m), dtype)
    for i in range(n):
        for j in range(m):
            s = dtype(0)
            for p in range(k):
                s = fma_ref(a[i, p], b[p, j], s)
            out[i, j] = s
    return out


def unfused_mm(a, b):
    """a @ b with a multiply and an add rounded separately (the former definition): what
    a kernel that does not fuse would give, to show that fused_mm_ref's inputs tell apart."""
    n, k = a.shape
    m = b.shape[1]
    out = np.zeros((n, m), a.dtype)
    for p in range(k):
        out += a[:, p : p + 1] * b[p : p + 1, :]  # elementwise, each product then each sum rounded
    return out
