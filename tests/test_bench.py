"""The benchmarks run end to end on tiny sizes and write their JSON with the run record;
timings are not asserted."""

import json
import subprocess
import sys

import torch

from nlcourse import MODES
from nlcourse.bench import compare_paths, precision_check
from nlcourse.cost import count_flops, reference_bytes
from nlcourse.labs import mnist
from nlcourse.provenance import missing_fields


def test_bench_command_writes_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nlcourse", "bench", "paths", "--sizes", "1x8x8x8", "1x8x2x4x4",
         "--repeats", "4", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "paths.json").read_text())
    assert missing_fields(result) == [] and result["lab"] == "bench" and result["model"] == "paths"
    machine = result["machine"]
    assert {"device", "threads", "torch_version", "matmul_gflops", "date"} <= machine.keys()
    assert machine["matmul_gflops"] > 0 and result["command"].startswith("python -m nlcourse bench paths")
    assert len(result["rows"]) == 2 * 4
    for row in result["rows"]:
        for key in ("reference_seconds", "fast_seconds", "speedup", "reference_peak_bytes",
                    "fast_peak_bytes", "memory_ratio", "fast_flops", "reference_flops",
                    "fast_gflops_per_s", "threads", "device", "torch_version", "repeats",
                    "speedup_quartiles"):
            assert key in row, key
        low, high = row["speedup_quartiles"]
        assert low <= row["speedup"] <= high and row["repeats"] == 4
    assert (tmp_path / "paths.png").stat().st_size > 0
    assert [r["mode"] for r in result["float32_error"]] == list(MODES)  # one row per mode on a CPU
    assert {"cudnn_allow_tf32", "matmul_allow_tf32"} <= machine.keys()
    # Targets are listed even when the sizes that measure them were not run, as not measured.
    assert result["targets"] and all(t["measured"] is None and not t["met"]
                                     for t in result["targets"])


def test_float32_is_close_to_float64_on_the_cpu():
    """The precision rows the GPU benchmark is read against: on a CPU (no TF32) both paths stay
    within 1e-5 of the float64 block, relative to what the block adds."""
    rows = precision_check(shape=(1, 16, 8, 8), device="cpu")
    assert [r["mode"] for r in rows] == list(MODES)
    for row in rows:
        assert row["cudnn_tf32"] is None and row["device"] == "cpu"
        assert row["fast_error"] < 1e-5 and row["literal_error"] < 1e-5, row


def test_bad_size_is_explained():
    proc = subprocess.run([sys.executable, "-m", "nlcourse", "bench", "paths", "--sizes", "64x64",
                           "--out", "unused"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "BxCxHxW" in proc.stderr


def test_flops_count_the_fused_attention(monkeypatch):
    """The fused CPU kernel is invisible to PyTorch's counter without our formulas."""
    from nlcourse import pairwise

    monkeypatch.setattr(pairwise, "MATERIALISE_MAX_PAIRS", 0)  # small sizes: force the fused kernel
    q, k, v = (torch.randn(1, n, 8, requires_grad=True) for n in (32, 16, 16))
    flops = count_flops(lambda: pairwise.softmax_attention(q, k, v)[0].sum())
    assert flops == 2 * 2 * 32 * 16 * 8   # QK^T and PV, 2 FLOPs per multiply-add


def test_memory_is_measured_not_guessed():
    row = compare_paths("concatenation", (1, 8, 8, 8), repeats=1)
    assert row["reference_peak_bytes"] > row["fast_peak_bytes"] > 0
    assert reference_bytes("concatenation", (1, 64, 128, 128)) > 16 * 2 ** 30



def test_target_verdicts_read_the_rows():
    from nlcourse.bench import target_verdicts

    rows = [{"mode": m, "shape": [1, 64, side, side], "speedup": 1.2, "memory_ratio": 2.0}
            for m in MODES for side in (16, 32, 64, 128)]
    verdicts = target_verdicts(rows)
    failing = {(v["mode"], v["shape"][2], v["field"]) for v in verdicts if not v["met"]}
    # 1.2x meets "never slower" everywhere and none of the large targets.
    assert failing == {("concatenation", 64, "speedup"), ("concatenation", 64, "memory_ratio"),
                       ("dot_product", 128, "speedup"), ("gaussian", 128, "speedup"),
                       ("embedded_gaussian", 128, "speedup"), ("gaussian", 128, "memory_ratio"),
                       ("embedded_gaussian", 128, "memory_ratio")}


def test_step_command_writes_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nlcourse", "bench", "step", "--batch-sizes", "2", "--repeats",
         "3", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "step.json").read_text())
    assert missing_fields(result) == [] and result["model"] == "step"
    rows = {r["model"]: r for r in result["rows"]}
    assert list(rows) == ["none", *MODES] and "compile" not in result
    for row in rows.values():
        assert row["batch_size"] == 2 and row["repeats"] == 3 and not row["compiled"]
        assert row["operations"] > 0 and row["flops"] > 0 and row["seconds"] > 0
        assert row["optimizer"] == "AdamW (fused)"
    assert rows["none"]["ratio"] == 1.0
    assert all(rows[m]["operations"] > rows["none"]["operations"] for m in MODES)


