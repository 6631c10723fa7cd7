"""What ``numnet bench`` and ``numnet gpu-report`` share: how a row is timed, and how
the rows, the targets and the JSON are written.

The timing (``measure``), as both commands' docstrings describe it:

- each competitor is called twice before anything is timed (compilation, allocation,
  caches);
- a *block* is as many back-to-back calls as fill about ``block_seconds``; a *repeat*
  times one block of each competitor, in an order that rotates from repeat to repeat,
  and records each one's time per call and its ratio to the first competitor's (numnet's)
  time in that repeat. Medians over the repeats are what the tables show: a noisy
  neighbour that slows one block shifts one ratio, not the median;
- ``sync`` (a GPU's synchronise) ends every block, so a block times the work, not its
  launch;
- a block's length (its number of calls) is set from timed blocks of 1, 2, 4, ...
  calls, threads awake, by the fastest time per call among them: from one call, as it
  was, a call that woke threads or met a neighbour's burst (milliseconds on a virtual
  machine) made every block of that competitor a few calls long, and the blocks then
  timed the wake-ups they should leave out (forward 64x784 -> 128 on the Intel Xeon:
  blocks of 6 to 10 ms, numnet's times 66-380 us a call, median 109; now 50 ms blocks,
  55-62 us);
- after a block the process sleeps ``settle[name]`` seconds, until that library's worker
  threads have gone to sleep (OpenBLAS keeps a core spinning for about 100 ms after a
  threaded call, torch's and numba's OpenMP threads for about 10 ms), and each block then
  starts with WAKE_CALLS untimed calls that wake its own threads: torch wakes its own at
  the first; numnet runs the first call after a pause on one thread and wakes its
  threads at the second (numnet._jit.threads);
- a ratio whose repeats spread widely (interquartile range more than ``NOISY`` of their
  median) is marked noisy: a figure to measure again, not to quote.
"""

import json
import math
import statistics
import sys
import time

# Seconds to sleep after a competitor's block (CPU rows), so that its spinning threads do
# not slow down the next one.
SETTLE = {"numpy": 0.12, "torch": 0.015, "numnet": 0.015}

# A ratio is noisy when the interquartile range of its repeats exceeds this fraction of
# their median.
NOISY = 0.25

NOISE_NOTE = (
    f"noisy: the ratio's repeats spread over more than {NOISY:.0%} of their median "
    "(interquartile range): measure it again before you quote it"
)


# -- timing ----------------------------------------------------------------------------------


