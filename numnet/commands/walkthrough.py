"""``numnet walkthrough``: the notebook "Part 1 - Tensors in PyTorch", cell by cell, with
numnet alone (its generator, its ops, its printing; torch is not needed).

Each tensor is printed as torch prints it, so the output can be held beside the
notebook. ``--device cuda`` runs the same cells on numnet.cuda's kernels (or in Numba's
CUDA simulator); the random numbers come from numnet's CPU generator either way, as
torch's do.
"""

import textwrap

import numpy as np

import numnet


def load_ops(device):
    """numnet (the CPU kernels) or numnet.cuda (the GPU kernels)."""
    if device == "cpu":
        return numnet
    from numnet import cuda

    if not cuda.is_available():
        raise SystemExit(f"numnet walkthrough --device cuda: {cuda.unavailable_message()}")
    return cuda


class Notebook:
    """Prints cells: a few lines of code, then what they evaluate to, as in a notebook."""

    def __init__(self, write=print):
        self.write = write
        self.count = 0

    def say(self, text):
        self.write(textwrap.fill(textwrap.dedent(text).strip(), width=88) + "\n")

    def heading(self, title):
        self.write(f"## {title}\n")

    def cell(self, code, result=None):
        self.count += 1
        prompt = f"In [{self.count}]: "
        lines = textwrap.dedent(code).strip().splitlines()
        self.write(prompt + lines[0])
        for line in lines[1:]:
            self.write(" " * len(prompt) + line)
        if result is not None:  # on lines of its own, as a notebook shows an output
            self.write(result)
        self.write("")


def sum_left_to_right(products):
    """(((p0 + p1) + p2) + p3) + p4, in the products' dtype: numnet's order, and torch.mm's."""
    total = products[0]
    for p in products[1:]:
        total = total + p
    return total


def sum_as_torch_sum(products):
    """torch.sum's order for five values (torch 2.13, x86-64, any capability; numnet.sums):
    fewer than a vector's lanes, so four scalar accumulators hold p0..p3, the fifth
    product folds into the first, then they are added left to right:
    (((p0 + p4) + p1) + p2) + p3. numnet.dot computes it; this spells it out."""
    lanes = list(products[:4])
    lanes[0] = lanes[0] + products[4]
    return sum_left_to_right(lanes)


