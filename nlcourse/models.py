"""The networks the labs train.

:class:`MNISTNet` is the small network of the widely used public PyTorch implementation of
non-local blocks, kept layer for layer so that the course's numbers can be compared with what its
users report: 390,858 parameters without blocks, 401,530 with two embedded-Gaussian blocks.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._modes import check_mode
from .blocks import NonLocalBlock2d

__all__ = ["MNISTNet", "LongRangeNet", "receptive_field"]


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
        mode: the blocks' pairwise function, or ``None`` for the baseline without blocks.
        **block_kwargs: passed to both :class:`~nlcourse.NonLocalBlock2d` (``sub_sample``,
            ``bn_layer``, ``use_scale``, ``inter_channels`` ...).
    """

    def __init__(self, mode: str | None = "embedded_gaussian", **block_kwargs):
        super().__init__()
        self.mode = check_mode(mode, allow_none=True)
        self.stage1 = _conv_stage(1, 32)
        self.stage2 = _conv_stage(32, 64)
        self.stage3 = _conv_stage(64, 128)
        if mode is None:
            self.blocks = nn.ModuleList()
        else:
            self.blocks = nn.ModuleList([NonLocalBlock2d(32, mode=mode, **block_kwargs),
                                         NonLocalBlock2d(64, mode=mode, **block_kwargs)])
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
            if self.blocks:
                if return_nl_maps:
                    h, nl_map = self.blocks[i](h, return_nl_map=True)
                    maps.append(nl_map)
                else:
                    h = self.blocks[i](h)
            h = stage(h)
        logits = self.classifier(h)
        return (logits, maps) if return_nl_maps else logits


class LongRangeNet(nn.Module):
    """A fully convolutional network for dense prediction, with an optional non-local block.

    64x64 -> conv(1->32) -> pool -> conv(32->64) -> pool -> conv(64->64) -> [block] -> 1x1 conv
    to 10 classes: logits on a 16x16 grid. There is no global pooling and no fully connected layer
    over space, so without the block each output cell sees only its receptive field of the input
    (:func:`receptive_field`); with it, every cell can gather from every other.
    """

    def __init__(self, mode: str | None = "embedded_gaussian", width: int = 64, **block_kwargs):
        super().__init__()
        self.mode = check_mode(mode, allow_none=True)
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        )
        self.block = None if mode is None else NonLocalBlock2d(width, mode=mode, **block_kwargs)
        self.head = nn.Conv2d(width, 10, kernel_size=1)

    def forward(self, x: Tensor, return_nl_maps: bool = False):
        h = self.features(x)
        maps = []
        if self.block is not None:
            if return_nl_maps:
                h, nl_map = self.block(h, return_nl_map=True)
                maps.append(nl_map)
            else:
                h = self.block(h)
        logits = self.head(h)
        return (logits, maps) if return_nl_maps else logits


def receptive_field(layers) -> tuple[int, int]:
    """Receptive field size and stride (jump), in input pixels, of a stack of convolutions and
    poolings, from their kernel sizes, strides and dilations (the standard recurrence
    r <- r + (k - 1) * d * j, j <- j * s). Non-local blocks are skipped: theirs is the whole input."""
    size, jump = 1, 1
    for layer in layers.modules() if isinstance(layers, nn.Module) else layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
            k, st, d = pair(layer.kernel_size)[0], pair(layer.stride)[0], pair(layer.dilation)[0]
            size += (k - 1) * d * jump
            jump *= st
    return size, jump
