"""All measuring: parameters, FLOPs, time, memory, the fast path against the literal formula,
and the statistics of attention maps. The labs, the chapters and the benchmarks
(``nlcourse.labs.bench``) report what these functions measure.

FLOPs are 2 per multiply-add, over the operations PyTorch's FLOP counter counts: convolutions,
matrix products and attention kernels (not pooling, BatchNorm, softmax or element-wise work,
which are O(N) or O(NM) with small constants and are left out of the formulas too). Times are
medians of runs taken alternately in one process: on a shared, noisy machine absolute times
drift while ratios hold. Peak memory comes from the allocation events of torch's profiler (exact
bytes allocated by the operation, CPU or CUDA), not from the process's resident size.
"""

from __future__ import annotations

import contextlib
import copy
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

from . import efficient, reference
from ._modes import MODES, check_mode
from .blocks import NonLocalBlock
from .pairwise import MATERIALISE_MAX_PAIRS

__all__ = ["parameters", "count_flops", "count_operations", "measured_flops", "block_flops", "pairwise_flops",
           "reference_bytes", "time_call", "peak_memory", "matmul_gflops", "compare_paths",
           "precision_check", "compare_variants", "map_statistics", "row_similarity",
           "occlusion_saliency",
           "gradient_saliency", "rank_correlation"]


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
    check_mode(mode)
    B, C, *spatial = shape
    Cp = inter_channels or max(C // 2, 1)
    N = math.prod(spatial)
    M = _pooled(tuple(spatial)) if sub_sample else N
    convs = N * C * Cp * (1 if mode == "gaussian" else 3) + N * Cp * C
    fused = fast and mode in ("gaussian", "embedded_gaussian") and (
        torch.device(device).type != "cpu" or B * N * M > MATERIALISE_MAX_PAIRS)
    if mode == "concatenation" and fast:
        pairwise = (N + M) * Cp
    elif fused:
        width = max(C if mode == "gaussian" else Cp, Cp)
        pairwise = 2 * N * M * width
    else:
        pairwise = pairwise_flops(mode, N, M, C, Cp, fast=fast)
    return 2 * B * (convs + pairwise)


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



# The fast path against the literal formula

def compare_paths(mode: str, shape: tuple, repeats: int = 5, warmup: int = 1,
                  device: str | torch.device | None = None, dtype=torch.float32,
                  memory: bool = True, seed: int = 0) -> dict:
    """Forward+backward of one block through ``reference.block_forward`` and through the block's
    fast path, and peak memory.

    The two are timed in pairs, back to back, the order swapped from one pair to the next, so
    drift on a shared machine hits both alike. ``speedup`` is the median over the pairs of
    reference / fast (with its quartiles), which a burst of load in one pair cannot move;
    ``*_seconds`` are each path's median."""
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
    for i in range(repeats):
        for name in (("reference", "fast") if i % 2 == 0 else ("fast", "reference")):
            times[name] += time_call(paths[name], repeats=1, warmup=0, device=device)
    result = {"mode": mode, "shape": list(shape), "device": str(device), "dtype": str(dtype),
              "threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "repeats": repeats}
    for name in paths:
        result[f"{name}_seconds"] = statistics.median(times[name])
    ratios = [r / f for r, f in zip(times["reference"], times["fast"])]
    result["speedup"] = statistics.median(ratios)
    if len(ratios) >= 4:
        result["speedup_quartiles"] = [float(q) for q in
                                       statistics.quantiles(ratios, n=4, method="inclusive")[::2]]
    if memory:
        for name, step in paths.items():
            result[f"{name}_peak_bytes"] = peak_memory(step, device)
        result["memory_ratio"] = result["reference_peak_bytes"] / max(result["fast_peak_bytes"], 1)
    return result


def precision_check(shape: tuple = (1, 64, 32, 32), modes=None, device=None,
                    seed: int = 0) -> list[dict]:
    """How far float32 lands from float64, for the block's fast path and the literal formula.

    For every mode: the largest difference of z from the same block run in float64, relative to
    the largest ``|z - x|`` (the part the block adds). On CUDA it is measured twice, with cuDNN's
    TF32 convolutions allowed (PyTorch's default) and forbidden, because the block's four 1x1
    convolutions (theta, phi, g, W) then round their inputs to 10 mantissa bits. The flags are
    restored afterwards.
    """
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


def compare_variants(shape: tuple, chunk: int = 1024, keep: int = 16, rank_divisor: int = 4,
                     repeats: int = 3, warmup: int = 1, device=None, dtype=torch.float32,
                     seed: int = 0) -> list[dict]:
    """Forward+backward of one embedded-Gaussian block on ``shape`` as the block's own fast path
    ("full"), the literal N x M formula ("full, literal"), and the variants of
    :mod:`nlcourse.efficient`: chunked queries (``chunk``), top-k (k = M / ``keep``) and low rank
    (r = C' / ``rank_divisor``). Each row: median seconds, peak bytes, and the largest difference
    of z from the full block's (absolute, and relative to the largest ``|z - x|``, the part the block
    adds), all measured alternately in one process."""
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



# Attention maps

def _centres(grid: tuple[int, int], image_size: tuple[float, float]) -> Tensor:
    """Pixel coordinates (row, col) of the centres of a grid's cells laid over the image: (n, 2)."""
    (h, w), (H, W) = grid, image_size
    rows = (torch.arange(h, dtype=torch.float64) + 0.5) * (H / h)
    cols = (torch.arange(w, dtype=torch.float64) + 0.5) * (W / w)
    return torch.cartesian_prod(rows, cols)


def row_similarity(nl_map: Tensor) -> Tensor:
    """Mean cosine similarity between the rows (queries) of each map (B, N, M), shape (B,): 1 when
    every query attends alike (GCNet's query-independent map), lower as queries differ."""
    if nl_map.dim() != 3 or nl_map.shape[1] < 2:
        raise ValueError(f"nl_map must be (B, N, M) with N >= 2 queries; got shape "
                         f"{tuple(nl_map.shape)}")
    rows = torch.nn.functional.normalize(nl_map, dim=-1)
    sim = rows @ rows.transpose(1, 2)
    n = rows.shape[1]
    return (sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(-1)) / (n * (n - 1))


def map_statistics(nl_map: Tensor, query_grid: tuple[int, int], key_grid: tuple[int, int],
                   image_size: int | tuple[int, int] | None = None,
                   radius: float | None = None) -> dict[str, Tensor]:
    """Per-query statistics of a 2-D block's map (B, N, M), N = prod(query_grid) queries and
    M = prod(key_grid) keys laid over the same image of ``image_size`` pixels (default: the query
    grid, so distances are in query cells).

    Returns tensors of shape (B, N): ``entropy`` (nats; ln M for uniform attention, 0 for one key),
    ``max_weight``, ``mean_distance`` (the weighted mean distance from the query's centre to the
    keys' centres, in pixels) and, with ``radius``, ``beyond_radius`` (the share of the weight on
    keys farther than ``radius`` pixels). The rows should be weights (non-negative, summing to 1),
    as in the softmax modes; for the dot product and the concatenation, whose rows are neither,
    the statistics are taken of the normalised absolute values and say so in ``normalised``.
    """
    if not isinstance(nl_map, Tensor) or nl_map.dim() != 3:
        shape = tuple(nl_map.shape) if isinstance(nl_map, Tensor) else type(nl_map).__name__
        raise ValueError(f"nl_map must be shaped (B, N queries, M keys), got {shape}")
    N, M = math.prod(query_grid), math.prod(key_grid)
    if nl_map.shape[1:] != (N, M):
        raise ValueError(f"nl_map has {nl_map.shape[1]} queries x {nl_map.shape[2]} keys but the "
                         f"grids say {query_grid} = {N} queries and {key_grid} = {M} keys")
    if image_size is None:
        image_size = query_grid
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    w = nl_map.detach().double()
    rows = w.sum(-1, keepdim=True)
    normalised = bool((w < 0).any() or not torch.allclose(rows, torch.ones_like(rows), atol=1e-6))
    if normalised:
        w = w.abs()
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-300)
    entropy = -(w * torch.log(w.clamp_min(1e-300))).sum(-1)
    q, k = _centres(query_grid, image_size), _centres(key_grid, image_size)
    distance = torch.cdist(q, k)                                    # (N, M), pixels
    stats = {"entropy": entropy, "max_weight": w.amax(-1),
             "mean_distance": (w * distance).sum(-1),
             "normalised": torch.tensor(normalised)}
    if radius is not None:
        stats["beyond_radius"] = (w * (distance > radius)).sum(-1)
    return stats


def _check_images(images) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor shaped (B, channels, H, W), got {shape}")
    return images


def _targets(logits: Tensor, target) -> Tensor:
    if target is None:
        return logits.argmax(1)
    target = torch.as_tensor(target, device=logits.device).reshape(-1)
    if target.numel() != logits.shape[0]:
        raise ValueError(f"target must hold one class per image ({logits.shape[0]}), "
                         f"got {target.numel()}")
    return target.long()


@torch.no_grad()
def occlusion_saliency(net: nn.Module, images: Tensor, patch: int = 4, fill: float = 0.0,
                       target=None) -> Tensor:
    """How much the logit of ``target`` (default: the predicted class) falls when each
    ``patch`` x ``patch`` square of the image is painted ``fill``: (B, H/patch, W/patch).

    The question it answers is the one an attention map is often read as answering: which part
    of the input did this decision depend on? It asks the network, by removing the part.
    """
    images = _check_images(images)
    h, w = images.shape[-2:]
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"patch must divide the image's sides {h} x {w}, got {patch}")
    net = net.eval()
    logits = net(images)
    cls = _targets(logits, target)
    base = logits.gather(1, cls[:, None])[:, 0]
    out = torch.empty(images.shape[0], h // patch, w // patch, dtype=logits.dtype)
    for r in range(h // patch):
        for c in range(w // patch):
            hidden = images.clone()
            hidden[..., r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = fill
            out[:, r, c] = (base - net(hidden).gather(1, cls[:, None])[:, 0]).cpu()
    return out


def gradient_saliency(net: nn.Module, images: Tensor, target=None) -> Tensor:
    """The absolute gradient of the logit of ``target`` (default: the predicted class) with
    respect to each pixel, summed over channels: (B, H, W). The local sensitivity, where occlusion
    is the effect of removing a part."""
    images = _check_images(images).detach().clone().requires_grad_(True)
    net = net.eval()
    with torch.enable_grad():
        logits = net(images)
        cls = _targets(logits, target)
        logits.gather(1, cls[:, None]).sum().backward()
    return images.grad.abs().sum(1).detach()


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation between ``a[i]`` and ``b[i]`` for each i, over all their
    remaining dimensions (ties get the mean rank): (B,). 1 when both order the positions alike."""
    if a.shape[0] != b.shape[0] or a[0].numel() != b[0].numel():
        raise ValueError(f"a and b must hold the same number of items of the same size, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")

    def ranks(x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1).double()
        order = x.argsort(-1)
        r = torch.empty_like(x)
        r.scatter_(1, order, torch.arange(x.shape[1], dtype=x.dtype).expand_as(x).contiguous())
        # ties: replace each rank by the mean rank of its group of equal values
        for i in range(x.shape[0]):
            values, inverse = torch.unique(x[i], return_inverse=True)
            if len(values) < x.shape[1]:
                sums = torch.zeros(len(values), dtype=x.dtype).index_add_(0, inverse, r[i])
                counts = torch.zeros(len(values), dtype=x.dtype).index_add_(
                    0, inverse, torch.ones_like(r[i]))
                r[i] = (sums / counts)[inverse]
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-300)
