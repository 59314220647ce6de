"""Time and peak memory of the literal reference against the fast path, forward plus backward.

Both paths are measured in the same process, alternately, and reported as a ratio: on a shared,
noisy machine absolute times drift while ratios hold. Peak memory comes from the allocation
events of torch's profiler (exact bytes allocated by the operation, CPU or CUDA), not from the
process's resident size.
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import time

import torch

from . import reference
from .blocks import NonLocalBlock

__all__ = ["time_call", "peak_memory", "compare_paths", "pairwise_flops", "count_flops",
           "matmul_gflops", "run_benchmark", "precision_check", "compare_variants",
           "run_variant_benchmark", "DEFAULT_SHAPES"]

# The sizes of the performance issue: three image maps and a short video clip, C = 64.
DEFAULT_SHAPES = ((1, 64, 32, 32), (1, 64, 64, 64), (1, 64, 128, 128), (1, 64, 8, 32, 32))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, repeats: int = 5, warmup: int = 1, device: torch.device | None = None) -> list:
    """Seconds of ``fn()`` for each of ``repeats`` runs after ``warmup`` runs: wall clock on the
    CPU, CUDA events on a GPU (which time the device's work, not the launch)."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return times


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler's C++ logging, which writes straight to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(fn, device: torch.device | None = None) -> int:
    """Peak bytes allocated while ``fn()`` runs, above what was allocated before it."""
    device = device or torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def _sdpa_formulas():
    """FLOP formulas for PyTorch's fused CPU attention, which its FLOP counter does not know."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return fc.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)

    return {aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}


def count_flops(fn) -> int:
    """Floating-point operations (2 per multiply-add) that ``fn()`` executes, counted by running it
    under PyTorch's FLOP counter (matrix products, convolutions and attention kernels)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_sdpa_formulas()) as counter:
        fn()
    return counter.get_total_flops()


def matmul_gflops(device: torch.device | None = None, n: int = 2048, repeats: int = 5) -> float:
    """This machine's own float32 matrix-multiply rate: the yardstick for achieved GFLOP/s."""
    device = device or torch.device("cpu")
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / statistics.median(time_call(lambda: a @ b, repeats, 1, device)) / 1e9


def reference_bytes(mode: str, shape: tuple, inter_channels: int | None = None) -> int:
    """Rough size of the literal reference's largest tensors in a forward+backward (float32):
    the (N, M, 2C') pairs for the concatenation, the (N, M) matrices otherwise."""
    B, C, *spatial = shape
    Cp = inter_channels or max(C // 2, 1)
    n = 1
    for s in spatial:
        n *= s
    m = n // 4  # 2x2 (or 1x2x2) pooling of the keys
    per_pair = 2 * Cp * 3 if mode == "concatenation" else 6  # tensors of that size kept alive
    return 4 * B * n * m * per_pair


def pairwise_flops(mode: str, n: int, m: int, c: int, c_inter: int, fast: bool) -> int:
    """Multiply-adds of the pairwise step (f, normalisation, weighted sum), forward only.

    The reference builds the N x M matrix in every mode; the fast dot product never does
    (theta (phi^T g)), and the fast concatenation projects to scores a, b and sums over sorted keys.
    """
    d = c if mode == "gaussian" else c_inter
    if mode == "dot_product" and fast:
        return m * c_inter * c_inter + n * c_inter * c_inter
    if mode == "concatenation":
        if fast:
            return 2 * (n + m) * c_inter  # scores a, b; then suffix sums and one FMA per query
        return n * m * 2 * c_inter + n * m * c_inter  # w^T [theta; phi] for every pair, then f g
    return n * m * d + n * m * c_inter  # theta . phi for every pair, then f g


def compare_paths(mode: str, shape: tuple, repeats: int = 5, warmup: int = 1,
                  device: str | torch.device | None = None, dtype=torch.float32,
                  memory: bool = True, seed: int = 0) -> dict:
    """Forward+backward of one block through ``reference.block_forward`` and through the block's
    fast path: median seconds of each (measured alternately), their ratio, and peak memory."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    torch.manual_seed(seed)
    dimension = len(shape) - 2
    block = NonLocalBlock(shape[1], mode=mode, dimension=dimension).to(device, dtype)
    with torch.no_grad():  # a non-zero W so that backward reaches every parameter
        for p in block.parameters():
            p.normal_(0, 0.05)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)

    def run(path):
        def step():
            block.zero_grad(set_to_none=True)
            x.grad = None
            z = reference.block_forward(block, x)[0] if path == "reference" else block(x)
            z.sum().backward()
        return step

    paths = {"reference": run("reference"), "fast": run("fast")}
    for step in paths.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in paths}
    for _ in range(repeats):  # alternate, so drift on a shared machine hits both alike
        for name, step in paths.items():
            times[name] += time_call(step, repeats=1, warmup=0, device=device)
    result = {"mode": mode, "shape": list(shape), "device": str(device), "dtype": str(dtype),
              "threads": torch.get_num_threads(), "torch_version": torch.__version__}
    for name in paths:
        result[f"{name}_seconds"] = statistics.median(times[name])
    result["speedup"] = result["reference_seconds"] / result["fast_seconds"]
    if memory:
        for name, step in paths.items():
            result[f"{name}_peak_bytes"] = peak_memory(step, device)
        result["memory_ratio"] = result["reference_peak_bytes"] / max(result["fast_peak_bytes"], 1)
    return result


def run_benchmark(shapes=DEFAULT_SHAPES, modes=None, repeats: int = 5, warmup: int = 1,
                  device=None, max_reference_gib: float = 16.0, dtype=torch.float32,
                  log=print) -> dict:
    """Reference against fast path for every mode and shape: times, ratio, peak memory, FLOPs and
    achieved GFLOP/s, plus the machine (threads, device, torch, matmul rate). Shapes whose literal
    reference would need more than ``max_reference_gib`` are measured on the fast path only, and
    the row says why."""
    from ._modes import MODES

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
    return {"machine": machine, "rows": rows, "precision": precision}


def precision_check(shape: tuple = (1, 64, 32, 32), modes=None, device=None,
                    seed: int = 0) -> list[dict]:
    """How far float32 lands from float64, for the block's fast path and the literal formula.

    For every mode: the largest difference of z from the same block run in float64, relative to
    the largest ``|z - x|`` (the part the block adds). On CUDA it is measured twice, with cuDNN's
    TF32 convolutions allowed (PyTorch's default) and forbidden, because the block's four 1x1
    convolutions (theta, phi, g, W) then round their inputs to 10 mantissa bits. The flags are
    restored afterwards.
    """
    from ._modes import MODES

    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    settings = (True, False) if device.type == "cuda" else (None,)
    saved = torch.backends.cudnn.allow_tf32
    rows = []
    try:
        for mode in modes or MODES:
            torch.manual_seed(seed)
            block = NonLocalBlock(shape[1], mode=mode, dimension=len(shape) - 2).to(device)
            with torch.no_grad():  # a non-zero W, so that z - x is the whole block's work
                for p in block.parameters():
                    p.normal_(0, 0.05)
            x = torch.randn(shape, device=device)
            exact = copy.deepcopy(block).double()
            with torch.no_grad():
                z64 = exact(x.double())
                added = (z64 - x.double()).abs().max().item()
                for tf32 in settings:
                    if tf32 is not None:
                        torch.backends.cudnn.allow_tf32 = tf32
                    fast = block(x).double()
                    literal = reference.block_forward(block, x)[0].double()
                    rows.append({"mode": mode, "shape": list(shape), "device": str(device),
                                 "cudnn_tf32": tf32,
                                 "fast_error": (fast - z64).abs().max().item() / added,
                                 "literal_error": (literal - z64).abs().max().item() / added})
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    return rows


def _machine(device: torch.device, dtype) -> dict:
    import platform

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


def compare_variants(shape: tuple, chunk: int = 1024, keep: int = 16, rank_divisor: int = 4,
                     repeats: int = 3, warmup: int = 1, device=None, dtype=torch.float32,
                     seed: int = 0) -> list[dict]:
    """Forward+backward of one embedded-Gaussian block on ``shape`` as the block's own fast path
    ("full"), the literal N x M formula ("full, literal"), and the variants of
    :mod:`nlcourse.efficient`: chunked queries (``chunk``), top-k (k = M / ``keep``) and low rank
    (r = C' / ``rank_divisor``). Each row: median seconds, peak bytes, and the largest difference
    of z from the full block's (absolute, and relative to the largest ``|z - x|``, the part the block
    adds), all measured alternately in one process."""
    from . import efficient

    device = torch.device(device) if device is not None else torch.device("cpu")
    torch.manual_seed(seed)
    block = NonLocalBlock(shape[1], mode="embedded_gaussian", dimension=len(shape) - 2)
    block = block.to(device, dtype)
    with torch.no_grad():  # a non-zero W so that backward reaches every parameter
        for p in block.parameters():
            p.normal_(0, 0.05)
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    M = block.project(x)[1].shape[1]
    k, rank = max(1, M // keep), max(1, block.inter_channels // rank_divisor)
    paths = {
        "full": (block, {}),
        "full, literal": (lambda t: reference.block_forward(block, t)[0], {}),
        "chunked": (efficient.make_variant(block, "chunked", chunk=chunk), {"chunk": chunk}),
        "top_k": (efficient.make_variant(block, "top_k", k=k), {"k": k, "keys": M}),
        "low_rank": (efficient.make_variant(block, "low_rank", rank=rank),
                     {"rank": rank, "inter_channels": block.inter_channels}),
    }
    with torch.no_grad():
        z_full = block(x)
        added = (z_full - x).abs().max().item()

    def step(fn):
        def run():
            x.grad = None
            block.zero_grad(set_to_none=True)
            fn(x).sum().backward()
        return run

    steps = {name: step(fn) for name, (fn, _) in paths.items()}
    for run in steps.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, run in steps.items():
            times[name] += time_call(run, repeats=1, warmup=0, device=device)
    rows = []
    for name, (fn, settings) in paths.items():
        with torch.no_grad():
            error = (fn(x) - z_full).abs().max().item()
        rows.append({"variant": name, "shape": list(shape), "settings": settings,
                     "seconds": statistics.median(times[name]),
                     "peak_bytes": peak_memory(steps[name], device),
                     "max_abs_error": error, "relative_error": error / max(added, 1e-30)})
    for row in rows:
        row["time_ratio"] = row["seconds"] / rows[0]["seconds"]
        row["memory_ratio"] = row["peak_bytes"] / max(rows[0]["peak_bytes"], 1)
    return rows


def run_variant_benchmark(shapes=DEFAULT_SHAPES, repeats: int = 3, device=None, log=print,
                          **options) -> dict:
    """:func:`compare_variants` at every shape, with the machine it ran on."""
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
