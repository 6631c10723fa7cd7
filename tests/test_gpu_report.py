"""``numnet gpu-report`` without a GPU: its one-line refusal, and in the simulator, on tiny
sizes, its correctness checks, table and JSON (the times there mean nothing and are not
taken); the peaks' arithmetic against NVIDIA's published figures; the timing helper."""
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
    return subprocess.run([sys.executable, "-m", "numnet", *args], env=env, capture_output=True, text=True,
                          timeout=300)


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
    code, document = R.report(size="tiny", torch=torch, json_path=str(path), allow_simulator=True,
                              repeats=0, train=False, out=out)
    return code, document, json.loads(path.read_text()), out.getvalue(), torch


def test_every_op_is_checked_against_the_cpu(tiny_report):
    code, document, _, _, _ = tiny_report
    rows = {r["op"]: r for r in document["rows"]}
    assert set(rows) == {"sigmoid", "sigmoid kernel", "dot", "neuron", "mm", "linear", "forward", "log_softmax",
                         "softmax", "loss_and_grads", "SGD.step"}
    for op, row in rows.items():
        if op != "sigmoid kernel":  # timed only
            assert row["cpu_ok"] is True and row["vs_cpu"].startswith("ok"), row
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
    case = R.build_cases(R.SIZES["tiny"], None, rng)[4]()
    assert case["op"] == "mm"
    honest = case["gpu"]

    def off_by_a_little():
        out = honest()
        out[0][3, 4] = np.nextafter(out[0][3, 4], np.inf) * np.float32(1.001)
        return out

    case["gpu"] = off_by_a_little
    row = R.run_case(case, R._references(None), lambda: None, 0, 0, {})
    assert row["cpu_ok"] is False and row["vs_cpu"].startswith("FAIL"), row


def fake_device(**attrs):
    return types.SimpleNamespace(name=b"Fake", compute_capability=(9, 0), **attrs)


def test_peaks_from_device_attributes_match_published_figures(monkeypatch):
    """H100 SXM5's attributes (132 SMs at 1980 MHz, HBM3 at 2619 MHz on a 5120-bit bus) give
    NVIDIA's datasheet figures: 3.35 TB/s and 67 TFLOP/s float32."""
    from numba import cuda

    monkeypatch.setattr(cuda, "get_current_device", lambda: fake_device(
        MULTIPROCESSOR_COUNT=132, CLOCK_RATE=1_980_000, MEMORY_CLOCK_RATE=2_619_000, GLOBAL_MEMORY_BUS_WIDTH=5120))
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


def test_time_pair_takes_the_median_per_call():
    calls = {"fast": lambda: time.sleep(0.001), "slow": lambda: time.sleep(0.004)}
    times = R.time_pair(calls, sync=lambda: None, repeats=3, block_seconds=0.01)
    assert 0.001 <= times["fast"] < 0.003
    assert 0.004 <= times["slow"] < 0.008


def test_targets_compare_the_right_figure():
    rows = [{"op": "mm", "size": "4096x4096 @ 4096x4096", "vs_torch_speed": 0.6},
            {"op": "sigmoid kernel", "size": "10^8", "of_peak": 0.65},
            {"op": "train", "size": "digits, numnet train defaults", "accuracy": 0.97}]
    found = {t["op"]: t for t in R.check_targets(rows)}
    assert found["mm"]["met"] is True and found["mm"]["measured"] == 0.6
    assert found["sigmoid kernel"]["met"] is False
    assert found["train"]["met"] is True
    assert found["forward"]["met"] is None and found["dot"]["measured"] is None
