"""Wrong implementations of the non-local block, kept here on purpose: some are in public code (the
pitfalls chapter links each to where), the others are mistakes constructed to teach, so that the pitfalls chapter can run each against the reference and the exercise checks can
recognise them in a learner's answer. The blocks and networks never call these; the exercise checks
do.

Kernels use the token layout of :mod:`nlcourse.reference` (queries (B, N, C'), keys (B, M, C'))
and return ``(y, attention)`` like ``reference.nonlocal_op``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "softmax_over_queries", "embedded_gaussian_unnormalised", "dot_product_divided_by_n",
    "concatenation_without_relu", "transposed_map", "tokens_by_view", "block_phi_not_pooled",
    "block_theta_pooled_upsampled", "init_conv_zero_bn_one", "concatenation_python_loop",
    "scale_divided", "heatmap_uint8",
]


def softmax_over_queries(theta: Tensor, phi: Tensor, g: Tensor, scale: float = 1.0):
    """Softmax over dim 1 (the queries) instead of the keys: columns sum to 1, rows do not."""
    attention = torch.softmax(scale * theta @ phi.transpose(1, 2), dim=1)
    return attention @ g, attention


def embedded_gaussian_unnormalised(theta: Tensor, phi: Tensor, g: Tensor, scale: float = 1.0):
    """f without C(x): exp(theta . phi) used as weights, so outputs scale with the input."""
    attention = torch.exp(scale * theta @ phi.transpose(1, 2))
    return attention @ g, attention


def dot_product_divided_by_n(theta: Tensor, phi: Tensor, g: Tensor):
    """C(x) = N, the number of queries, where the keys were sub-sampled to M."""
    attention = theta @ phi.transpose(1, 2) / theta.shape[1]
    return attention @ g, attention


def concatenation_without_relu(theta: Tensor, phi: Tensor, g: Tensor, w_concat: Tensor):
    """w^T [theta_i; phi_j] / M with the ReLU forgotten: negative weights survive."""
    Cp = theta.shape[-1]
    scores = (theta @ w_concat[:Cp]).unsqueeze(2) + (phi @ w_concat[Cp:]).unsqueeze(1)
    attention = scores / phi.shape[1]
    return attention @ g, attention


def transposed_map(theta: Tensor, phi: Tensor, g: Tensor, scale: float = 1.0):
    """The map returned as (B, M, N): keys along the rows. y is right, the map is not."""
    attention = torch.softmax(scale * theta @ phi.transpose(1, 2), dim=-1)
    return attention @ g, attention.transpose(1, 2)


def tokens_by_view(t: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, N, C) by ``.view`` instead of flatten + transpose: each "token" is then a
    run of C consecutive values of one channel's plane, not the C channels of one position."""
    B, C = t.shape[:2]
    return t.reshape(B, -1, C)


def block_phi_not_pooled(block, x: Tensor) -> Tensor:
    """g pooled but phi not: M keys for the weights, M/4 values. Fails with a shape error."""
    theta = block.theta(x).flatten(2).transpose(1, 2)
    phi = block.phi(x).flatten(2).transpose(1, 2)             # N keys
    g = block.pool(block.g(x)).flatten(2).transpose(1, 2)      # N/4 values
    attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
    return attention @ g                                       # (B, N, N) @ (B, N/4, C')


def block_theta_pooled_upsampled(block, x: Tensor) -> Tensor:
    """theta pooled too, y computed on the coarse grid and upsampled: it runs, but each 2x2 patch of
    queries shares one weighting, so y is constant on 2x2 blocks: a different operation."""
    B, _, H, W = x.shape
    theta = block.pool(block.theta(x)).flatten(2).transpose(1, 2)
    phi = block.pool(block.phi(x)).flatten(2).transpose(1, 2)
    g = block.pool(block.g(x)).flatten(2).transpose(1, 2)
    y = torch.softmax(block.scale * theta @ phi.transpose(1, 2), dim=-1) @ g
    y = y.transpose(1, 2).reshape(B, block.inter_channels, H // 2, W // 2)
    y = F.interpolate(y, size=(H, W), mode="nearest")
    return block.W(y) + x


def init_conv_zero_bn_one(block) -> None:
    """Zero W's conv but leave BN's gamma at 1: the identity holds at step 0 only, because the
    gradient reaching the conv is no longer zero and BN then rescales whatever it learns."""
    with torch.no_grad():
        block.W[0].weight.zero_()
        block.W[0].bias.zero_()
        block.W[1].weight.fill_(1.0)
        block.W[1].bias.zero_()


def concatenation_python_loop(theta: Tensor, phi: Tensor, g: Tensor, w_concat: Tensor):
    """The concatenation written as a Python loop over every (i, j): right, and slow."""
    B, N, Cp = theta.shape
    M = phi.shape[1]
    attention = torch.zeros(B, N, M, dtype=theta.dtype)
    for b in range(B):
        for i in range(N):
            for j in range(M):
                attention[b, i, j] = torch.relu(torch.cat([theta[b, i], phi[b, j]]) @ w_concat)
    attention = attention / M
    return attention @ g, attention


def scale_divided(theta: Tensor, phi: Tensor, g: Tensor):
    """Dividing by d^-1/2 instead of multiplying: scores grow by sqrt(d) and the softmax saturates."""
    d = theta.shape[-1]
    attention = torch.softmax(theta @ phi.transpose(1, 2) / d ** -0.5, dim=-1)
    return attention @ g, attention


def heatmap_uint8(attention_map) -> np.ndarray:
    """Cast to 8 bits with ``(map * 255).astype(uint8)``: values outside [0, 1] (a dot-product map can
    be negative) wrap around, so -0.02 becomes 251, the brightest colour, instead of 0."""
    values = np.asarray(attention_map, dtype=np.float64) * 255
    return values.astype(np.int64).astype(np.uint8)  # C-style wrap-around, as uint8 casts do
