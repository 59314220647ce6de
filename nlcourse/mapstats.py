"""Reading attention maps: how spread out a query's weights are, how far they reach, how alike
the queries of one map are, and what the prediction depends on (saliency by occlusion and by
gradient, compared by rank correlation), so that a map can be set beside what it is read as.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["map_statistics", "row_similarity", "occlusion_saliency", "gradient_saliency",
           "rank_correlation"]


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
