"""The ``numnet train`` command: a classifier trained with numnet's own backward pass.

The network is the notebook's, made deeper and given a loss: x @ W1 + b1, relu, ...,
@ WL + bL giving 10 logits, trained on mini-batches with numnet.loss_and_grads(...,
loss="cross_entropy") and numnet.SGD with momentum. Data: the 8x8 digits bundled with
scikit-learn (a stratified held-out test split), or MNIST IDX files (numnet.data).

Initialisation: W ~ N(0, 1/n_in), drawn with numnet's generator, which is torch's:
``numnet.manual_seed(s); numnet.randn(n_in, n_out) / sqrt(n_in)`` equals
``torch.manual_seed(s); torch.randn(n_in, n_out) / sqrt(n_in)`` bit for bit, so torch can
start from exactly these weights (parity/test_training_parity.py does). torch.nn.Linear
draws uniformly in +-1/sqrt(n_in) instead (variance 1/(3 n_in)); numnet has no uniform
generator, and the normal with variance 1/n_in (LeCun's) trains as well. Biases start at 0.

The training loop, the initialisation and the batches are plain functions (init_layers,
batches, fit, accuracy), so that tests can run them against torch step by step.
"""

import math
import sys
import time

import numpy as np

import numnet


class TrainingError(RuntimeError):
    """Training cannot go on: the loss stopped being finite."""


def init_layers(widths, seed=0, dtype=np.float32):
    """[(W1, b1), ...] for widths[0] -> widths[1] -> ...: W_i = randn(n_in, n_out) /
    sqrt(n_in) from numnet.manual_seed(seed) (torch's stream), b_i = 0."""
    numnet.manual_seed(seed)
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        W = numnet.randn(n_in, n_out, dtype=dtype)
        W *= dtype(1 / math.sqrt(n_in))  # set-up, not a compute path: numpy is fine here
        layers.append((W, np.zeros(n_out, dtype)))
    return layers


def batches(n, batch_size, rng):
    """The index arrays of one epoch's mini-batches: a random permutation of range(n)
    (numpy Generator ``rng``) cut into pieces of batch_size (the last may be shorter)."""
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def accuracy(ops, layers, x, y, hidden):
    """The fraction of rows of x whose largest logit is at their label y."""
    if len(y) == 0:
        return float("nan")
    logits = ops.forward(x, layers, hidden=hidden, output="none")
    if not isinstance(logits, np.ndarray):
        logits = logits.copy_to_host()
    return float((logits.argmax(axis=1) == y).mean())


def fit(layers, data, *, epochs, batch_size, lr, momentum, hidden, seed, ops=numnet, report=None):
    """Train ``layers`` in place on data = (x_train, y_train, x_test, y_test).

    Every epoch draws a new order of the training set (numpy's default_rng(seed)); every
    step computes loss_and_grads on one mini-batch and takes one SGD step. After each
    epoch the test accuracy is measured. ``report(kind, **values)``, if given, hears of
    every "step" (loss) and "epoch" (test_accuracy). Returns the history:
    {"loss": [per step], "epoch_loss": [mean per epoch], "test_accuracy": [per epoch]}.
    Raises TrainingError when a loss is not finite (NaN or inf: the weights diverged).
    """
    x_train, y_train, x_test, y_test = data
    rng = np.random.default_rng(seed)
    optimiser = ops.SGD(layers, lr=lr, momentum=momentum)
    history = {"loss": [], "epoch_loss": [], "test_accuracy": []}
    for epoch in range(1, epochs + 1):
        losses = []
        for index in batches(len(y_train), batch_size, rng):
            loss = optimiser.train_step(
                x_train[index], y_train[index], hidden=hidden, output="none", loss="cross_entropy"
            )
            loss = float(loss.copy_to_host() if hasattr(loss, "copy_to_host") else loss)
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss is {loss} at step {len(history['loss']) + 1} (epoch {epoch}): the weights "
                    f"have diverged; try a smaller learning rate than --lr {lr}"
                )
            losses.append(loss)
            history["loss"].append(loss)
            if report:
                report("step", loss=loss, epoch=epoch)
        history["epoch_loss"].append(sum(losses) / max(len(losses), 1))
        history["test_accuracy"].append(accuracy(ops, layers, x_test, y_test, hidden))
        if report:
            report("epoch", epoch=epoch, loss=history["epoch_loss"][-1], test_accuracy=history["test_accuracy"][-1])
    return history