def test_step_benchmark_says_why_compile_was_skipped(monkeypatch):
    from nlcourse import bench

    monkeypatch.setattr(bench, "compiler_missing", lambda device: "no C++ compiler (a test)")
    result = bench.run_step_benchmark(mnist.BUDGETS["quick"], batch_sizes=(2,), models=("none",),
                                      repeats=1, warmup=1, compile=True, log=None)
    assert result["compile"] == "skipped: no C++ compiler (a test)"
    assert [r["compiled"] for r in result["rows"]] == [False]


def test_precision_benchmark_compares_with_float32():
    from nlcourse.bench import run_precision_benchmark

    from .test_train import tiny_data

    result = run_precision_benchmark(models=("embedded_gaussian",), data=tiny_data(), log=None)
    rows = {r["precision"]: r for r in result["rows"]}
    assert list(rows) == ["fp32", "bf16", "fp16"]
    assert rows["fp32"]["predictions_changed"] == 0 and rows["fp32"]["map_max_abs_diff"] == [0, 0]
    # bf16 keeps 8 bits of mantissa, fp16 11: both move the maps, bf16 more.
    assert 0 < rows["fp16"]["map_max_abs_diff"][0] < rows["bf16"]["map_max_abs_diff"][0] < 0.5


# The committed measurements (results/bench/cpu): what the benchmark's TARGETS are read against.

def _committed(name):
    from nlcourse.provenance import results_home

    return json.loads((results_home() / "bench" / "cpu" / f"{name}.json").read_text())


def test_committed_paths_meet_every_target():
    result = _committed("paths")
    assert missing_fields(result) == [] and result["machine"]["device_type"] == "cpu"
    measured = {(r["mode"], r["shape"][2]) for r in result["rows"] if len(r["shape"]) == 4}
    assert {(m, side) for m in MODES for side in (16, 32, 64, 128)} <= measured
    assert all(r["repeats"] >= 30 for r in result["rows"] if "speedup" in r)
    targets = result["targets"]
    assert len(targets) == 3 * 4 + 2 + 1 + 4 and all(t["met"] for t in targets), \
        [t for t in targets if not t["met"]]


def test_committed_step_and_precision_files():
    step = _committed("step")
    assert missing_fields(step) == []
    assert {(r["model"], r["batch_size"]) for r in step["rows"] if not r["compiled"]} == {
        (m, b) for m in ("none", *MODES) for b in (128, 2)}
    precision = _committed("precision")
    assert missing_fields(precision) == [] and precision["data_source"] == "mnist"
    assert precision["n_test"] == 10_000
    assert {(r["model"], r["precision"]) for r in precision["rows"]} == {
        (m, p) for m in ("none", *MODES) for p in ("fp32", "bf16", "fp16")}


def test_committed_precision_file_measured_the_shipped_weights():
    """The mixed-precision section reads this file as a measurement of the shipped networks: it
    must be rerun (``python -m nlcourse bench precision``) whenever other weights are shipped."""
    from nlcourse.shipped import MODELS, pretrained_sha256

    measured = _committed("precision").get("weights_sha256")
    assert measured == {m: pretrained_sha256(m) for m in MODELS}, \
        "results/bench/cpu/precision.json measured other weights than the shipped ones: rerun it"
