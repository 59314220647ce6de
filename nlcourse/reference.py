"""The non-local operation written literally, for reading and as the tests' ground truth.

Every function here follows the paper's notation (Wang et al., CVPR 2018, eq. 1-6) one line per
symbol: build the full pairwise matrix f, divide by the normaliser C(x), multiply by g. Nothing is
fused, reordered or decomposed; that is the job of :mod:`nlcourse.pairwise`, which the tests hold
equal to this module in float64. Derivations: the book's chapters on each pairwise function.

Tensors are in "token" layout: ``(B, N, C)`` for the N query positions and ``(B, M, C)`` for the
M key positions, positions flattened in row-major order (``x.flatten(2).transpose(1, 2)``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._modes import pairwise_function

__all__ = [
    "pairwise_f",
    "normaliser",
    "nonlocal_op",
    "block_forward",
]


def pairwise_f(mode: str, theta: Tensor, phi: Tensor, w_concat: Tensor | None = None,
               scale: float = 1.0) -> Tensor:
    """f(x_i, x_j) for every query i and key j: a ``(B, N, M)`` tensor.

    ``theta`` holds the queries (B, N, C'), ``phi`` the keys (B, M, C'). In ``gaussian`` mode they
    are the raw input itself. ``w_concat`` is the concatenation mode's weight vector of length
    2C' (theta's half first). ``scale`` multiplies theta . phi (the official code's d^-1/2) in the
    embedded Gaussian and dot-product modes.
    """
    form = pairwise_function(mode).form
    if form == "exp":
        # f = exp(theta_i . phi_j); the exponential is taken literally, without the max-shift a
        # softmax kernel uses, so this is meant for moderate inputs (it is a reference, not a kernel).
        return torch.exp(scale * theta @ phi.transpose(1, 2))
    if form == "dot":
        # f = theta_i . phi_j (times the scale, if any), which can be negative.
        return scale * theta @ phi.transpose(1, 2)
    # concatenation
    if w_concat is None:
        raise ValueError("w_concat is required in concatenation mode: the vector w of "
                         "f = ReLU(w^T [theta_i; phi_j]), length 2 * inter_channels")
    B, N, Cp = theta.shape
    M = phi.shape[1]
    # The concatenation [theta_i; phi_j] for every pair (i, j): a (B, N, M, 2C') tensor.
    pairs = torch.cat(
        [theta.unsqueeze(2).expand(B, N, M, Cp), phi.unsqueeze(1).expand(B, N, M, Cp)], dim=-1
    )
    return torch.relu(pairs @ w_concat)


def normaliser(mode: str, f: Tensor) -> Tensor:
    """C(x) for each query, shaped ``(B, N, 1)`` so that ``f / C`` broadcasts.

    Gaussian modes: C(x) = sum_j f(x_i, x_j), which makes f / C a softmax over the keys j.
    Dot product and concatenation: C(x) = M, the number of key positions (f can be zero or
    negative, so a sum could vanish or change sign).
    """
    if pairwise_function(mode).softmax:
        return f.sum(dim=-1, keepdim=True)
    B, N, M = f.shape
    return torch.full((B, N, 1), float(M), dtype=f.dtype, device=f.device)


def nonlocal_op(mode: str, theta: Tensor, phi: Tensor, g: Tensor, w_concat: Tensor | None = None,
                scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """y_i = (1 / C(x)) sum_j f(x_i, x_j) g(x_j). Returns ``(y, attention)``.

    ``y`` is (B, N, C'_g); ``attention`` is f / C(x), the (B, N, M) matrix whose row i weights
    the keys for query i.
    """
    f = pairwise_f(mode, theta, phi, w_concat=w_concat, scale=scale)
    attention = f / normaliser(mode, f)
    y = attention @ g
    return y, attention


def _tokens(t: Tensor) -> Tensor:
    """(B, C, *spatial) -> (B, positions, C), positions in row-major order."""
    return t.flatten(2).transpose(1, 2)


def block_forward(block, x: Tensor) -> tuple[Tensor, Tensor]:
    """A :class:`nlcourse.NonLocalBlock`'s output computed with the literal formulas.

    Uses the block's own parameters (theta, phi, g, W, the concatenation weight and the pooling),
    so ``block_forward(block, x)`` and ``block(x, return_nl_map=True)`` must agree. Returns
    ``(z, nl_map)`` with z = W(y) + x.
    """
    B, C, *spatial = x.shape
    pool = block.pool if block.sub_sample else (lambda t: t)
    f = pairwise_function(block.mode)
    if f.embedded:
        theta, phi = _tokens(block.theta(x)), _tokens(pool(block.phi(x)))
    else:  # the Gaussian compares x itself
        theta, phi = _tokens(x), _tokens(pool(x))
    g = _tokens(pool(block.g(x)))
    w_concat = None
    if f.form == "concat":
        w_concat = block.concat_project[0].weight.reshape(-1)
    y, attention = nonlocal_op(block.mode, theta, phi, g, w_concat=w_concat, scale=block.scale)
    y = y.transpose(1, 2).reshape(B, block.inter_channels, *spatial)
    return block.W(y) + x, attention
