"""The benchmarks: the block's fast path against the literal formula at the sizes below, and the
cheaper blocks against the full block. Unlike the other labs they train nothing: each measures
with :mod:`nlcourse.analysis` and writes one JSON file with the run record
(``python -m nlcourse bench paths|variants --out DIR``), which the complexity and cheaper-blocks
chapters read.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from .. import reference
from .._modes import MODES
from ..analysis import (compare_paths, compare_variants, count_flops, matmul_gflops, peak_memory,
                        precision_check, reference_bytes, time_call)
from ..blocks import NonLocalBlock
from ..provenance import run_record

__all__ = ["DEFAULT_SHAPES", "run_benchmark", "run_variant_benchmark", "write"]

# Three image maps and a short video clip, C = 64: where the literal formula's N x M matrix is
# small (32 x 32), large (128 x 128: 16,384 queries x 4,096 keys) and three-dimensional.
DEFAULT_SHAPES = ((1, 64, 32, 32), (1, 64, 64, 64), (1, 64, 128, 128), (1, 64, 8, 32, 32))


def write(result: dict, out: str | Path, name: str, command: str) -> Path:
    """``result`` with its run record, as ``out/name.json``."""
    device = torch.device(result["machine"]["device_type"])
    record = run_record(lab="bench", model=name, budget=None, seed=0, data=None, device=device,
                        precision=result["machine"]["dtype"].replace("torch.", ""),
                        command=command)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({**record, **result}, indent=2) + "\n")
    return path


def run_benchmark(shapes=DEFAULT_SHAPES, modes=None, repeats: int = 5, warmup: int = 1,
                  device=None, max_reference_gib: float = 16.0, dtype=torch.float32,
                  log=print) -> dict:
    """Reference against fast path for every mode and shape: times, ratio, peak memory, FLOPs and
    achieved GFLOP/s, plus the machine (threads, device, torch, matmul rate). Shapes whose literal
    reference would need more than ``max_reference_gib`` are measured on the fast path only, and
    the row says why."""
    modes = tuple(modes or MODES)
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    machine = _machine(device, dtype)
    if log:
        log(f"{machine['device']}, {machine['threads']} thread(s), torch {machine['torch_version']}: "
            f"float32 matmul {machine['matmul_gflops']:.0f} GFLOP/s")
    rows = []
    for shape in shapes:
        for mode in modes:
            need = reference_bytes(mode, shape) / 2 ** 30
            row = _measure(mode, tuple(shape), repeats, warmup, device, dtype,
                           with_reference=need <= max_reference_gib)
            if need > max_reference_gib:
                row["reference_skipped"] = (f"the literal reference needs about {need:.0f} GiB, "
                                            f"more than --max-reference-gib {max_reference_gib:g}")
            rows.append(row)
            if log:
                log(_describe(row))
    precision = precision_check(modes=modes, device=device)
    if log:
        for row in precision:
            tf32 = "" if row["cudnn_tf32"] is None else f", TF32 convolutions {row['cudnn_tf32']}"
            log(f"{row['mode']:>18} float32 vs float64{tf32}: fast path "
                f"{row['fast_error']:.1e}, literal {row['literal_error']:.1e} (relative)")
    return {"machine": machine, "rows": rows, "float32_error": precision}


def run_variant_benchmark(shapes=DEFAULT_SHAPES, repeats: int = 3, device=None, log=print,
                          **options) -> dict:
    """:func:`~nlcourse.analysis.compare_variants` at every shape, with the machine it ran on."""
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    machine = _machine(device, torch.float32)
    rows = []
    for shape in shapes:
        for row in compare_variants(tuple(shape), repeats=repeats, device=device, **options):
            rows.append(row)
            if log:
                log(f"{'x'.join(map(str, row['shape'])):>14} {row['variant']:>14}: "
                    f"{1e3 * row['seconds']:8.1f} ms ({row['time_ratio']:5.2f}x), "
                    f"{row['peak_bytes'] / 2**20:8.1f} MiB ({row['memory_ratio']:5.2f}x), "
                    f"relative error {row['relative_error']:.1e}")
    return {"machine": machine, "rows": rows}


def _machine(device: torch.device, dtype) -> dict:
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        (platform.processor() or platform.machine()),
        "device_type": device.type, "threads": torch.get_num_threads(),
        "torch_version": torch.__version__, "python": platform.python_version(),
        "matmul_gflops": matmul_gflops(device), "dtype": str(dtype),
        # What float32 means on this device: on CUDA these let convolutions or matmuls use TF32.
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _measure(mode, shape, repeats, warmup, device, dtype, with_reference):
    if with_reference:
        row = compare_paths(mode, shape, repeats=repeats, warmup=warmup, device=device,
                            dtype=dtype)
    else:
        row = _fast_only(mode, shape, repeats, warmup, device, dtype)
    row["positions"] = 1
    for s in shape[2:]:
        row["positions"] *= s
    torch.manual_seed(0)
    block = NonLocalBlock(shape[1], mode=mode, dimension=len(shape) - 2).to(device, dtype)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    row["fast_flops"] = count_flops(lambda: block(x).sum().backward())
    if with_reference:
        row["reference_flops"] = count_flops(
            lambda: reference.block_forward(block, x)[0].sum().backward())
    for path in ("reference", "fast"):
        if f"{path}_flops" in row:
            row[f"{path}_gflops_per_s"] = row[f"{path}_flops"] / row[f"{path}_seconds"] / 1e9
    return row


def _fast_only(mode, shape, repeats, warmup, device, dtype):
    torch.manual_seed(0)
    block = NonLocalBlock(shape[1], mode=mode, dimension=len(shape) - 2).to(device, dtype)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)

    def step():
        block.zero_grad(set_to_none=True)
        block(x).sum().backward()

    return {"mode": mode, "shape": list(shape), "device": str(device), "dtype": str(dtype),
            "threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "fast_seconds": statistics.median(time_call(step, repeats, warmup, device)),
            "fast_peak_bytes": peak_memory(step, device)}


def _describe(row) -> str:
    shape = "x".join(map(str, row["shape"]))
    fast = f"fast {1e3 * row['fast_seconds']:8.1f} ms {row['fast_peak_bytes'] / 2**20:8.1f} MiB"
    if "reference_seconds" not in row:
        return f"{row['mode']:>18} {shape:>14}: {fast}  (reference skipped)"
    return (f"{row['mode']:>18} {shape:>14}: reference {1e3 * row['reference_seconds']:8.1f} ms "
            f"{row['reference_peak_bytes'] / 2**20:8.1f} MiB, {fast}: {row['speedup']:6.1f}x faster, "
            f"{row['memory_ratio']:6.1f}x less memory")
