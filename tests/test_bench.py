"""``numnet bench --quick`` runs in-process and writes its JSON and chart.

No figure is asserted: speed is measured by the command, never by a test. These tests
prove that the command works end to end (every op timed, the results checked against
torch, the targets listed) and say how it fails without torch.
"""

import json
import sys

import pytest

from numnet.commands import bench, timing
from numnet.commands.cli import main


def test_quick_bench_writes_json_and_plot(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    assert main(["bench", "--quick", "--device", "cpu", "--json", str(out_json), "--plot", str(out_png)]) == 0
    printed = capsys.readouterr().out
    assert "targets" in printed and "vs torch" in printed

    report = json.loads(out_json.read_text())
    rows = report["rows"]
    assert {r["op"] for r in rows} == {"sigmoid", "sum", "dot", "mm", "linear", "forward", "randn", "train step"}
    for r in rows:
        assert "mismatch" not in r, r
        assert set(r["median_time"]) == (
            {"numnet", "torch"} if r["op"] == "train step" else {"numnet", "numpy", "torch"}
        )
        assert all(len(t) == report["repeats"] for t in r["times"].values())
        assert r["median_ratio"]["numnet"] == 1.0 and r["rate"] > 0
    assert {t["op"] for t in report["targets"]} >= {"mm", "forward", "sigmoid"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cuda_rows_are_skipped_without_a_gpu(capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: scripts/gpu-check times it")
    assert main(["bench", "--quick", "--device", "cuda"]) == 0
    assert "cuda: skipped" in capsys.readouterr().out


def test_without_torch_it_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert main(["bench", "--quick"]) == 2
    assert "pip install" in capsys.readouterr().err


def test_measure_interleaves_and_reports_ratios_to_numnet():
    calls = {"numnet": lambda: sum(range(100)), "other": lambda: sum(range(300))}
    result = timing.measure(calls, repeats=3, block_seconds=0.001, settle={})
    assert set(result["times"]) == {"numnet", "other"}
    assert all(len(t) == 3 for t in result["times"].values())
    assert result["ratios"]["numnet"] == [1.0, 1.0, 1.0]
    assert [round(r, 9) for r in result["ratios"]["other"]] == [
        round(o / n, 9) for o, n in zip(result["times"]["other"], result["times"]["numnet"])
    ]


def test_targets_read_the_rows():
    rows = [
        {
            "device": "cpu",
            "op": "mm",
            "size": "1024x1024 @ 1024x1024",
            "rate": 100.0,
            "median_ratio": {"numnet": 1.0, "numpy": 0.95, "torch": 1.5},
        },
        {
            "device": "cuda",
            "op": "sigmoid kernel",
            "size": "10^8",
            "rate": 350.0,
            "median_ratio": {"numnet": 1.0, "torch": 1.0},
        },
    ]
    found = {(t["device"], t["op"], t["size"]): t for t in bench.check_targets(rows, bandwidth=500.0)}
    assert found["cpu", "mm", "1024x1024 @ 1024x1024"]["met"] is True  # 0.95 >= 0.9
    assert found["cuda", "sigmoid kernel", "10^8"]["measured"] == pytest.approx(0.7)
    assert found["cpu", "mm", "2048x2048 @ 2048x2048"]["measured"] is None  # not run


def test_busy_mode_keeps_a_core_busy_and_reports_single_calls(monkeypatch, capsys):
    """--busy starts a spinning process for the run and stops it; rows get the slowest
    single calls. (The sizes are --quick's: this tests the mode, not the machine.)"""
    pytest.importorskip("torch")
    started = []
    real = bench.start_busy_core

    def spy():
        proc = real()
        started.append(proc)
        return proc

    monkeypatch.setattr(bench, "start_busy_core", spy)
    assert main(["bench", "--quick", "--busy", "--device", "cpu"]) == 0
    assert len(started) == 1
    started[0].join(5)
    assert not started[0].is_alive()
    printed = capsys.readouterr().out
    assert "cpu busy" in printed and "slowest call" in printed


def test_worst_calls_sees_a_stall():
    calls = iter(range(1000))

    def sometimes_slow():
        if next(calls) == 50:
            import time

            time.sleep(0.02)

    median, p99, slowest = bench.worst_calls(sometimes_slow, seconds=0.1, most=200)
    assert slowest >= 0.02 > median


def test_a_stall_marks_the_ratio_noisy():
    """A competitor that stalls in some repeats (a wake-up, a neighbour) gets its median
    from the others, and the row says its ratio is noisy."""
    assert timing.spread([1.0, 1.0, 1.0, 1.0]) == 0.0
    assert timing.spread([1.0, 1.0, 30.0, 1.0, 30.0]) > timing.NOISY
    assert timing.spread([1.0, 1.05, 0.97, 1.02, 1.0]) < timing.NOISY
    row = timing.medians(
        {
            "times": {"numnet": [1.0] * 5, "other": [1.0, 1.0, 30.0, 1.0, 30.0]},
            "ratios": {"numnet": [1.0] * 5, "other": [1.0, 1.0, 30.0, 1.0, 30.0]},
        }
    )
    assert row["noisy"] == ["other"] and row["median_ratio"]["other"] == 1.0


def test_each_block_starts_warm():
    """The call before each timed block is not timed: a first call that sleeps (torch's
    threads waking) does not reach the times."""
    import time

    last = {"at": 0.0}

    def wakes_slowly():
        now = time.perf_counter()
        if now - last["at"] > 0.004:  # asleep: the first call after a pause is slow
            time.sleep(0.003)
        last["at"] = time.perf_counter()

    result = timing.measure(
        {"numnet": lambda: None, "other": wakes_slowly},
        repeats=5,
        block_seconds=0.0002,
        settle={"numnet": 0.01, "other": 0.01},
    )
    assert max(result["times"]["other"]) < 0.002, result["times"]["other"]


def test_each_block_starts_with_numnets_threads_awake():
    """numnet runs the first call after a pause on one thread and wakes its threads at the
    second (numnet._jit.threads): neither call is timed. (One untimed call left the
    wake-up, milliseconds, inside the first timed call of every block.)"""
    import time

    state = {"last": 0.0, "awake_until": 0.0}

    def like_numnet():
        now = time.perf_counter()
        threaded = now - state["last"] < 0.004  # the first call of a burst takes one thread
        if threaded and now > state["awake_until"]:  # the second wakes the sleeping threads
            time.sleep(0.003)
        state["last"] = time.perf_counter()
        if threaded:  # they spin a while, then sleep
            state["awake_until"] = state["last"] + 0.004

    result = timing.measure(
        {"numnet": like_numnet, "other": lambda: None},
        repeats=5,
        block_seconds=0.0005,
        settle={"numnet": 0.01, "other": 0.01},
    )
    blocks = [t * result["calls"]["numnet"] for t in result["times"]["numnet"]]
    assert max(blocks) < 0.002, blocks  # no block holds a 3 ms wake-up


def test_one_slow_call_does_not_shorten_the_blocks():
    """The calls per block come from the fastest of several timed blocks: a call that
    stalls right after the warm-up (a wake-up) no longer makes every block one call long."""
    import time

    count = {"calls": 0}

    def stalls_once():
        count["calls"] += 1
        if count["calls"] == 3:  # the first call after the two warm-up calls
            time.sleep(0.02)

    result = timing.measure({"numnet": lambda: None, "other": stalls_once}, repeats=2, block_seconds=0.005, settle={})
    assert result["calls"]["other"] > 100, result["calls"]


def test_compare_lists_rows_more_than_ten_percent_slower():
    def result(*times):
        return {
            "rows": [
                {"device": "cpu", "op": "mm", "size": str(i), "median_time": {"numnet": t}} for i, t in enumerate(times)
            ]
        }

    slower = bench.compare(result(1.2, 1.05, 0.5), result(1.0, 1.0, 1.0))
    assert len(slower) == 1 and slower[0].startswith("cpu mm 0:") and "(+20%)" in slower[0]
    assert bench.cpu_slug("AMD EPYC 9R14 96-Core Processor") == "amd-epyc-9r14-96-core-processor"


def test_cuda_rows_are_gpu_reports_cases_checked_against_the_cpu(monkeypatch):
    """The GPU rows come from gpu-report's case builder (one builder for both commands) and
    are checked, before any timing, against numnet's CPU op. In the simulator, on tiny sizes,
    without torch on CUDA: a correct numnet.cuda passes, a wrong one is a mismatch."""
    import numpy as np

    import numnet.cuda
    from numnet.commands import gpu_report

    if not numnet.cuda.on_simulator():
        pytest.skip("runs the GPU rows' checks in the simulator")
    tiny = gpu_report.SIZES["tiny"]
    plan = [
        ("mm", tiny["mm"]),
        ("sigmoid", tiny["sigmoid"]),
        ("sigmoid kernel", tiny["sigmoid"]),
        ("dot", tiny["dot"]),
        ("linear", tiny["linear"]),
        ("forward", tiny["forward"]),
    ]
    cases = [make() for make in bench.cuda_cases(None, quick=True, plan=plan)]
    assert [c["op"] for c in cases] == [op for op, _ in plan]
    for c in cases:
        assert set(c["calls"]) == {"numnet"}  # no torch on CUDA here
        c["calls"]["numnet"]()
        assert (c["check"] is None) if c["op"] == "sigmoid kernel" else (c["check"]() is None), c["op"]

    honest = numnet.cuda.mm

    def wrong(a, b):
        out = honest(a, b).copy_to_host()
        out[0, 0] = out[0, 0] * np.float32(1.001) + np.float32(1e-3)
        return numnet.cuda.ops.cuda.to_device(out)

    monkeypatch.setattr(numnet.cuda, "mm", wrong)
    mm_case = bench.cuda_cases(None, quick=True, plan=[("mm", tiny["mm"])])[0]()
    assert mm_case["check"]().startswith("FAIL"), mm_case["check"]()