def _block(fn, calls, sync):
    """Seconds per call of ``calls`` back-to-back calls (``sync`` waits for a GPU)."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


# Untimed calls before each block (the module docstring says why two).
WAKE_CALLS = 2
# The most calls a block holds.
MAX_CALLS = 100_000


def _wake(fn, sync):
    """WAKE_CALLS untimed calls of fn, which leave its worker threads awake."""
    for _ in range(WAKE_CALLS):
        fn()
    sync()


def _calls_per_block(fn, block_seconds, sync):
    """How many back-to-back calls of fn fill about ``block_seconds``: blocks of 1, 2, 4,
    ... calls, at least two of them, until they have taken a quarter of ``block_seconds``;
    the fastest of their times per call decides, so that one slow call (a wake-up, a
    neighbour) does not shorten every block."""
    _wake(fn, sync)
    fastest, spent, calls = math.inf, 0.0, 1
    while calls <= 2 or (spent < block_seconds / 4 and calls <= MAX_CALLS):
        per_call = _block(fn, calls, sync)
        fastest = min(fastest, per_call)
        spent += per_call * calls
        calls *= 2
    return max(1, min(MAX_CALLS, int(block_seconds / max(fastest, 1e-9))))


def measure(
    calls, repeats, block_seconds=0.05, settle=SETTLE, sync=lambda: None, tick=lambda: None, calls_per_block=None
):
    """Time the competitors in ``calls`` (name -> zero-argument function, the first one the
    reference, numnet) side by side, as the module docstring says.

    Returns {"calls": per-block call counts, "times": name -> seconds per call in each
    repeat, "ratios": name -> its time / the reference's in each repeat}. Blocks last
    about ``block_seconds``, or hold ``calls_per_block`` calls. ``tick()`` is called after
    each repeat (a progress bar).
    """
    names = list(calls)
    for fn in calls.values():  # warm-up: compile, allocate, fill caches
        fn()
        fn()
    sync()
    per_block = {}
    for name, fn in calls.items():
        if calls_per_block:
            per_block[name] = calls_per_block
            continue
        per_block[name] = _calls_per_block(fn, block_seconds, sync)
        time.sleep(settle.get(name, 0))
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            _wake(calls[name], sync)  # its worker threads, asleep since the settling pause
            times[name].append(_block(calls[name], per_block[name], sync))
            if settle:
                time.sleep(settle.get(name, 0))
        tick()
    ratios = {name: [t / base for t, base in zip(times[name], times[names[0]])] for name in names}
    return {"calls": per_block, "times": times, "ratios": ratios}


def spread(values):
    """The interquartile range of ``values`` over their median (0 for fewer than 2)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    middle = statistics.median(values)
    return (q3 - q1) / middle if middle > 0 else float("inf")


def medians(timing):
    """From measure's result: {"median_time": name -> s, "median_ratio": name -> ratio,
    "noisy": [names whose ratio is noisy]}."""
    return {
        "median_time": {n: statistics.median(t) for n, t in timing["times"].items()},
        "median_ratio": {n: statistics.median(r) for n, r in timing["ratios"].items()},
        "noisy": sorted(n for n, r in timing["ratios"].items() if spread(r) > NOISY),
    }


def rate(work, seconds):
    """GFLOP/s or GB/s from the FLOPs or bytes of one call and its seconds."""
    return work / seconds / 1e9 if seconds > 0 else float("nan")


# -- writing ---------------------------------------------------------------------------------


def seconds(t):
    """3 significant digits with a unit: 1.23 ms, 45.6 us."""
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def count(n):
    """10^7 for 10000000, else the number as it is."""
    exponent = round(math.log10(n)) if n > 0 else 0
    return f"10^{exponent}" if n == 10**exponent and exponent >= 3 else str(n)


def check_targets(targets, find, figure):
    """Each target (a dict) with the figure measured for it: ``find(target)`` is its row
    or None, ``figure(target, row)`` the number to hold against target["minimum"] (None
    when it cannot be said). Adds "measured" and "met" (None when not measured)."""
    found = []
    for target in targets:
        row = find(target)
        measured = None if row is None else figure(target, row)
        found.append(
            {**target, "measured": measured, "met": None if measured is None else measured >= target["minimum"]}
        )
    return found


def verdict(target):
    return "-" if target["met"] is None else ("met" if target["met"] else "MISSED")


def write_table(title, headers, cells, out=None, console=None, left=()):
    """The rows as a table under ``title``: a rich table on ``console`` when given, else
    columns of plain text on ``out`` (stdout by default)."""
    cells = [list(c) + [""] * (len(headers) - len(c)) for c in cells]
    if console is not None:
        from rich.table import Table

        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="left" if h in left else "right")
        for c in cells:
            table.add_row(*c)
        console.print(table)
        return
    out = out or sys.stdout
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print(title, file=out)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), file=out)
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip(), file=out)
    out.flush()


def write_lines(title, lines, out=None, console=None):
    """A heading and its lines, indented under it (or lines alone when ``title`` is None)."""
    indent = "  " if title else ""
    if console is not None:
        for line in [title] * bool(title) + [indent + line for line in lines]:
            console.print(line, highlight=False)
        return
    out = out or sys.stdout
    for line in [title] * bool(title) + [indent + line for line in lines]:
        print(line, file=out)
    out.flush()


def write_json(path, document, out=None):
    """The document as JSON at ``path``; says so on ``out``."""
    with open(path, "w") as f:
        json.dump(document, f, indent=1, default=str)
    print(f"wrote {path}", file=out or sys.stdout)