def run(device="cpu", write=print):
    ops = load_ops(device)
    fmt = numnet.format
    nb = Notebook(write)
    where = "numnet's CPU kernels" if device == "cpu" else "numnet.cuda's kernels"
    nb.write(f"numnet walkthrough: the notebook 'Part 1 - Tensors in PyTorch', on {where}\n")

    nb.heading("A neuron: a sum of products through an activation")
    nb.say("""
        One unit computes y = f(w1 x1 + w2 x2 + ... + b): a weighted sum of its inputs plus a
        bias, through an activation f. Here f is the sigmoid, 1 / (1 + e^-x), which numnet
        evaluates exactly as written: for x << 0 the exponential overflows to inf and the
        result is exactly 0, never NaN.""")
    nb.cell(
        "numnet.sigmoid(np.array([-1000.0, 0.0, 1000.0], np.float32))",
        fmt(ops.sigmoid(np.array([-1000.0, 0.0, 1000.0], np.float32))),
    )

    nb.say("""
        Seeding numnet's generator with 7 gives the notebook's numbers bit for bit: it is
        torch's CPU generator (Mersenne Twister and Box-Muller), rewritten as Numba kernels.""")
    numnet.manual_seed(7)
    features = numnet.randn((1, 5))
    weights = numnet.randn_like(features)
    bias = numnet.randn((1, 1))
    nb.cell("""
        numnet.manual_seed(7)  # Set the random seed so things are predictable
        features = numnet.randn((1, 5))
        weights = numnet.randn_like(features)
        bias = numnet.randn((1, 1))""")
    nb.cell("features", fmt(features))
    nb.cell("weights", fmt(weights))
    nb.cell("bias", fmt(bias))

    nb.say("""
        output1 multiplies the features by the weights element by element, adds the five
        products, adds the bias and applies the sigmoid: numnet.neuron does all of it in one
        kernel (the notebook's activation(torch.sum(features * weights) + bias)).""")
    output1 = ops.neuron(features, weights, bias)
    nb.cell("output1 = numnet.neuron(features, weights, bias)\noutput1", fmt(output1))

    nb.heading("The same neuron as a matrix product")
    nb.say("""
        A matrix product does the multiplications and the sum in one operation, but the shapes
        must fit: (1, 5) @ (1, 5) does not, because the columns of the first (5) must equal the
        rows of the second (1). numnet refuses it before doing any work, in torch's words:""")
    try:
        ops.mm(features, weights)
        raise AssertionError("numnet accepted a (1, 5) @ (1, 5) product")
    except numnet.ShapeError as exc:
        nb.cell("numnet.mm(features, weights)", f"{type(exc).__name__}: {exc}")
    nb.say("""
        The error is a numnet.ShapeError, which is both a ValueError and a RuntimeError (what
        torch raises). Reshaping the weights to a column, (5, 1), makes the product work;
        numpy's reshape, like torch's view, shares the data.""")
    reshaped_weights = weights.reshape(5, 1)
    nb.cell("reshaped_weights = weights.reshape(5, 1)\nreshaped_weights", fmt(reshaped_weights))
    matmul_features_weights = ops.mm(features, reshaped_weights)
    nb.cell(
        "matmul_features_weights = numnet.mm(features, reshaped_weights)\nmatmul_features_weights",
        fmt(matmul_features_weights),
    )
    output2 = ops.sigmoid(ops.linear(features, reshaped_weights, bias))
    nb.cell("output2 = numnet.sigmoid(numnet.linear(features, reshaped_weights, bias))\noutput2", fmt(output2))

    nb.heading("Are the two outputs equal?")
    same = bool((output1 == output2).all())
    nb.cell("bool(output1 == output2)", str(same))
    products = [features[0, i] * weights[0, i] for i in range(5)]  # five float32 products
    by_sum = float(ops.dot(features, weights))
    by_mm = float(matmul_features_weights[0, 0])
    if device == "cpu":
        nb.say("""
            The notebook printed True; current torch (2.13) prints False, and so does numnet,
            because it reproduces both of torch's answers. The two paths add the same five
            float32 products in different orders, and float32 addition is not associative.
            numnet.dot (inside numnet.neuron) adds them as torch.sum does: its kernel keeps
            four running sums, p0..p3, folds the fifth product into the first, then adds the
            four left to right. numnet.mm, like torch.mm here, adds left to right. The sums
            differ in the last bit, and so do the outputs, by one ULP (one step between
            neighbouring float32 values):""")
    else:
        nb.say(f"""
            The notebook printed True; current torch (2.13) prints False, because torch.sum and
            torch.mm add the five products in different orders. numnet.cuda.dot adds them in a
            fixed tree of threads, numnet.cuda.mm left to right; here the comparison gives
            {same}. On the CPU numnet gives torch's two answers bit for bit:""")
    nb.cell("numnet.dot(features, weights).item()  # torch.sum's order", repr(by_sum))
    nb.cell("numnet.mm(features, reshaped_weights).item()  # left to right", repr(by_mm))
    nb.write(f"    torch.sum's order  (((p0 + p4) + p1) + p2) + p3 = {float(sum_as_torch_sum(products))!r}")
    nb.write(f"    left to right      (((p0 + p1) + p2) + p3) + p4 = {float(sum_left_to_right(products))!r}\n")
    gap = int(abs(output2.view(np.int32).astype(np.int64) - output1.view(np.int32).astype(np.int64)).max())
    nb.cell("output1.item(), output2.item()", f"({output1.item()!r}, {output2.item()!r})")
    nb.say(f"""
        {gap} ULP apart. Both print as 0.1595 at torch's four decimals. Comparing floats with
        == asks for the same bits; numnet.testing.compare asks whether they agree within a
        stated bound. numnet.sum_order() says which of torch's orders numnet reproduces on
        this machine; notebook 02 draws it.""")

    nb.heading("Stack them up: a two-layer network")
    nb.say("""
        With several inputs and outputs the weights become a matrix: the hidden layer is
        sigmoid(features @ W1 + B1), and the output treats the hidden layer as its input.""")
    numnet.manual_seed(7)
    features = numnet.randn((1, 3))
    n_input, n_hidden, n_output = features.shape[1], 2, 1
    W1 = numnet.randn(n_input, n_hidden)
    W2 = numnet.randn(n_hidden, n_output)
    B1 = numnet.randn((1, n_hidden))
    B2 = numnet.randn((1, n_output))
    nb.cell("""
        numnet.manual_seed(7)
        features = numnet.randn((1, 3))
        n_input = features.shape[1]     # Number of input units, must match number of input features
        n_hidden = 2                    # Number of hidden units
        n_output = 1                    # Number of output units
        W1 = numnet.randn(n_input, n_hidden)
        W2 = numnet.randn(n_hidden, n_output)
        B1 = numnet.randn((1, n_hidden))
        B2 = numnet.randn((1, n_output))""")
    for name, value in (("features", features), ("W1", W1), ("W2", W2), ("B1", B1), ("B2", B2)):
        nb.cell(name, fmt(value))
    hidden_layer = ops.sigmoid(ops.linear(features, W1, B1))
    output = ops.sigmoid(ops.linear(hidden_layer, W2, B2))
    nb.cell(
        """
        hidden_layer = numnet.sigmoid(numnet.linear(features, W1, B1))
        output = numnet.sigmoid(numnet.linear(hidden_layer, W2, B2))
        output""",
        fmt(output),
    )
    nb.say("""
        numnet.forward runs the whole network in one compiled call, with no Python between
        the layers; it gives the same bits:""")
    nb.cell("numnet.forward(features, [(W1, B1), (W2, B2)])", fmt(ops.forward(features, [(W1, B1), (W2, B2)])))

    nb.heading("numpy to torch and back")
    nb.say("""
        numnet computes on numpy arrays and returns numpy arrays. torch.from_numpy(a) makes a
        tensor that shares a's memory, so an in-place change through one name shows through
        the other. Without torch, a numpy view shows the same thing: b below is a second name
        for a's memory, printed as torch would print the tensor.""")
    a = np.random.default_rng(7).random((4, 3))
    nb.cell("a = np.random.default_rng(7).random((4, 3))\na", repr(a))
    b = a.view()
    nb.cell("b = a.view()          # torch.from_numpy(a) in the notebook\nb", fmt(b))
    b *= 2
    nb.cell("b *= 2                # b.mul_(2): multiply in place\nb", fmt(b))
    nb.cell("a                     # a sees the change: the memory is shared", repr(a))
    return {"output1": output1, "output2": output2, "output": output}
