"""Measuring blocks and networks, and reading their maps: the numbers the labs and the complexity
chapter report, each measured by running the code, and the closed-form counts they are checked
against.

FLOPs are 2 per multiply-add, over the operations PyTorch's FLOP counter counts: convolutions,
matrix products and attention kernels (not pooling, BatchNorm, softmax or element-wise work,
which are O(N) or O(NM) with small constants and are left out of the formulas too).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._modes import check_mode
from .bench import count_flops, pairwise_flops, peak_memory
from .pairwise import MATERIALISE_MAX_PAIRS

__all__ = ["parameters", "measured_flops", "block_flops", "peak_memory", "map_statistics"]


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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
    phi in Gaussian mode, and the pairwise step costs what ``nlcourse.bench.pairwise_flops``
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


def _centres(grid: tuple[int, int], image_size: tuple[float, float]) -> Tensor:
    """Pixel coordinates (row, col) of the centres of a grid's cells laid over the image: (n, 2)."""
    (h, w), (H, W) = grid, image_size
    rows = (torch.arange(h, dtype=torch.float64) + 0.5) * (H / h)
    cols = (torch.arange(w, dtype=torch.float64) + 0.5) * (W / w)
    return torch.cartesian_prod(rows, cols)


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