def plot(history, path, title):
    """The loss per step (and per epoch) and the test accuracy per epoch, side by side."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps_per_epoch = len(history["loss"]) / max(len(history["epoch_loss"]), 1)
    epochs = np.arange(1, len(history["epoch_loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(np.arange(1, len(history["loss"]) + 1), history["loss"], lw=0.8, alpha=0.6, label="mini-batch")
    left.plot(epochs * steps_per_epoch, history["epoch_loss"], "o-", label="epoch mean")
    left.set(xlabel="step", ylabel="cross-entropy loss", yscale="log", title="training loss")
    left.legend()
    right.plot(epochs, [100 * a for a in history["test_accuracy"]], "o-", color="C2")
    right.set(xlabel="epoch", ylabel="test accuracy (%)", title="held-out test accuracy")
    right.grid(alpha=0.3)
    right.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class _Progress:
    """A rich progress bar with the running (epoch-mean) loss, or plain lines without rich."""

    def __init__(self, total, epochs):
        self.total, self.epochs, self.losses = total, epochs, []
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:
            self.bar = None
            return
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
        )
        self.task = self.bar.add_task(f"epoch 1/{epochs}", total=total, status="")

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def __call__(self, kind, **values):
        if kind == "step":
            self.losses.append(values["loss"])
            if self.bar:
                running = sum(self.losses) / len(self.losses)
                self.bar.update(
                    self.task,
                    advance=1,
                    status=f"loss {running:.4f}",
                    description=f"epoch {values['epoch']}/{self.epochs}",
                )
            return
        self.losses = []
        line = (
            f"epoch {values['epoch']}/{self.epochs}: mean loss {values['loss']:.4f}, "
            f"test accuracy {100 * values['test_accuracy']:.2f}%"
        )
        if self.bar:
            self.bar.console.print(line)
        else:
            print(line, flush=True)


def _load(args):
    from numnet import data

    if args.data == "mnist":
        return data.load_mnist(args.path), "MNIST (IDX files)"
    return data.load_digits(test_fraction=0.2, seed=args.seed), "scikit-learn's 8x8 digits"


def main(args):
    """``numnet train``: load, initialise, fit, report; 0 on success, 1 if training
    diverged, 2 if the data cannot be loaded."""
    from numnet.data import DataError

    start = time.perf_counter()
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("numnet train: --plot needs matplotlib: pip install 'numnet[plot]'", file=sys.stderr)
            return 2
    try:
        (x_train, y_train, x_test, y_test), name = _load(args)
    except DataError as exc:
        print(f"numnet train: {exc}", file=sys.stderr)
        return 2
    ops = numnet
    if args.device == "cuda":
        from numnet import cuda

        if not cuda.is_available():
            print(f"numnet train: {cuda.unavailable_message()}", file=sys.stderr)
            return 2
        ops = cuda
        if cuda.on_simulator():
            print(
                "numnet train: running in Numba's CUDA simulator, which is very slow; try --epochs 1 --hidden 8",
                file=sys.stderr,
            )
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    widths = [x_train.shape[1], *args.hidden, n_classes]
    layers = init_layers(widths, seed=args.seed)
    steps = args.epochs * math.ceil(len(y_train) / args.batch_size)
    print(
        f"numnet train: {name}, {len(y_train)} training and {len(y_test)} test images; network "
        f"{' -> '.join(map(str, widths))} ({args.activation} hidden, softmax cross-entropy); "
        f"SGD lr {args.lr} momentum {args.momentum}, batch {args.batch_size}, {args.epochs} epochs, "
        f"seed {args.seed}, device {args.device}",
        flush=True,
    )
    fit_start = time.perf_counter()
    try:
        with _Progress(steps, args.epochs) as progress:
            history = fit(
                layers,
                (x_train, y_train, x_test, y_test),
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                momentum=args.momentum,
                hidden=args.activation,
                seed=args.seed,
                ops=ops,
                report=progress,
            )
    except TrainingError as exc:
        print(f"numnet train: {exc}", file=sys.stderr)
        return 1
    end = time.perf_counter()
    final = history["test_accuracy"][-1] if history["test_accuracy"] else float("nan")
    correct = int(round(final * len(y_test))) if len(y_test) else 0
    print(
        f"final test accuracy: {100 * final:.2f}% ({correct}/{len(y_test)}); final epoch's mean "
        f"loss {history['epoch_loss'][-1]:.4f}; {len(history['loss'])} steps in {end - fit_start:.1f} s "
        f"(total {end - start:.1f} s, with loading and compiling)"
    )
    if args.plot:
        plot(history, args.plot, f"numnet train: {name}, {' -> '.join(map(str, widths))}")
        print(f"plot: {args.plot}")
    return 0
