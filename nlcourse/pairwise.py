"""Fast forms of the four pairwise functions, each equal to :mod:`nlcourse.reference`.

Same token layout as the reference: queries ``(B, N, C)``, keys ``(B, M, C)``, values
``(B, M, C')``. Each kernel returns ``(y, attention)``; ``attention`` is the (B, N, M) matrix
f / C(x) when ``need_map`` is true, else ``None`` and then the kernel may avoid building it:

* Gaussian and embedded Gaussian: a softmax, so PyTorch's fused
  ``scaled_dot_product_attention`` (never materialises the N x M matrix in its fused kernels);
  on the CPU, below ``MATERIALISE_MAX_PAIRS``, the matrix itself, in blocks of queries above
  ``BLOCK_QUERIES_ABOVE_PAIRS``, with the weights of x against itself kept out of the
  subnormal range (``SUBNORMAL_SPREAD``).
* dot product: associativity, ``theta (phi^T g) / M``: O(N C C') instead of O(N M C).
* concatenation: ``w^T [theta_i; phi_j] = a_i + b_j``, so f = ReLU(a_i + b_j) needs no
  (B, 2C', N, M) tensor; without the map, sorting b turns the sum over j into suffix sums,
  O((N + M) log M) instead of O(N M).

The book derives each of these: the chapters on the four pairwise functions (``book/gaussian.md``
... ``book/concatenation.md``) and on their cost (``book/complexity.md``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._modes import PairwiseFunction, pairwise_function

__all__ = ["softmax_attention", "dot_product", "concatenation", "nonlocal_op", "run_kernel",
           "softmax_attention_channels", "dot_product_channels", "concatenation_channels",
           "nonlocal_op_channels", "run_kernel_channels", "MATERIALISE_MAX_PAIRS"]

# On the CPU, below this many (batch x query x key) pairs the plain softmax(q k^T) v runs, whose
# N x M matrix is then small (16 MiB in float32); above it the fused kernel, which never holds the
# matrix. The committed benchmark (results/bench/cpu/paths.json, book/complexity.md) has its
# 64 x 64 map below the threshold and its 128 x 128 map above it; it does not time both kernels at
# one size, so the threshold is a memory bound, not a measured speed crossover. On a GPU the fused
# kernel always runs.
MATERIALISE_MAX_PAIRS = 2 ** 22
# Above this many pairs (and up to MATERIALISE_MAX_PAIRS) the block's map-free CPU path builds the
# matrix a block of queries at a time, each block about QUERY_BLOCK_PAIRS pairs (2 MiB of scores
# in float32): every block's scores, weights and gradients are made and used while they are in
# the core's cache, and no 16 MiB buffer is allocated (and its pages touched anew) per product.
# Every block's weights are still kept for the backward pass, so the memory is the matrix's as
# before. Measured on the course's CPU (1 thread): at 64 x 64 with pooled keys (4,096 x 1,024
# pairs) the softmax step ran 1.3 to 1.5 times as fast in blocks of 2**18 to 2**20 pairs; at
# 2**20 pairs and below, blocks gained nothing.
BLOCK_QUERIES_ABOVE_PAIRS = 2 ** 20
QUERY_BLOCK_PAIRS = 2 ** 19


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0,
                      need_map: bool = False) -> tuple[Tensor, Tensor | None]:
    """softmax_j(scale * q_i . k_j) v_j: the Gaussian and embedded Gaussian modes."""
    small = q.device.type == "cpu" and q.shape[0] * q.shape[1] * k.shape[1] <= MATERIALISE_MAX_PAIRS
    if need_map or small:
        attention = torch.softmax(scale * q @ k.transpose(1, 2), dim=-1)
        return attention @ v, (attention if need_map else None)
    # 4-D (B, heads=1, tokens, channels): with 3-D inputs PyTorch's CPU dispatcher falls back to
    # the unfused math path, which builds the whole matrix (the memory target of bench.TARGETS at
    # 128 x 128, in results/bench/cpu/paths.json, would then fail). Its fused CPU kernel also
    # needs the values as wide as the queries (the Gaussian mode has C for q, k and C' for v):
    # zero channels change no dot product and no output, so pad the narrower side.
    dq, dv = q.shape[-1], v.shape[-1]
    if dv < dq:
        v = F.pad(v, (0, dq - dv))
    elif dq < dv:
        q, k = F.pad(q, (0, dv - dq)), F.pad(k, (0, dv - dq))
    # And it needs the channels contiguous: the tokens are transposed views of (B, C, N) maps,
    # and on those it silently falls back to the math path, the whole matrix again.
    q, k, v = (t.contiguous().unsqueeze(1) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return y.squeeze(1)[..., :dv], None


def dot_product(theta: Tensor, phi: Tensor, g: Tensor, need_map: bool = False,
                scale: float = 1.0) -> tuple[Tensor, Tensor | None]:
    """(1/M) sum_j scale (theta_i . phi_j) g_j."""
    M = phi.shape[1]
    if need_map:
        attention = scale * theta @ phi.transpose(1, 2) / M
        return attention @ g, attention
    # (theta phi^T) g == theta (phi^T g): a C' x C' matrix replaces the N x M one (and takes the
    # scale and the 1/M, C'^2 numbers instead of N C').
    return theta @ (phi.transpose(1, 2) @ g * (scale / M)), None


def _suffix_sum(t: Tensor, dim: int = 1) -> Tensor:
    """S[k] = sum_{j >= k} t[j] along ``dim``, with a final zero (S[M] = 0)."""
    s = torch.flip(torch.cumsum(torch.flip(t, dims=[dim]), dim=dim), dims=[dim])
    return torch.cat([s, torch.zeros_like(s.narrow(dim, 0, 1))], dim=dim)


def concatenation(theta: Tensor, phi: Tensor, g: Tensor, w_concat: Tensor,
                  need_map: bool = False) -> tuple[Tensor, Tensor | None]:
    """(1/M) sum_j ReLU(w^T [theta_i; phi_j]) g_j, via a_i = w_theta . theta_i, b_j = w_phi . phi_j."""
    Cp = theta.shape[-1]
    M = phi.shape[1]
    a = theta @ w_concat[:Cp]  # (B, N)
    b = phi @ w_concat[Cp:]    # (B, M)
    if need_map:
        attention = torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / M
        return attention @ g, attention
    # ReLU(a_i + b_j) = a_i + b_j exactly for the keys with b_j > -a_i, else 0. With b sorted
    # ascending those keys are a suffix, so the sum over j is a_i * sum(g) + sum(b g) over it.
    b_sorted, order = torch.sort(b, dim=1)
    g_sorted = torch.gather(g, 1, order.unsqueeze(-1).expand_as(g))
    first = torch.searchsorted(b_sorted.detach().contiguous(), (-a).detach().contiguous(),
                               right=True)  # (B, N): index of the first key with b_j > -a_i
    index = first.unsqueeze(-1).expand(-1, -1, g.shape[-1])
    sum_g = torch.gather(_suffix_sum(g_sorted), 1, index)
    sum_bg = torch.gather(_suffix_sum(b_sorted.unsqueeze(-1) * g_sorted), 1, index)
    return (a.unsqueeze(-1) * sum_g + sum_bg) / M, None


def nonlocal_op(mode: str, theta: Tensor, phi: Tensor, g: Tensor, w_concat: Tensor | None = None,
                scale: float = 1.0, need_map: bool = False) -> tuple[Tensor, Tensor | None]:
    """Dispatch to the fast kernel of ``mode`` (the table's ``kernel``); same contract as
    ``reference.nonlocal_op``."""
    return run_kernel(pairwise_function(mode), theta, phi, g, w_concat, scale, need_map)


def run_kernel(f: PairwiseFunction, theta: Tensor, phi: Tensor, g: Tensor,
               w_concat: Tensor | None = None, scale: float = 1.0,
               need_map: bool = False) -> tuple[Tensor, Tensor | None]:
    """:func:`nonlocal_op` for a row of the table already checked (the block's, at construction):
    the kernel the row names, with the concatenation's weight or the scale."""
    extra = {"w_concat": w_concat} if f.form == "concat" else {"scale": scale}
    return globals()[f.kernel](theta, phi, g, need_map=need_map, **extra)


# Channel-first forms, for the block's map-free forward. The projections come out of the 1x1
# convolutions as (B, C', positions); taking them as they are, and arranging each product so that
# its result is (B, C', N) as well, means no transposed copy on the way in or out: y goes straight
# into W, and every gradient flowing back into the convolutions (and into x itself, in Gaussian
# mode) arrives contiguous instead of being summed into a channels-last buffer.

def _small(q: Tensor, k: Tensor) -> bool:
    return q.device.type == "cpu" and q.shape[0] * q.shape[2] * k.shape[2] <= MATERIALISE_MAX_PAIRS


# A softmax weight under the smallest normal float (about e^-87 of its row's largest, in float32
# and bfloat16) is subnormal, and an x86 CPU multiplies subnormals in microcode, tens of times
# slower, in every matrix product that reads them, forward and backward. The Gaussian mode
# without sub-sampling compares x with itself: each query is among its own keys, its score
# |x_i|^2 stands far above the rest of its row, and many weights fall that low (its
# 1 x 64 x 16 x 16 block ran 10 times slower for it). So where the queries are the keys, the CPU
# path looks at the scores of one row in SUBNORMAL_SAMPLE before the softmax, and where a row
# spreads wide enough for a weight to fall below the smallest normal float it raises the scores
# to at least their row's largest minus SUBNORMAL_SPREAD, e^-43.7 of the largest weight (the
# square root of the smallest normal float): then no weight, nor the product of two such numbers
# in the backward pass, is subnormal, and y moves by at most M e^-43.7 max|g|, 1e-19 of it per
# key, far below float32's rounding. Everywhere else the softmax is left exact: the look cost the
# block 6% at 16 x 16 whether or not it found anything, and no other configuration met
# subnormal weights in the course's measurements. Half precision, whose normal range ends at
# 6e-5, keeps its softmax exact too.
SUBNORMAL_SPREAD = {dtype: -0.5 * math.log(torch.finfo(dtype).tiny)
                    for dtype in (torch.float32, torch.bfloat16)}
SUBNORMAL_SAMPLE = 8


def _softmax_without_subnormals(scores: Tensor) -> Tensor:
    """softmax(scores) along the last axis; if a row looked at (one in ``SUBNORMAL_SAMPLE``)
    spreads so wide that a weight may be subnormal in float32 or bfloat16, the softmax of the
    scores raised to at least their row's largest minus ``SUBNORMAL_SPREAD`` instead (the
    gradient passing the raise unchanged)."""
    spread = SUBNORMAL_SPREAD.get(scores.dtype)
    # A traced or exported graph (torch.export, ONNX, torch.compile) cannot branch on the data:
    # it keeps the exact softmax.
    if spread is None or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return torch.softmax(scores, dim=-1)
    rows = scores.detach()[:, ::SUBNORMAL_SAMPLE]
    # a weight is e^(s - largest) / (a sum of at most M): under the smallest normal float
    # (e^(-2 spread)) once s lies more than 2 spread - ln M below its row's largest
    if (rows.amax(dim=-1) - rows.amin(dim=-1)).max().item() <= \
            2 * spread - math.log(scores.shape[-1]):
        return torch.softmax(scores, dim=-1)
    with torch.no_grad():
        lift = (scores.amax(dim=-1, keepdim=True) - spread - scores).clamp_min_(0)
    return torch.softmax(lift.add_(scores), dim=-1)   # in place: the gradient goes to scores


def softmax_attention_channels(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """:func:`softmax_attention` on (B, C, N) queries, (B, C, M) keys, (B, C', M) values; returns
    y as (B, C', N). Queries that are the keys themselves (the Gaussian without sub-sampling) keep
    the CPU path's weights out of the subnormal range (``SUBNORMAL_SPREAD``)."""
    softmax = _softmax_without_subnormals if (
        q.shape == k.shape and q.stride() == k.stride() and q.data_ptr() == k.data_ptr()) else (
        lambda scores: torch.softmax(scores, dim=-1))
    if _small(q, k):
        # The softmax along the scores' contiguous last axis, then one transposed copy of y
        # (C' x N numbers): faster than softmax over the keys as axis 1 of a (B, M, N) matrix,
        # which would need no copy (measured for N = 256 to 4096 queries on 2 CPU threads).
        B, _, N = q.shape
        values = v.transpose(1, 2)
        if B * N * k.shape[2] <= BLOCK_QUERIES_ABOVE_PAIRS:
            weights = softmax(_scores(q, k, scale))
            return torch.bmm(weights, values).transpose(1, 2).contiguous()
        # In blocks of queries; split and cat are one operation each, forward and backward.
        rows = max(1, QUERY_BLOCK_PAIRS // (B * k.shape[2]))
        return torch.cat([torch.bmm(softmax(_scores(part, k, scale)), values).transpose(1, 2)
                          for part in q.split(rows, dim=2)], dim=2)
    if scale != 1.0:  # scale the queries (N x C numbers), not the scores (N x M)
        q = q * scale
    y, _ = softmax_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return y.transpose(1, 2).contiguous()


def _scores(q: Tensor, k: Tensor, scale: float) -> Tensor:
    """scale * q^T k, (B, N, M), for (B, C, N) queries and (B, C, M) keys: one batched product
    that scales as it writes (no pass over q or the scores for the scale), and, unlike ``@`` on
    3-D tensors, no expand and reshape around it, forward or backward, which at 16 x 16 cost as
    much as the product."""
    return torch.baddbmm(q.new_empty(()), q.transpose(1, 2), k, beta=0, alpha=scale)


def dot_product_channels(theta: Tensor, phi: Tensor, g: Tensor, scale: float = 1.0) -> Tensor:
    """:func:`dot_product` channel-first: y = (scale g phi^T / M) theta, a C' x C' matrix times
    theta."""
    return torch.bmm(torch.baddbmm(g.new_empty(()), g, phi.transpose(1, 2), beta=0,
                                   alpha=scale / phi.shape[2]), theta)


def concatenation_channels(theta: Tensor, phi: Tensor, g: Tensor, w_concat: Tensor,
                           dense: bool = False) -> Tensor:
    """:func:`concatenation` channel-first: the sorted suffix-sum form, or with ``dense`` the
    (B, N, M) matrix ReLU(a_i + b_j) / M, which needs no sort (and so exports to ONNX, which has
    no searchsorted) at the cost of N M memory."""
    Cp, M = theta.shape[1], phi.shape[2]
    a = w_concat[:Cp] @ theta   # (B, N)
    b = w_concat[Cp:] @ phi     # (B, M)
    if dense:
        return g @ (torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / M).transpose(1, 2)
    b_sorted, order = torch.sort(b, dim=1)
    g_sorted = torch.gather(g, 2, order.unsqueeze(1).expand_as(g))
    first = torch.searchsorted(b_sorted.detach().contiguous(), (-a).detach().contiguous(),
                               right=True)  # (B, N): index of the first key with b_j > -a_i
    index = first.unsqueeze(1).expand(-1, g.shape[1], -1)

    sum_g = torch.gather(_suffix_sum(g_sorted, dim=2), 2, index)
    sum_bg = torch.gather(_suffix_sum(b_sorted.unsqueeze(1) * g_sorted, dim=2), 2, index)
    return (a.unsqueeze(1) * sum_g + sum_bg) / M


def nonlocal_op_channels(mode: str, theta: Tensor, phi: Tensor, g: Tensor,
                         w_concat: Tensor | None = None, scale: float = 1.0,
                         dense_concatenation: bool = False) -> Tensor:
    """:func:`nonlocal_op` without the map, on channel-first tensors: theta (B, C', N), phi
    (B, C', M), g (B, C'_g, M); returns y as (B, C'_g, N). ``dense_concatenation``: see
    :func:`concatenation_channels`."""
    return run_kernel_channels(pairwise_function(mode), theta, phi, g, w_concat, scale,
                               dense_concatenation)


def run_kernel_channels(f: PairwiseFunction, theta: Tensor, phi: Tensor, g: Tensor,
                        w_concat: Tensor | None = None, scale: float = 1.0,
                        dense_concatenation: bool = False) -> Tensor:
    """:func:`nonlocal_op_channels` for a row of the table already checked: the channel-first
    form of the kernel the row names."""
    extra = ({"w_concat": w_concat, "dense": dense_concatenation} if f.form == "concat"
             else {"scale": scale})
    return globals()[f.kernel + "_channels"](theta, phi, g, **extra)
