"""``numnet gpu-report`` without a GPU: its one-line refusal, and in the simulator, on tiny
sizes, its correctness checks, its counts of elements that differ from the CPU's, table
and JSON (the times there mean nothing and are not taken); the peaks' arithmetic against
NVIDIA's published figures; its use of the shared timing core."""

import json
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import numnet.cuda
from numnet.commands import gpu_report as R

SIMULATED = numnet.cuda.on_simulator()


def run_numnet(*args, simulator):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1" if simulator else "0"}
    return subprocess.run([sys.executable, "-m", "numnet", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("simulator", [False, True])
def test_without_a_gpu_it_says_so_in_one_line(simulator):
    done = run_numnet("gpu-report", "--quick", simulator=simulator)
    if done.returncode == 0:
        pytest.skip("a real GPU is here")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("numnet gpu-report: no GPU: "), done.stderr
    assert ("simulator" in lines[0]) is simulator, lines[0]
    assert done.stdout == ""


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    if not SIMULATED:
        pytest.skip("runs the report's checks in the simulator")
    try:
        import torch
    except ImportError:
        torch = None
    path = tmp_path_factory.mktemp("report") / "report.json"
    out = __import__("io").StringIO()
    code, document = R.report(
        size="tiny", torch=torch, json_path=str(path), allow_simulator=True, repeats=0, train=False, out=out
    )
    return code, document, json.loads(path.read_text()), out.getvalue(), torch


def test_every_op_is_checked_against_the_cpu(tiny_report):
    _, document, _, text, _ = tiny_report
    rows = {r["op"]: r for r in document["rows"]}
    assert set(rows) == {
        "sigmoid",
        "sigmoid kernel",
        "dot",
        "neuron",
        "mm",
        "linear",
        "forward",
        "log_softmax",
        "softmax",
        "loss_and_grads",
        "SGD.step",
    }
    for op, row in rows.items():
        if op != "sigmoid kernel":  # timed only
            assert row["cpu_ok"] is True and row["vs_cpu"].startswith("ok"), row


def test_every_op_counts_the_elements_that_differ_from_the_cpu(tiny_report):
    """Each compared row says how many of its result's elements differ from the CPU's, out
    of how many (the output sizes of the tiny shapes, counted here from SIZES), and the
    table shows the count before the timings."""
    _, document, _, text, _ = tiny_report
    tiny = R.SIZES["tiny"]
    n, *widths = tiny["loss_and_grads"]
    elements = {
        "sigmoid": tiny["sigmoid"],
        "dot": 1,
        "neuron": 1,
        "mm": tiny["mm"] ** 2,
        "linear": tiny["linear"][0] * tiny["linear"][2],
        "forward": tiny["forward"][0] * tiny["forward"][-1],
        "log_softmax": tiny["log_softmax"][0] * tiny["log_softmax"][1],
        "softmax": tiny["softmax"][0] * tiny["softmax"][1],
        "loss_and_grads": 1 + sum(i * o + o for i, o in zip(widths, widths[1:])),
        "SGD.step": sum(i * o + o for i, o in zip(tiny["SGD.step"], tiny["SGD.step"][1:])),
    }
    rows = {r["op"]: r for r in document["rows"] if "differ_from_cpu" in r}
    assert {op: r["elements"] for op, r in rows.items()} == elements
    assert {op for op, r in rows.items() if r["identical_expected"]} == R.IDENTICAL
    header = next(line for line in text.splitlines() if line.startswith("op "))
    assert header.index("differ from CPU") < header.index("numnet")
    for op, r in rows.items():
        line = next(line for line in text.splitlines() if line.startswith(op + " "))
        assert f"{r['differ_from_cpu']} of {r['elements']}" in line


def test_ops_promised_identical_differ_nowhere(tiny_report):
    code, document, _, _, _ = tiny_report
    differ = {r["op"]: r["differ_from_cpu"] for r in document["rows"] if r.get("identical_expected")}
    assert differ == dict.fromkeys(R.IDENTICAL, 0)
    assert code == 0


def test_the_json_holds_what_the_table_shows(tiny_report):
    _, document, written, text, torch = tiny_report
    assert written["rows"] == json.loads(json.dumps(document["rows"], default=str))
    assert {t["op"] for t in written["targets"]} == {t[0] for t in R.TARGETS}
    assert all(t["measured"] is None for t in written["targets"])  # nothing timed: no verdict
    assert "train: not asked for" in written["not_run"]
    assert written["kernels"] == []  # the simulator compiles nothing; a GPU lists its kernels here
    if torch is None or not torch.cuda.is_available():
        assert any(line.startswith("torch") for line in written["not_run"])
    for row in written["rows"]:
        assert row["op"] in text
    assert "not run:" in text and "targets (issue 13):" in text


def test_a_wrong_kernel_fails_the_check(monkeypatch):
    """The report's comparison is not blind: numnet.cuda.mm off by one ULP in one entry fails."""
    if not SIMULATED:
        pytest.skip("simulator")
    rng = np.random.default_rng(0)
    case = R.build_cases(R.SIZES["tiny"], None, rng)["mm"]()
    assert case["op"] == "mm"
    honest = case["gpu"]

    def off_by_a_little():
        out = honest()
        out[0][3, 4] = np.nextafter(out[0][3, 4], np.inf) * np.float32(1.001)
        return out

    case["gpu"] = off_by_a_little
    row = R.run_case(case, R.references(None), lambda: None, 0, 0, {})
    assert row["cpu_ok"] is False and row["vs_cpu"].startswith("FAIL"), row
    assert row["differ_from_cpu"] == 1 and row["elements"] == 400


def test_one_ulp_passes_the_tolerance_but_not_the_count():
    """mm is promised identical to the CPU: one element one ULP off is within the tolerance
    and still counted, and the report's exit code says so."""
    if not SIMULATED:
        pytest.skip("simulator")
    case = R.build_cases(R.SIZES["tiny"], None, np.random.default_rng(0))["mm"]()
    honest = case["gpu"]

    def one_ulp_off():
        out = honest()
        out[0][1, 2] = np.nextafter(out[0][1, 2], np.float32(np.inf))
        return out

    case["gpu"] = one_ulp_off
    row = R.run_case(case, R.references(None), lambda: None, 0, 0, {})
    assert row["cpu_ok"] is True and row["differ_from_cpu"] == 1 and row["identical_expected"], row
    assert "(0 expected): FAIL" in R.differ_cell(row)


def test_differing_counts_bits_not_values():
    x = np.array([0.0, 1.0, np.nan, 2.0], np.float32)
    y = np.array([-0.0, 1.0, np.nan, np.nextafter(np.float32(2), np.float32(3))], np.float32)
    assert R.differing([x, x[:2]], [y, x[:2]]) == (2, 6)  # -0 vs +0 and 2 vs its neighbour; NaN = NaN


def fake_device(**attrs):
    return types.SimpleNamespace(name=b"Fake", compute_capability=(9, 0), **attrs)


def test_peaks_from_device_attributes_match_published_figures(monkeypatch):
    """H100 SXM5's attributes (132 SMs at 1980 MHz, HBM3 at 2619 MHz on a 5120-bit bus) give
    NVIDIA's datasheet figures: 3.35 TB/s and 67 TFLOP/s float32."""
    from numba import cuda

    monkeypatch.setattr(
        cuda,
        "get_current_device",
        lambda: fake_device(
            MULTIPROCESSOR_COUNT=132, CLOCK_RATE=1_980_000, MEMORY_CLOCK_RATE=2_619_000, GLOBAL_MEMORY_BUS_WIDTH=5120
        ),
    )
    info = R.device_info()
    assert info["bandwidth_GBps"] == pytest.approx(3350, rel=0.01)
    assert info["fp32_GFLOPs"] == pytest.approx(67_000, rel=0.01)
    assert "5120-bit bus" in info["bandwidth_how"] and "132 SMs" in info["fp32_how"]


def test_unknown_peaks_say_why(monkeypatch):
    from numba import cuda

    monkeypatch.setattr(cuda, "get_current_device", lambda: fake_device(MULTIPROCESSOR_COUNT=10))
    info = R.device_info()
    assert info["bandwidth_GBps"] is None and info["fp32_GFLOPs"] is None
    assert info["bandwidth_how"].startswith("unknown") and info["fp32_how"].startswith("unknown")


def test_a_row_is_timed_by_the_shared_core():
    """run_case times numnet and torch with numnet.commands.timing (interleaved blocks,
    synchronised) and reports the median per call and torch's time / numnet's."""
    synced = []
    case = {
        "op": "sleep",
        "size": "1",
        "unit": "GB/s",
        "work": 1e6,
        "time_numnet": lambda: time.sleep(0.001),
        "time_torch": lambda: time.sleep(0.004),
    }
    row = R.run_case(case, None, lambda: synced.append(1), repeats=3, block_seconds=0.01, peaks={"GB/s": 10.0})
    assert 0.001 <= row["numnet_s"] < 0.003
    assert 0.004 <= row["torch_s"] < 0.008
    assert 1.5 < row["vs_torch_speed"] < 8 and row["rate"] == pytest.approx(1e6 / row["numnet_s"] / 1e9)
    assert row["of_peak"] == pytest.approx(row["rate"] / 10.0)
    assert len(synced) >= 2 * 3 * 2  # before and after every block


def test_targets_compare_the_right_figure():
    rows = [
        {"op": "mm", "size": "4096x4096 @ 4096x4096", "vs_torch_speed": 0.6},
        {"op": "sigmoid kernel", "size": "10^8", "of_peak": 0.65},
        {"op": "train", "size": "digits, numnet train defaults", "accuracy": 0.97},
    ]
    found = {t["op"]: t for t in R.check_targets(rows)}
    assert found["mm"]["met"] is True and found["mm"]["measured"] == 0.6
    assert found["sigmoid kernel"]["met"] is False
    assert found["train"]["met"] is True
    assert found["forward"]["met"] is None and found["dot"]["measured"] is None
