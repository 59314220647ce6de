"""The non-local block, z = W(y) + x with y_i = (1/C(x)) sum_j f(x_i, x_j) g(x_j), and GCNet's
global-context block, its simplification with one map for every query.

The module owns the learned parts (theta, phi, g, W, the concatenation weight) and the pooling,
checks its arguments and its input, and hands the pairwise step to :mod:`nlcourse.pairwise`
(or, when the map is requested, to that module's map-building form). :mod:`nlcourse.reference`
computes the same thing literally; the tests hold the two equal in float64.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import pairwise
from ._modes import MODES, pairwise_function

__all__ = ["NonLocalBlock", "NonLocalBlock1d", "NonLocalBlock2d", "NonLocalBlock3d",
           "GlobalContextBlock"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
# Sub-sampling of the keys: 2 along each spatial axis, space only for video (time is short and
# precious); max-pooling as in the paper, or averaging.
_POOL_KERNEL = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}
_POOL = {"max": {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d},
         "avg": {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}}
# The same poolings as plain functions, for the forward's fast path (no module call around them).
_POOL_FN = {"max": {1: torch.max_pool1d, 2: torch.max_pool2d, 3: torch.max_pool3d},
            "avg": {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}}
_LAYOUT = {1: "(B, C, L)", 2: "(B, C, H, W)", 3: "(B, C, T, H, W)"}
#: From this many positions an image with sub-sampled keys takes the channels-last path on the CPU
#: (:meth:`NonLocalBlock.project_channels`).
CHANNELS_LAST_MIN_POSITIONS = 16 * 16
# The normalisations W can end with, by name (and the names mmcv's norm_cfg uses).
_NORMS = {"batch": "batch", "bn": "batch", "group": "group", "gn": "group",
          "syncbatch": "syncbatch", "syncbn": "syncbatch"}
_INITS = ("zero", "zero_w", "zero_norm", "normal")


def _positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{argument} must be at least 1, got {value}")
    return value


def _make_norm(norm, channels: int, dimension: int, groups: int) -> nn.Module | None:
    """The normalisation W ends with: a name of :data:`_NORMS`, a callable ``norm(channels)``
    returning a module, or None."""
    if norm is None:
        return None
    if callable(norm) and not isinstance(norm, str):
        module = norm(channels)
        if not isinstance(module, nn.Module):
            raise TypeError(f"norm: the callable must return an nn.Module for {channels} channels, "
                            f"got {type(module).__name__}")
        return module
    if not isinstance(norm, str) or norm.lower() not in _NORMS:
        raise ValueError(f"norm must be one of {', '.join(map(repr, sorted(set(_NORMS))))}, None, "
                         f"or a callable norm(channels) -> nn.Module; got {norm!r}")
    kind = _NORMS[norm.lower()]
    if kind == "batch":
        return _BN[dimension](channels)
    if kind == "syncbatch":   # synchronised over the processes under torchrun; plain BN alone
        return nn.SyncBatchNorm(channels)
    if channels % groups:
        raise ValueError(f"norm='group' splits in_channels={channels} into norm_groups={groups} "
                         f"groups, which must divide it; pass norm_groups=... (a divisor of "
                         f"{channels})")
    return nn.GroupNorm(groups, channels)


class NonLocalBlock(nn.Module):
    """A non-local block (Wang et al., CVPR 2018) for 1-D, 2-D or 3-D feature maps.

    The arguments after ``use_scale`` are keyword-only; every default is the paper's block.

    Args:
        in_channels: C, the channels of the input x.
        inter_channels: C', the width of theta, phi and g; default ``max(in_channels //
            reduction, 1)``.
        mode: the pairwise function f: ``"gaussian"``, ``"embedded_gaussian"``,
            ``"dot_product"`` or ``"concatenation"``.
        dimension: number of spatial dimensions, 1 (sequences), 2 (images) or 3 (video).
        sub_sample: pool the keys (phi and g; x itself in Gaussian mode) by 2 along each spatial
            axis (space only in 3-D), which divides the pairwise cost by 4 in 2-D. theta is never
            pooled, so the output keeps every input position.
        bn_layer: the older switch for ``norm``: True is ``norm="batch"``, False ``norm=None``.
        use_scale: multiply theta . phi by inter_channels ** -0.5, as the official code does for
            the embedded Gaussian (before the softmax) and as a dot product may (before dividing
            by M).
        norm: what W_z ends with after its 1x1 convolution: ``"batch"`` (BatchNorm, the paper's),
            ``"group"`` (GroupNorm with ``norm_groups`` groups), ``"syncbatch"`` (SyncBatchNorm,
            statistics over every process under torchrun), None (the convolution alone), or a
            callable ``norm(channels)`` returning a module. mmcv's names ``"bn"``, ``"gn"`` and
            ``"syncbn"`` are accepted too.
        norm_groups: the groups of ``norm="group"`` (32 by default, as mmcv's configs use).
        reduction: C' = C // reduction when ``inter_channels`` is not given (2 by default).
        init: what starts at zero so that the block starts as the identity: ``"zero"`` (the
            norm's scale and shift if there is a norm, else W_z's convolution), ``"zero_norm"``
            (the norm's scale and shift), ``"zero_w"`` (W_z's convolution, weight and bias), or
            ``"normal"`` (nothing: W_z's last layer is drawn with ``init_std``, 0.01 by default,
            like mmcv's ``zeros_init=False``; the block does not start as the identity).
        init_std: draw theta, phi and g (their weights; biases zero) from N(0, init_std), as the
            official code does with 0.01; None keeps PyTorch's default initialisation.
        pool: the sub-sampling, ``"max"`` (the paper's) or ``"avg"``.
        concat_path: how the concatenation mode's map-free forward sums over the keys:
            ``"sorted"`` (sorted suffix sums, O((N + M) log M), the default) or ``"dense"``
            (the N x M matrix ReLU(a_i + b_j); no sort, so it exports to ONNX).

    ``block(x)`` returns z with ``z.shape == x.shape``; ``block(x, return_nl_map=True)`` returns
    ``(z, nl_map)`` where ``nl_map[b, i, j] = f(x_i, x_j) / C(x)`` over the N query and M key
    positions, both flattened in row-major order.

    Non-finite input is not checked (a check would make the device wait on every call), and it
    does not stay local: every query sums over every key, so in every mode one NaN in x makes
    the output NaN at nearly every position of its example, and one infinite value makes some or
    most of them non-finite (the concatenation's ReLU cuts off part of it); in eval mode the
    other examples of the batch are untouched
    (``tests/test_blocks.py`` holds it). :func:`nlcourse.train.fit` stops a run whose loss
    becomes non-finite, naming the epoch.
    """

    def __init__(self, in_channels: int, inter_channels: int | None = None,
                 mode: str = "embedded_gaussian", dimension: int = 2, sub_sample: bool = True,
                 bn_layer: bool | None = None, use_scale: bool = False, *, norm="batch",
                 norm_groups: int = 32, reduction: int = 2, init: str = "zero",
                 init_std: float | None = None, pool: str = "max",
                 concat_path: str = "sorted"):
        super().__init__()
        # The mode is checked here, once: the forward passes use the table's row.
        self.f = pairwise_function(mode)
        self.mode = self.f.name
        if isinstance(dimension, bool) or dimension not in (1, 2, 3):
            raise ValueError(f"dimension must be 1, 2 or 3 (spatial dimensions of the input), "
                             f"got {dimension!r}")
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.reduction = _positive_int(reduction, "reduction")
        if inter_channels is None:
            inter_channels = max(in_channels // reduction, 1)
        elif reduction != 2:
            raise ValueError(f"give inter_channels or reduction, not both (inter_channels="
                             f"{inter_channels!r}, reduction={reduction!r})")
        self.inter_channels = _positive_int(inter_channels, "inter_channels")
        if use_scale and not self.f.scalable:
            scalable = " or ".join(repr(m) for m in MODES if pairwise_function(m).scalable)
            raise ValueError(f"use_scale=True applies only to mode={scalable} (it scales theta . "
                             f"phi by inter_channels ** -0.5); got mode={mode!r}")
        if bn_layer is not None:   # the older switch: it must agree with norm if both are given
            if bn_layer is False and norm == "batch":
                norm = None
            elif bool(bn_layer) != (norm is not None):
                raise ValueError(f"bn_layer={bn_layer!r} contradicts norm={norm!r}; give norm "
                                 f"alone (bn_layer=True is norm='batch', False is norm=None)")
        if init not in _INITS:
            raise ValueError(f"init must be one of {', '.join(map(repr, _INITS))}; got {init!r}")
        if init == "zero_norm" and norm is None:
            raise ValueError("init='zero_norm' zeroes the norm's scale and shift, but norm=None: "
                             "use init='zero_w' (or 'zero') for a W without a norm")
        if init_std is not None and (isinstance(init_std, bool) or
                                     not isinstance(init_std, (int, float)) or init_std <= 0):
            raise ValueError(f"init_std must be a positive number (the official code uses 0.01) "
                             f"or None; got {init_std!r}")
        if pool not in _POOL:
            raise ValueError(f"pool must be 'max' (the paper's) or 'avg'; got {pool!r}")
        if concat_path not in ("sorted", "dense"):
            raise ValueError(f"concat_path must be 'sorted' (suffix sums) or 'dense' (the N x M "
                             f"matrix, exportable to ONNX); got {concat_path!r}")
        self.concat_path = concat_path
        self.dimension = dimension
        self.sub_sample = bool(sub_sample)
        self.use_scale = bool(use_scale)
        self.scale = self.inter_channels ** -0.5 if use_scale else 1.0
        self.init, self.init_std, self.pool_type = init, init_std, pool

        conv = _CONV[dimension]
        C, Cp = self.in_channels, self.inter_channels
        self.g = conv(C, Cp, kernel_size=1)
        if self.f.embedded:
            self.theta = conv(C, Cp, kernel_size=1)
            self.phi = conv(C, Cp, kernel_size=1)
        else:
            self.theta = self.phi = None  # f acts on x itself
        if self.f.form == "concat":
            # w in f = ReLU(w^T [theta_i; phi_j]); a 1x1 map applied to the (2C', N, M) pairs.
            self.concat_project = nn.Sequential(nn.Conv2d(2 * Cp, 1, kernel_size=1, bias=False),
                                                nn.ReLU())
        else:
            self.concat_project = None
        self.pool = _POOL[pool][dimension](kernel_size=_POOL_KERNEL[dimension])

        norm_module = _make_norm(norm, C, dimension, _positive_int(norm_groups, "norm_groups"))
        self.norm = norm if norm is None or isinstance(norm, str) else getattr(
            norm, "__name__", type(norm).__name__)
        self.bn_layer = isinstance(norm_module, nn.modules.batchnorm._BatchNorm)
        self.W = conv(Cp, C, kernel_size=1) if norm_module is None else nn.Sequential(
            conv(Cp, C, kernel_size=1), norm_module)
        self._initialise(norm_module)

    def _initialise(self, norm_module) -> None:
        if self.init_std is not None:
            for c in (self.theta, self.phi, self.g):
                if c is not None:
                    nn.init.normal_(c.weight, 0.0, self.init_std)
                    nn.init.zeros_(c.bias)
        w_conv = self.W if norm_module is None else self.W[0]
        zero = self.init if self.init != "zero" else ("zero_w" if norm_module is None
                                                       else "zero_norm")
        if zero == "zero_w":
            nn.init.zeros_(w_conv.weight)
            nn.init.zeros_(w_conv.bias)
        elif zero == "zero_norm":
            for name in ("weight", "bias"):
                if getattr(norm_module, name, None) is None:
                    raise ValueError(f"init={self.init!r} zeroes the norm's scale and shift, "
                                     f"but {type(norm_module).__name__} has no learnable {name}; "
                                     f"use init='zero_w'")
                nn.init.zeros_(getattr(norm_module, name))
        else:   # "normal": the last layer drawn small, nothing zeroed
            last = w_conv if norm_module is None else norm_module
            nn.init.normal_(last.weight, 0.0, self.init_std or 0.01)
            nn.init.zeros_(last.bias)

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, dimension={self.dimension}, sub_sample={self.sub_sample}, "
                f"norm={self.norm!r}, use_scale={self.use_scale}, init={self.init!r}, "
                f"pool={self.pool_type!r}")

    def check_input(self, x) -> None:
        """Raise one line naming what ``x`` should be, if the block cannot take it (forward and
        the paths in :mod:`nlcourse.efficient` both ask)."""
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
            if any(map(operator.lt, spatial, kernel)):
                raise ValueError(f"x's spatial size {spatial} is too small to sub-sample with a "
                                 f"{'x'.join(map(str, kernel))} {self.pool_type}-pool; each pooled "
                                 f"dim needs at least 2 positions (or build the block with "
                                 f"sub_sample=False)")

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """theta (B, N, C'), phi (B, M, C') and g (B, M, C') in token layout, keys pooled."""
        pool = self.pool if self.sub_sample else (lambda t: t)
        if self.f.embedded:
            theta, phi = self.theta(x), pool(self.phi(x))
        else:
            theta, phi = x, pool(x)
        g = pool(self.g(x))
        return tuple(t.flatten(2).transpose(1, 2) for t in (theta, phi, g))

    def project_channels(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`project` channel-first: theta (B, C', N), phi (B, C', M), g (B, C', M).

        The forward's fast path, in one of two layouts. An image of at least
        ``CHANNELS_LAST_MIN_POSITIONS`` positions whose keys are sub-sampled, on the CPU, is
        copied once into the channels-last layout, and theta, phi and g are three 1x1
        convolutions of that copy: PyTorch's CPU convolutions and poolings run their fast kernels
        on it (its max-pool four times faster than on the channels-first layout), their outputs
        stay channels-last, and so each tensor's channels are contiguous, the layout in which the
        products that follow read them. Measured on the course's CPU, one thread, the whole block
        forward and backward: 5 to 7% faster than the stacked convolution below at 16 x 16, 3 to
        4% at 32 x 32 and 64 x 64; without sub-sampling, or at 8 x 8, it gained nothing, and on a
        map that small the copy of x costs more memory than the block saves.

        Elsewhere (smaller maps, all keys, sequences, video, a GPU), theta, phi and g come out of
        one convolution, their three weights stacked, and phi and g go through one pooling: one
        pass over x instead of three, one over the keys instead of two. Either way the parameters
        stay three modules, so checkpoints and :meth:`project` are unchanged.
        """
        pool = self._pool_keys if self.sub_sample else (lambda t: t)
        conv = _CONV_FN[self.dimension]
        if self.sub_sample and self.dimension == 2 and x.device.type == "cpu" and \
                x.shape[2] * x.shape[3] >= CHANNELS_LAST_MIN_POSITIONS:
            x = x.contiguous(memory_format=torch.channels_last)
            g = pool(conv(x, self.g.weight, self.g.bias))
            if not self.f.embedded:
                return x.flatten(2), pool(x).flatten(2), g.flatten(2)
            theta = conv(x, self.theta.weight, self.theta.bias)
            phi = pool(conv(x, self.phi.weight, self.phi.bias))
            return theta.flatten(2), phi.flatten(2), g.flatten(2)
        if not self.f.embedded:
            theta, phi, g = x, pool(x), pool(conv(x, self.g.weight, self.g.bias))
        else:
            Cp = self.inter_channels
            convs = (self.theta, self.phi, self.g)
            weight = torch.cat([c.weight for c in convs])
            bias = torch.cat([c.bias for c in convs])
            theta, keys = conv(x, weight, bias).split([Cp, 2 * Cp], dim=1)
            phi, g = pool(keys).split([Cp, Cp], dim=1)
        return theta.flatten(2), phi.flatten(2), g.flatten(2)

    def _pool_keys(self, t: Tensor) -> Tensor:
        """``self.pool``, called as a function in the fast path."""
        return _POOL_FN[self.pool_type][self.dimension](t, _POOL_KERNEL[self.dimension])

    def forward(self, x: Tensor, return_nl_map: bool = False):
        """z = W y + x, shaped like ``x``, ``(B, C, *spatial)``; with ``return_nl_map`` also the map
        f / C(x), (B, N queries, M keys), whose row i holds the weights of query i."""
        self.check_input(x)
        B, _, *spatial = x.shape
        w_concat = None
        if self.concat_project is not None:
            w_concat = self.concat_project[0].weight.reshape(-1)
        if not return_nl_map:
            y = pairwise.run_kernel_channels(self.f, *self.project_channels(x),
                                             w_concat=w_concat, scale=self.scale,
                                             dense_concatenation=self.concat_path == "dense")
            return x + self.W(y.reshape(B, self.inter_channels, *spatial))
        theta, phi, g = self.project(x)
        y, nl_map = pairwise.run_kernel(self.f, theta, phi, g, w_concat=w_concat,
                                        scale=self.scale, need_map=True)
        # contiguous: the transposed view would otherwise hand W (and so z and every later layer)
        # channels-last strides, and a fresh block would no longer be an exact no-op downstream.
        y = y.transpose(1, 2).reshape(B, self.inter_channels, *spatial).contiguous()
        return self.W(y) + x, nl_map


class _FixedDimension(NonLocalBlock):
    DIMENSION = 2

    def __init__(self, in_channels: int, inter_channels: int | None = None,
                 mode: str = "embedded_gaussian", sub_sample: bool = True,
                 bn_layer: bool | None = None, use_scale: bool = False,
                 dimension: int | None = None, **options):
        if dimension is not None and dimension != self.DIMENSION:
            raise ValueError(f"{type(self).__name__} has dimension={self.DIMENSION}; got "
                             f"dimension={dimension!r} (use NonLocalBlock(..., dimension=...))")
        super().__init__(in_channels, inter_channels, mode, self.DIMENSION, sub_sample, bn_layer,
                         use_scale, **options)


class NonLocalBlock1d(_FixedDimension):
    """:class:`NonLocalBlock` for sequences (B, C, L)."""

    DIMENSION = 1


class NonLocalBlock2d(_FixedDimension):
    """:class:`NonLocalBlock` for images (B, C, H, W)."""

    DIMENSION = 2


class NonLocalBlock3d(_FixedDimension):
    """:class:`NonLocalBlock` for video (B, C, T, H, W); keys pooled in space only."""

    DIMENSION = 3


class GlobalContextBlock(nn.Module):
    """GCNet's global-context block (Cao et al., 2019): one map for every query.

    The map is computed from the keys alone, alpha_j = softmax_j(w_k . x_j) over the positions;
    the context c = sum_j alpha_j x_j is one vector per example, and the block adds T(c) at every
    position, z_i = x_i + T(c). T is GCNet's bottleneck, a 1x1 convolution to C / ``ratio``
    channels, LayerNorm, ReLU and a 1x1 convolution back to C, whose last convolution starts at
    zero so that the block starts as the identity (as GCNet's code does); or ``transform``, any
    module that maps a (B, C, 1, ...) context to (B, C, 1, ...).

    It is a non-local block whose map has N identical rows (the chapter "From non-local blocks
    to Transformers" derives it): ``block(x, return_nl_map=True)`` returns ``(z, nl_map)`` with
    ``nl_map`` (B, N, N), the row alpha repeated for every query (an expanded view, no copy), so
    that its row similarity (:func:`nlcourse.mapstats.row_similarity`) is 1. Its work is O(N C)
    against the non-local block's O(N M C').
    """

    def __init__(self, in_channels: int, ratio: int = 4, transform: nn.Module | None = None,
                 dimension: int = 2):
        super().__init__()
        if isinstance(dimension, bool) or dimension not in (1, 2, 3):
            raise ValueError(f"dimension must be 1, 2 or 3 (spatial dimensions of the input), "
                             f"got {dimension!r}")
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.dimension = dimension
        self.key = _CONV[dimension](in_channels, 1, kernel_size=1)      # w_k
        if transform is None:
            hidden = max(in_channels // _positive_int(ratio, "ratio"), 1)
            last = _CONV[dimension](hidden, in_channels, kernel_size=1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            transform = nn.Sequential(_CONV[dimension](in_channels, hidden, kernel_size=1),
                                      nn.LayerNorm([hidden] + [1] * dimension), nn.ReLU(),
                                      last)
        elif not isinstance(transform, nn.Module):
            raise TypeError(f"transform must be an nn.Module (or None for GCNet's bottleneck), "
                            f"got {type(transform).__name__}")
        self.transform = transform

    def check_input(self, x) -> None:
        """Raise one line naming what ``x`` should be, if the block cannot take it."""
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != self.dimension + 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a floating-point tensor shaped "
                             f"{_LAYOUT[self.dimension]}, got {shape}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels (dim 1 of shape {tuple(x.shape)}) "
                             f"but the block was built with in_channels={self.in_channels}")

    def shared_map(self, x: Tensor) -> Tensor:
        """alpha, (B, N): the weight of every position, the same for every query; sums to 1."""
        return torch.softmax(self.key(x).flatten(1), dim=-1)

    def forward(self, x: Tensor, return_nl_map: bool = False):
        """z = x + T(sum_j alpha_j x_j), shaped like ``x``; with ``return_nl_map`` also the map
        (B, N, N) whose every row is alpha."""
        self.check_input(x)
        alpha = self.shared_map(x)
        context = torch.einsum("bn,bcn->bc", alpha, x.flatten(2))
        z = x + self.transform(context.reshape(*context.shape, *[1] * self.dimension))
        if not return_nl_map:
            return z
        return z, alpha[:, None, :].expand(-1, alpha.shape[1], -1)
