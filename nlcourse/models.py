"""The networks the labs train.

:class:`MNISTNet` is the small network of the widely used public PyTorch implementation of
non-local blocks, kept layer for layer so that the course's numbers can be compared with what its
users report: 390,858 parameters without blocks, 401,530 with two embedded-Gaussian blocks.
:class:`LongRangeNet` is the dense-prediction network of the long-range lab; :class:`VideoNet`
and :class:`SpaceTimeNonLocal` are the video network of the space-time lab.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._modes import NO_BLOCK, check_mode
from .blocks import GlobalContextBlock, NonLocalBlock1d, NonLocalBlock2d, NonLocalBlock3d

__all__ = ["MNISTNet", "LongRangeNet", "CANVAS_DILATIONS", "receptive_field", "SPACETIME_VARIANTS",
           "SpaceTimeNonLocal", "VideoNet"]


def _through(block, h: Tensor, return_nl_maps: bool, maps: list) -> Tensor:
    """``block(h)`` (``h`` itself when there is no block), appending its map to ``maps`` when
    asked: the step every network here takes at each of its blocks."""
    if block is None:
        return h
    if not return_nl_maps:
        return block(h)
    h, nl_map = block(h, return_nl_map=True)
    maps.append(nl_map)
    return h


def _conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class MNISTNet(nn.Module):
    """Three conv stages with a non-local block after the first two, then two FC layers.

    28x28 -> conv(1->32) -> 14x14 -> block(32) -> conv(32->64) -> 7x7 -> block(64)
    -> conv(64->128) -> 3x3 -> FC 1152->256 -> ReLU -> dropout 0.5 -> FC 256->10.

    With sub-sampling, block 1 relates 196 query positions to 49 keys and block 2 49 to 9.

    Args:
        mode: the blocks' pairwise function, or ``None`` (or ``"none"``) for the baseline without
            blocks.
        **block_kwargs: passed to both :class:`~nlcourse.NonLocalBlock2d` (``sub_sample``,
            ``bn_layer``, ``use_scale``, ``inter_channels`` ...).
    """

    def __init__(self, mode: str | None = "embedded_gaussian", **block_kwargs):
        super().__init__()
        self.mode = check_mode(mode, allow_none=True)
        self.stage1 = _conv_stage(1, 32)
        self.stage2 = _conv_stage(32, 64)
        self.stage3 = _conv_stage(64, 128)
        if self.mode is None:
            self.blocks = nn.ModuleList()
        else:
            self.blocks = nn.ModuleList([NonLocalBlock2d(32, mode=self.mode, **block_kwargs),
                                         NonLocalBlock2d(64, mode=self.mode, **block_kwargs)])
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 3 * 3, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(256, 10),
        )

    def forward(self, x: Tensor, return_nl_maps: bool = False):
        """Logits (B, 10); with ``return_nl_maps`` also the list of the blocks' (B, N, M) maps."""
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a batch of MNIST images shaped (B, 1, 28, 28), got {shape}")
        maps = []
        h = self.stage1(x)
        for i, stage in enumerate((self.stage2, self.stage3)):
            h = _through(self.blocks[i] if self.blocks else None, h, return_nl_maps, maps)
            h = stage(h)
        logits = self.classifier(h)
        return (logits, maps) if return_nl_maps else logits


#: The dilations that make :class:`LongRangeNet` without a block a convolutional network whose
#: receptive field covers its 64 x 64 canvas from every cell: 130 pixels, against 18 without them
#: (:func:`receptive_field`); every offset of up to 15 output cells is a sum of the dilated steps.
CANVAS_DILATIONS = (2, 4, 8)


