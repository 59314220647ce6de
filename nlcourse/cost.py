"""Measuring what a block or a network costs: parameters, FLOPs, operations dispatched, time and
peak memory. The labs, the chapters and the benchmarks (:mod:`nlcourse.bench`) report what
these functions measure.

FLOPs are 2 per multiply-add, over the operations PyTorch's FLOP counter counts: convolutions,
matrix products and attention kernels (not pooling, BatchNorm, softmax or element-wise work,
which are O(N) or O(NM) with small constants and are left out of the formulas too). Times are
medians of runs taken alternately in one process: on a shared, noisy machine absolute times
drift while ratios hold. Peak memory comes from the allocation events of torch's profiler (exact
bytes allocated by the operation, CPU or CUDA), not from the process's resident size.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile
from torch.utils import flop_counter as fc
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ._modes import pairwise_function
from .pairwise import MATERIALISE_MAX_PAIRS

__all__ = ["parameters", "count_flops", "count_operations", "measured_flops", "block_flops",
           "pairwise_flops", "reference_bytes", "time_call", "time_in_turns", "ratios_to",
           "peak_memory", "matmul_gflops"]


def parameters(module: nn.Module) -> int:
    """The number of parameters of ``module`` (every tensor that trains, and the frozen ones)."""
    return sum(p.numel() for p in module.parameters())


def count_flops(fn) -> int:
    """Floating-point operations (2 per multiply-add) that ``fn()`` executes, counted by running it
    under PyTorch's FLOP counter (matrix products, convolutions and attention kernels)."""
    with FlopCounterMode(display=False, custom_mapping=_sdpa_formulas()) as counter:
        fn()
    return counter.get_total_flops()


class _OperationCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_operations(fn) -> int:
    """The number of PyTorch operations (ATen calls, forward and, if ``fn`` runs it, backward)
    that ``fn()`` dispatches: on a GPU each is at least one kernel launched from the host, so a
    small network's step costs about this many launches whatever its arithmetic."""
    with _OperationCounter() as counter:
        fn()
    return counter.count


def _sdpa_formulas():
    """FLOP formulas for PyTorch's fused CPU attention, which its FLOP counter does not know."""
    aten = torch.ops.aten

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return fc.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)

    return {aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}


def measured_flops(module: nn.Module, x: Tensor, backward: bool = False) -> int:
    """FLOPs of ``module(x)`` (and of its backward pass with ``backward``), counted by running it."""
    if backward:
        return count_flops(lambda: module(x).sum().backward())
    with torch.no_grad():
        return count_flops(lambda: module(x))


def _pooled(spatial: tuple[int, ...]) -> int:
    """Key positions after the block's max-pool: 2 along each axis, space only in 3-D."""
    dims = list(spatial)
    start = 1 if len(dims) == 3 else 0
    for k in range(start, len(dims)):
        dims[k] //= 2
    return math.prod(dims)


def block_flops(mode: str, shape: tuple, inter_channels: int | None = None,
                sub_sample: bool = True, fast: bool = True, device: str = "cpu") -> int:
    """Closed-form forward FLOPs of one block on input ``shape`` ``(B, C, *spatial)``.

    With N positions, M keys (N / 4 with 2x2 sub-sampling), C channels and C' = ``inter_channels``:
    the 1x1 convolutions cost N C C' each (theta, phi, g; W maps C' back to C), none for theta and
    phi in Gaussian mode, and the pairwise step costs what :func:`pairwise_flops`
    says for ``fast`` or the literal path. The fast concatenation sorts instead of multiplying, so
    only its two score projections, (N + M) C', are products (matrix-vector products, which the
    counter leaves out: the formula is then a few per cent above the count). The fused attention
    kernel, which the softmax modes use above ``MATERIALISE_MAX_PAIRS`` on the CPU and always on a
    GPU, needs queries and values of one width: the Gaussian mode pads g from C' to C, and pays
    N M C instead of N M C' for the weighted sum.
    """
    f = pairwise_function(mode)
    B, C, *spatial = shape
    Cp = inter_channels or max(C // 2, 1)
    N = math.prod(spatial)
    M = _pooled(tuple(spatial)) if sub_sample else N
    convs = N * C * Cp * (3 if f.embedded else 1) + N * Cp * C
    fused = fast and f.softmax and (
        torch.device(device).type != "cpu" or B * N * M > MATERIALISE_MAX_PAIRS)
    if f.form == "concat" and fast:
        pairwise = (N + M) * Cp
    elif fused:
        width = max(Cp if f.embedded else C, Cp)
        pairwise = 2 * N * M * width
    else:
        pairwise = pairwise_flops(mode, N, M, C, Cp, fast=fast)
    return 2 * B * (convs + pairwise)


def pairwise_flops(mode: str, n: int, m: int, c: int, c_inter: int, fast: bool) -> int:
    """Multiply-adds of the pairwise step (f, normalisation, weighted sum), forward only.

    The reference builds the N x M matrix in every mode; the fast dot product never does
    (theta (phi^T g)), and the fast concatenation projects to scores a, b and sums over sorted keys.
    """
    f = pairwise_function(mode)
    d = c_inter if f.embedded else c
    if f.form == "dot" and fast:
        return m * c_inter * c_inter + n * c_inter * c_inter
    if f.form == "concat":
        if fast:
            return 2 * (n + m) * c_inter  # scores a, b; then suffix sums and one FMA per query
        return n * m * 2 * c_inter + n * m * c_inter  # w^T [theta; phi] for every pair, then f g
    return n * m * d + n * m * c_inter  # theta . phi for every pair, then f g


def reference_bytes(mode: str, shape: tuple, inter_channels: int | None = None,
                    sub_sample: bool = True) -> int:
    """Rough size of the literal reference's largest tensors in a forward+backward (float32):
    the (N, M, 2C') pairs for the concatenation, the (N, M) matrices otherwise; M is N / 4 with
    ``sub_sample`` (the keys pooled 2x2, or 1x2x2 in video), else N."""
    B, C, *spatial = shape
    Cp = inter_channels or max(C // 2, 1)
    n = 1
    for s in spatial:
        n *= s
    m = n // 4 if sub_sample else n
    concat = pairwise_function(mode).form == "concat"
    per_pair = 2 * Cp * 3 if concat else 6  # tensors of that size kept alive
    return 4 * B * n * m * per_pair

# Time and memory

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


def time_in_turns(fns: dict, rounds: int = 15, warmup: int = 2,
                  device: torch.device | None = None) -> dict[str, list]:
    """Seconds of each ``fns[name]()`` over ``rounds`` rounds, the functions taken in turn within
    each round after ``warmup`` calls each: a burst of load on a shared machine then falls on
    every function alike, and no function is charged the others' warm-up (first-call
    allocations, kernel selection). Compare them by the median over rounds of their ratios."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0; got {rounds} and {warmup}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name] += time_call(fn, repeats=1, warmup=0, device=device)
    return times


def ratios_to(times: dict[str, list], baseline: str) -> dict[str, float]:
    """Each function's time over the baseline's in the same round, the median over rounds."""
    return {name: statistics.median(a / b for a, b in zip(t, times[baseline]))
            for name, t in times.items()}


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
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def matmul_gflops(device: torch.device | None = None, n: int = 2048, repeats: int = 5) -> float:
    """This machine's own float32 matrix-multiply rate: the yardstick for achieved GFLOP/s."""
    device = device or torch.device("cpu")
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / statistics.median(time_call(lambda: a @ b, repeats, 1, device)) / 1e9
