"""The non-local block, z = W(y) + x with y_i = (1/C(x)) sum_j f(x_i, x_j) g(x_j).

The module owns the learned parts (theta, phi, g, W, the concatenation weight) and the pooling,
checks its arguments and its input, and hands the pairwise step to :mod:`nlcourse.pairwise`
(or, when the map is requested, to that module's map-building form). :mod:`nlcourse.reference`
computes the same thing literally; the tests hold the two equal in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import pairwise
from ._modes import check_mode

__all__ = ["NonLocalBlock", "NonLocalBlock1d", "NonLocalBlock2d", "NonLocalBlock3d"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
# Max-pool sub-sampling of the keys: space only for video (time is short and precious).
_POOL_KERNEL = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_LAYOUT = {1: "(B, C, L)", 2: "(B, C, H, W)", 3: "(B, C, T, H, W)"}


def _positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{argument} must be at least 1, got {value}")
    return value


class NonLocalBlock(nn.Module):
    """A non-local block (Wang et al., CVPR 2018) for 1-D, 2-D or 3-D feature maps.

    Args:
        in_channels: C, the channels of the input x.
        inter_channels: C', the width of theta, phi and g; default ``max(in_channels // 2, 1)``.
        mode: the pairwise function f: ``"gaussian"``, ``"embedded_gaussian"``,
            ``"dot_product"`` or ``"concatenation"``.
        dimension: number of spatial dimensions, 1 (sequences), 2 (images) or 3 (video).
        sub_sample: max-pool the keys (phi and g; x itself in Gaussian mode) by 2 along each
            spatial axis (space only in 3-D), which divides the pairwise cost by 4 in 2-D.
            theta is never pooled, so the output keeps every input position.
        bn_layer: W is conv + BatchNorm (gamma = beta = 0 at initialisation) rather than a
            single conv (weight = bias = 0). Either way the block starts as the identity.
        use_scale: multiply theta . phi by inter_channels ** -0.5 before the softmax, as the
            official code does (embedded Gaussian only).

    ``block(x)`` returns z with ``z.shape == x.shape``; ``block(x, return_nl_map=True)`` returns
    ``(z, nl_map)`` where ``nl_map[b, i, j] = f(x_i, x_j) / C(x)`` over the N query and M key
    positions, both flattened in row-major order.
    """

    def __init__(self, in_channels: int, inter_channels: int | None = None,
                 mode: str = "embedded_gaussian", dimension: int = 2, sub_sample: bool = True,
                 bn_layer: bool = True, use_scale: bool = False):
        super().__init__()
        self.mode = check_mode(mode)
        if isinstance(dimension, bool) or dimension not in (1, 2, 3):
            raise ValueError(f"dimension must be 1, 2 or 3 (spatial dimensions of the input), "
                             f"got {dimension!r}")
        self.in_channels = _positive_int(in_channels, "in_channels")
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        self.inter_channels = _positive_int(inter_channels, "inter_channels")
        if use_scale and mode != "embedded_gaussian":
            raise ValueError(f"use_scale=True applies only to mode='embedded_gaussian' (it scales "
                             f"theta . phi by inter_channels ** -0.5); got mode={mode!r}")
        self.dimension = dimension
        self.sub_sample = bool(sub_sample)
        self.bn_layer = bool(bn_layer)
        self.use_scale = bool(use_scale)
        self.scale = self.inter_channels ** -0.5 if use_scale else 1.0

        conv = _CONV[dimension]
        C, Cp = self.in_channels, self.inter_channels
        self.g = conv(C, Cp, kernel_size=1)
        if mode == "gaussian":
            self.theta = self.phi = None  # f acts on x itself
        else:
            self.theta = conv(C, Cp, kernel_size=1)
            self.phi = conv(C, Cp, kernel_size=1)
        if mode == "concatenation":
            # w in f = ReLU(w^T [theta_i; phi_j]); a 1x1 map applied to the (2C', N, M) pairs.
            self.concat_project = nn.Sequential(nn.Conv2d(2 * Cp, 1, kernel_size=1, bias=False),
                                                nn.ReLU())
        else:
            self.concat_project = None
        self.pool = _POOL[dimension](kernel_size=_POOL_KERNEL[dimension])

        if bn_layer:
            self.W = nn.Sequential(conv(Cp, C, kernel_size=1), _BN[dimension](C))
            nn.init.zeros_(self.W[1].weight)
            nn.init.zeros_(self.W[1].bias)
        else:
            self.W = conv(Cp, C, kernel_size=1)
            nn.init.zeros_(self.W.weight)
            nn.init.zeros_(self.W.bias)

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, dimension={self.dimension}, sub_sample={self.sub_sample}, "
                f"bn_layer={self.bn_layer}, use_scale={self.use_scale}")

    def _check_input(self, x) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape {_LAYOUT[self.dimension]}, "
                            f"got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if x.dim() != self.dimension + 2:
            raise ValueError(f"x must have {self.dimension + 2} dims {_LAYOUT[self.dimension]} "
                             f"for a block with dimension={self.dimension}, got shape "
                             f"{tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels (dim 1 of shape {tuple(x.shape)}) "
                             f"but the block was built with in_channels={self.in_channels}")
        if self.sub_sample:
            kernel = _POOL_KERNEL[self.dimension]
            spatial = tuple(x.shape[2:])
            if any(s < k for s, k in zip(spatial, kernel)):
                raise ValueError(f"x's spatial size {spatial} is too small to sub-sample with a "
                                 f"{'x'.join(map(str, kernel))} max-pool; each pooled dim needs "
                                 f"at least 2 positions (or build the block with sub_sample=False)")

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """theta (B, N, C'), phi (B, M, C') and g (B, M, C') in token layout, keys pooled."""
        pool = self.pool if self.sub_sample else (lambda t: t)
        if self.mode == "gaussian":
            theta, phi = x, pool(x)
        else:
            theta, phi = self.theta(x), pool(self.phi(x))
        g = pool(self.g(x))
        return tuple(t.flatten(2).transpose(1, 2) for t in (theta, phi, g))

    def project_channels(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`project` channel-first: theta (B, C', N), phi (B, C', M), g (B, C', M).

        The forward's fast path. theta, phi and g come out of one 1x1 convolution (their three
        weights stacked), and phi and g go through one pooling: one pass over x instead of three,
        one over the keys instead of two. The parameters stay three modules, so checkpoints and
        :meth:`project` are unchanged.
        """
        pool = self.pool if self.sub_sample else (lambda t: t)
        if self.mode == "gaussian":
            theta, phi, g = x, pool(x), pool(self.g(x))
        else:
            Cp = self.inter_channels
            convs = (self.theta, self.phi, self.g)
            weight = torch.cat([c.weight for c in convs])
            bias = torch.cat([c.bias for c in convs])
            theta, keys = _CONV_FN[self.dimension](x, weight, bias).split([Cp, 2 * Cp], dim=1)
            phi, g = pool(keys).split([Cp, Cp], dim=1)
        return theta.flatten(2), phi.flatten(2), g.flatten(2)

    def forward(self, x: Tensor, return_nl_map: bool = False):
        """z = W y + x, shaped like ``x``, ``(B, C, *spatial)``; with ``return_nl_map`` also the map
        f / C(x), (B, N queries, M keys), whose row i holds the weights of query i."""
        self._check_input(x)
        B, _, *spatial = x.shape
        w_concat = None
        if self.concat_project is not None:
            w_concat = self.concat_project[0].weight.reshape(-1)
        if not return_nl_map:
            y = pairwise.nonlocal_op_channels(self.mode, *self.project_channels(x),
                                              w_concat=w_concat, scale=self.scale)
            return self.W(y.reshape(B, self.inter_channels, *spatial)) + x
        theta, phi, g = self.project(x)
        y, nl_map = pairwise.nonlocal_op(self.mode, theta, phi, g, w_concat=w_concat,
                                         scale=self.scale, need_map=True)
        # contiguous: the transposed view would otherwise hand W (and so z and every later layer)
        # channels-last strides, and a fresh block would no longer be an exact no-op downstream.
        y = y.transpose(1, 2).reshape(B, self.inter_channels, *spatial).contiguous()
        return self.W(y) + x, nl_map


class _FixedDimension(NonLocalBlock):
    DIMENSION = 2

    def __init__(self, in_channels: int, inter_channels: int | None = None,
                 mode: str = "embedded_gaussian", sub_sample: bool = True, bn_layer: bool = True,
                 use_scale: bool = False, dimension: int | None = None):
        if dimension is not None and dimension != self.DIMENSION:
            raise ValueError(f"{type(self).__name__} has dimension={self.DIMENSION}; got "
                             f"dimension={dimension!r} (use NonLocalBlock(..., dimension=...))")
        super().__init__(in_channels, inter_channels, mode, self.DIMENSION, sub_sample, bn_layer,
                         use_scale)


class NonLocalBlock1d(_FixedDimension):
    """:class:`NonLocalBlock` for sequences (B, C, L)."""

    DIMENSION = 1


class NonLocalBlock2d(_FixedDimension):
    """:class:`NonLocalBlock` for images (B, C, H, W)."""

    DIMENSION = 2


class NonLocalBlock3d(_FixedDimension):
    """:class:`NonLocalBlock` for video (B, C, T, H, W); keys pooled in space only."""

    DIMENSION = 3