class LongRangeNet(nn.Module):
    """A fully convolutional network for dense prediction, with an optional non-local block.

    64x64 -> conv(1->32) -> pool -> conv(32->64) -> pool -> conv(64->64) -> [block] -> 1x1 conv
    to 10 classes: logits on a 16x16 grid. There is no global pooling and no fully connected layer
    over space, so without the block each output cell sees only its receptive field of the input
    (:func:`receptive_field`); with it, every cell can gather from every other.

    Args:
        mode: the block's pairwise function, or ``None`` (or ``"none"``) for no non-local block.
        width: the channels of the last two convolutions (and of the block).
        dilations: one more 3x3 convolution (with BatchNorm and ReLU) per entry, dilated by it,
            after the third: the convolutional network whose receptive field covers the canvas
            ((2, 4, 8) takes it from 18 to 130 pixels), with no block.
        global_context: a :class:`~nlcourse.blocks.GlobalContextBlock` (GCNet's: one map for
            every query) in the block's place; ``mode`` must then be None.
        **block_kwargs: passed to the :class:`~nlcourse.NonLocalBlock2d`.
    """

    def __init__(self, mode: str | None = "embedded_gaussian", width: int = 64, *,
                 dilations: tuple[int, ...] = (), global_context: bool = False, **block_kwargs):
        super().__init__()
        self.mode = check_mode(mode, allow_none=True)
        if global_context and self.mode is not None:
            raise ValueError(f"global_context=True puts GCNet's block in the non-local block's "
                             f"place: give mode=None with it, not mode={mode!r}")
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
            raise ValueError(f"dilations must be whole numbers of at least 1, got {dilations!r}")
        dilated = []
        for d in dilations:
            dilated += [nn.Conv2d(width, width, 3, padding=d, dilation=d), nn.BatchNorm2d(width),
                        nn.ReLU(inplace=True)]
        self.dilations = tuple(dilations)
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            *dilated,
        )
        if global_context:
            self.block = GlobalContextBlock(width)
        else:
            self.block = (None if self.mode is None
                          else NonLocalBlock2d(width, mode=self.mode, **block_kwargs))
        self.head = nn.Conv2d(width, 10, kernel_size=1)

    def forward(self, x: Tensor, return_nl_maps: bool = False):
        """Logits (B, 10, 16, 16) for canvases (B, 1, 64, 64), one class score per output cell;
        with ``return_nl_maps`` also a list with the block's map: (B, 256, 64) for a non-local
        block, (B, 256, 256) for GCNet's, whose rows are all alike (empty without a block)."""
        h = self.features(x)
        maps = []
        h = _through(self.block, h, return_nl_maps, maps)
        logits = self.head(h)
        return (logits, maps) if return_nl_maps else logits


def receptive_field(layers, axis: int = 0) -> tuple[int, int]:
    """Receptive field size and stride (jump), in input positions along ``axis``, of a stack of
    convolutions and poolings (1-, 2- or 3-D), from their kernel sizes, strides and dilations (the
    standard recurrence r <- r + (k - 1) * d * j, j <- j * s). For video ``axis=0`` is time, in
    frames. Non-local blocks are skipped: theirs is the whole input."""
    def along(v):
        return v[axis] if isinstance(v, tuple) else v

    size, jump = 1, 1
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
    for layer in layers.modules() if isinstance(layers, nn.Module) else layers:
        if isinstance(layer, kinds):
            k, st, d = along(layer.kernel_size), along(layer.stride), along(layer.dilation)
            size += (k - 1) * d * jump
            jump *= st
    return size, jump


# The paper's Table 2d: where a block's attention may reach in a (T, H, W) feature map.
SPACETIME_VARIANTS = ("space", "time", "spacetime")


