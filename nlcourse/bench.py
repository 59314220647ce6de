"""Time and peak memory of the literal reference against the fast path, forward plus backward.

Both paths are measured in the same process, alternately, and reported as a ratio: on a shared,
noisy machine absolute times drift while ratios hold. Peak memory comes from the allocation
events of torch's profiler (exact bytes allocated by the operation, CPU or CUDA), not from the
process's resident size.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time

import torch

from . import reference
from .blocks import NonLocalBlock

__all__ = ["time_call", "peak_memory", "compare_paths", "pairwise_flops"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, repeats: int = 5, warmup: int = 1, device: torch.device | None = None) -> list:
    """Wall-clock seconds of ``fn()`` for each of ``repeats`` runs after ``warmup`` runs."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
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
            return (n + m) * c_inter + (n + m) * c_inter  # scores, then suffix sums and one FMA
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
