"""The benchmarks run end to end on tiny sizes and write their JSON with the run record;
timings are not asserted."""

import json
import subprocess
import sys

import torch

from nlcourse import MODES
from nlcourse.analysis import compare_paths, count_flops, precision_check, reference_bytes
from nlcourse.provenance import missing_fields


def test_bench_command_writes_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nlcourse", "bench", "paths", "--sizes", "1x8x8x8", "1x8x2x4x4",
         "--repeats", "2", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
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
                    "fast_gflops_per_s", "threads", "device", "torch_version"):
            assert key in row, key
    assert (tmp_path / "paths.png").stat().st_size > 0
    assert [r["mode"] for r in result["float32_error"]] == list(MODES)  # one row per mode on a CPU
    assert {"cudnn_allow_tf32", "matmul_allow_tf32"} <= machine.keys()


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