class SpaceTimeNonLocal(nn.Module):
    """A non-local block on video features (B, C, T, H, W), restricted as in the paper's Table 2d.

    - ``"space"``: each position attends to the positions of its own frame (a 2-D block applied
      to every frame; keys pooled 2x2 with ``sub_sample``).
    - ``"time"``: each position attends to the same position in every frame (a 1-D block along
      time; never sub-sampled, the clips are short).
    - ``"spacetime"``: each position attends to every position of every frame (a 3-D block; keys
      pooled 2x2 in space only).

    ``forward(x, return_nl_map=True)`` also returns the map, shaped by the variant: space
    (B, T, H*W, M), time (B, H*W, T, T), spacetime (B, T*H*W, M) with M the keys.
    """

    def __init__(self, channels: int, variant: str = "spacetime",
                 mode: str = "embedded_gaussian", **block_kwargs):
        super().__init__()
        if variant not in SPACETIME_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(map(repr, SPACETIME_VARIANTS))}; "
                             f"got {variant!r}")
        self.variant = variant
        if variant == "space":
            self.block = NonLocalBlock2d(channels, mode=mode, **block_kwargs)
        elif variant == "time":
            self.block = NonLocalBlock1d(channels, mode=mode,
                                         **{"sub_sample": False, **block_kwargs})
        else:
            self.block = NonLocalBlock3d(channels, mode=mode, **block_kwargs)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"

    def forward(self, x: Tensor, return_nl_map: bool = False):
        """z shaped like ``x`` (B, C, T, H, W); with ``return_nl_map`` also the map, shaped by the
        variant (see the class)."""
        if not isinstance(x, Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be video features shaped (B, C, T, H, W), got {shape}")
        B, C, T, H, W = x.shape
        if self.variant == "spacetime":
            return self.block(x, return_nl_map=return_nl_map)
        if self.variant == "space":      # frames become the batch
            z, nl_map = self.block(x.transpose(1, 2).reshape(B * T, C, H, W), return_nl_map=True)
            z = z.reshape(B, T, C, H, W).transpose(1, 2)
            nl_map = nl_map.reshape(B, T, *nl_map.shape[1:])
        else:                            # positions become the batch, time the sequence
            z, nl_map = self.block(x.permute(0, 3, 4, 1, 2).reshape(B * H * W, C, T),
                                   return_nl_map=True)
            z = z.reshape(B, H, W, C, T).permute(0, 3, 4, 1, 2)
            nl_map = nl_map.reshape(B, H * W, T, T)
        z = z.contiguous()
        return (z, nl_map) if return_nl_map else z


class VideoNet(nn.Module):
    """A small 3-D convolutional network for clips (B, 1, T, H, W) that answers from the LAST frame.

    conv (1x3x3, 1->c1) -> pool space -> conv (3x3x3, c1->c2) -> pool space -> [block]
    -> conv (3x3x3, c2->c3) -> the last frame's features, averaged over space -> linear to 10,
    with ``widths = (c1, c2, c3)``.

    Without a block the last frame's features see only the last three frames (the temporal
    receptive field, :func:`receptive_field` with ``axis=0``, is a centred window of 5 frames, cut
    by the end of the clip); the block decides how far, and where, each position may look.

    Args:
        variant: ``None`` or ``"none"`` (no block), ``"space"``, ``"time"`` or ``"spacetime"``.
        mode: the block's pairwise function.
        **block_kwargs: passed to the block (``sub_sample``, ``bn_layer``, ...).
    """

    def __init__(self, variant: str | None = "spacetime", mode: str = "embedded_gaussian",
                 widths: tuple[int, int, int] = (8, 24, 48), **block_kwargs):
        super().__init__()
        variant = None if variant == NO_BLOCK else variant
        if variant is not None and variant not in SPACETIME_VARIANTS:
            raise ValueError(f"variant must be None or {NO_BLOCK!r} (no block), or one of "
                             f"{', '.join(map(repr, SPACETIME_VARIANTS))}; got {variant!r}")
        self.variant = variant
        self.mode = check_mode(mode)
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            nn.Conv3d(1, c1, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(c1),
            nn.ReLU(inplace=True), nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(c1, c2, 3, padding=1), nn.BatchNorm3d(c2), nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 2, 2)),
        )
        self.block = (None if variant is None
                      else SpaceTimeNonLocal(c2, variant, mode=mode, **block_kwargs))
        self.last = nn.Sequential(nn.Conv3d(c2, c3, 3, padding=1), nn.BatchNorm3d(c3),
                                  nn.ReLU(inplace=True))
        self.head = nn.Linear(c3, 10)

    def forward(self, x: Tensor, return_nl_maps: bool = False):
        """Logits (B, 10); with ``return_nl_maps`` also a list with the block's map."""
        if not isinstance(x, Tensor) or x.dim() != 5 or x.shape[1] != 1:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a batch of one-channel clips shaped (B, 1, T, H, W), "
                             f"got {shape}")
        h = self.features(x)
        maps = []
        h = _through(self.block, h, return_nl_maps, maps)
        h = self.last(h)
        logits = self.head(h[:, :, -1].mean(dim=(2, 3)))
        return (logits, maps) if return_nl_maps else logits
