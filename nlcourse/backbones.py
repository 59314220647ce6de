"""Non-local blocks inserted into torchvision ResNets, as the paper does for its video and
detection backbones.

The paper's placement for ResNet-50 is 5 blocks, "to every other residual block" of res3 and res4
(Wang et al., 2018, Sec. 4.1): after blocks 2 and 4 of res3 and blocks 2, 4 and 6 of res4. The
same rule for any depth: after the even-numbered residual blocks of res3 (at most 2) and res4
(at most 3). Stages are named as in the paper: res2 .. res5 are torchvision's layer1 .. layer4.

Every inserted block starts as the identity, so a pretrained backbone computes exactly what it
computed before; training then opens the blocks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._modes import check_mode
from .blocks import NonLocalBlock, NonLocalBlock2d, NonLocalBlock3d
from .efficient import LowRankNonLocal, WithOp
from .models import SpaceTimeNonLocal

__all__ = ["add_nonlocal", "paper_placement", "BLOCK_KINDS", "nonlocal_blocks", "nonlocal_maps",
           "SmallResNet"]

STAGES = {2: "layer1", 3: "layer2", 4: "layer3", 5: "layer4"}
_PAPER_COUNTS = {3: 2, 4: 3}


def _stage(model: nn.Module, stage: int) -> nn.Sequential:
    if stage not in STAGES:
        raise ValueError(f"stages are numbered as in the paper, 2 to 5 (res2 = layer1 .. res5 = "
                         f"layer4); got {stage!r}")
    layer = getattr(model, STAGES[stage], None)
    if not isinstance(layer, nn.Sequential):
        raise TypeError(f"model must be a torchvision ResNet (with layer1 .. layer4); "
                        f"{type(model).__name__} has no {STAGES[stage]}")
    return layer


def paper_placement(model: nn.Module, stages=(3, 4)) -> dict[int, list[int]]:
    """The paper's 5-block rule for ``model``'s depth: {stage: [1-indexed residual blocks]}."""
    placement = {}
    for stage in stages:
        n = len(_stage(model, stage))
        placement[stage] = list(range(2, n + 1, 2))[:_PAPER_COUNTS.get(stage, 1)] or [n]
    return placement


def _output_conv(block: nn.Module) -> nn.Module:
    """The convolution that writes a residual block's output: conv3 of a Bottleneck, conv2 of a
    BasicBlock; in torchvision's video ResNets (r3d_18 ...) conv2 is Sequential(conv, BN)."""
    for name in ("conv3", "conv2"):
        conv = getattr(block, name, None)
        if isinstance(conv, nn.Sequential):
            conv = conv[0]
        if isinstance(conv, (nn.Conv2d, nn.Conv3d)):
            return conv
    raise TypeError(f"cannot tell the output channels of a {type(block).__name__}: expected a "
                    f"torchvision BasicBlock or Bottleneck (2-D or video)")


def _out_channels(block: nn.Module) -> int:
    return _output_conv(block).out_channels


def add_nonlocal(model: nn.Module, stages=(3, 4), blocks=None, mode: str = "embedded_gaussian",
                 **block_kwargs) -> nn.Module:
    """Insert non-local blocks after chosen residual blocks of a torchvision ResNet, in place.

    Args:
        model: ``torchvision.models.resnet18`` .. ``resnet152``, or a video ResNet
            (``torchvision.models.video.r3d_18``, ``mc3_18``), or a model with the same
            ``layer1`` .. ``layer4`` layout. A video ResNet gets 3-D blocks.
        stages: the paper's stage numbers to touch, 2 (``layer1``) to 5 (``layer4``).
        blocks: where in each stage. ``None``: the paper's rule
            (:func:`~nlcourse.backbones.paper_placement`); an int ``k``: after residual block ``k``
            (1-indexed; ``-1`` is the last) of each stage; a dict ``{stage: [k, ...]}``: exactly
            there.
        mode: the pairwise function of the new blocks.
        **block_kwargs: passed to every :class:`~nlcourse.NonLocalBlock` (2-D, or 3-D in a
            video ResNet).

    Returns the same model, whose chosen residual blocks are now ``Sequential(residual, block)``.
    """
    check_mode(mode)
    if blocks is None:
        placement = paper_placement(model, stages)
    elif isinstance(blocks, int):
        placement = {stage: [blocks] for stage in stages}
    elif isinstance(blocks, dict):
        placement = {stage: list(ks) for stage, ks in blocks.items()}
    else:
        raise TypeError(f"blocks must be None (the paper's placement), an int or a dict "
                        f"{{stage: [block numbers]}}; got {type(blocks).__name__}")
    for stage, ks in placement.items():
        layer = _stage(model, stage)
        n = len(layer)
        chosen = set()
        for k in ks:
            if not isinstance(k, int) or k == 0 or not -n <= k <= n:
                raise ValueError(f"res{stage} ({STAGES[stage]}) has residual blocks 1 to {n} "
                                 f"(or -1 to -{n} from the end); got {k!r}")
            chosen.add(k - 1 if k > 0 else n + k)
        for i in sorted(chosen):
            residual = layer[i]
            if isinstance(residual, nn.Sequential):
                raise ValueError(f"res{stage} block {i + 1} already has a non-local block")
            conv = _output_conv(residual)
            # a 3-D backbone (clips) takes 3-D blocks, which pool keys in space only, as the
            # paper's video models do
            kind = NonLocalBlock3d if isinstance(conv, nn.Conv3d) else NonLocalBlock2d
            block = kind(conv.out_channels, mode=mode, **block_kwargs)
            layer[i] = nn.Sequential(residual, block)
    return model


# Every kind of non-local block the package defines: the block (1-D, 2-D, 3-D), the space-time
# block of the video network, and the cheaper variants of nlcourse.efficient.
BLOCK_KINDS = (NonLocalBlock, SpaceTimeNonLocal, WithOp, LowRankNonLocal)
_WITH_MAPS = (NonLocalBlock, SpaceTimeNonLocal)  # the variants compute no map


def nonlocal_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, block) for every non-local block in ``model``, in order: any of ``BLOCK_KINDS``
    (the block, 1-D, 2-D or 3-D; the space-time block; the cheaper variants), counted once (a space-time block or a variant wraps a block of its own,
    which is not listed again)."""
    found = []
    for name, module in model.named_modules():
        inside = any(name.startswith(f"{outer}.") or outer == "" for outer, _ in found)
        if isinstance(module, BLOCK_KINDS) and not inside:
            found.append((name, module))
    return found


def nonlocal_maps(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """{name: map} of every non-local block of ``model`` on input ``x``, in order: (B, N, M) for a
    block, shaped by the variant for a space-time block (:class:`~nlcourse.models.SpaceTimeNonLocal`).

    Works on any model, including those :func:`add_nonlocal` built, whose forward knows nothing of
    maps: each block's input is caught by a hook during one forward pass, and the block is run
    again on it with ``return_nl_map=True``. The cheaper variants compute no map and are left out."""
    inputs, hooks = {}, []
    blocks = [(name, m) for name, m in nonlocal_blocks(model) if isinstance(m, _WITH_MAPS)]
    for name, block in blocks:
        hooks.append(block.register_forward_pre_hook(
            lambda module, args, name=name: inputs.__setitem__(name, args[0].detach())))
    try:
        with torch.no_grad():
            model(x)
            return {name: block(inputs[name], return_nl_map=True)[1] for name, block in blocks}
    finally:
        for hook in hooks:
            hook.remove()


class SmallResNet(nn.Module):
    """torchvision's ResNet layout at the scale of 28 x 28 grey images, built from torchvision's own
    ``BasicBlock``: a 3x3 stem (no stride, no max-pool), then ``layer1`` .. ``layer4`` (the paper's
    res2 .. res5) with ``depth`` residual blocks each, widths ``width`` x (1, 2, 4, 8) and strides
    (1, 2, 2, 2), so res2 .. res5 see 28, 14, 7 and 4 positions per side; then global average
    pooling and a linear classifier. ``depth=2`` is ResNet-18's block count.

    Because the layout is torchvision's, :func:`add_nonlocal` places blocks in
    it exactly as in a ResNet-50.
    """

    def __init__(self, width: int = 16, depth: int = 2, in_channels: int = 1,
                 num_classes: int = 10):
        super().__init__()
        from torchvision.models.resnet import BasicBlock  # heavy: import nlcourse stays light

        for name, value in (("width", width), ("depth", depth), ("in_channels", in_channels),
                            ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        c_in = width
        for k, (mult, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2)), start=1):
            c_out = width * mult
            layers = []
            for i in range(depth):
                s = stride if i == 0 else 1
                down = None
                if s != 1 or c_in != c_out:
                    down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=s, bias=False),
                                         nn.BatchNorm2d(c_out))
                layers.append(BasicBlock(c_in, c_out, stride=s, downsample=down))
                c_in = c_out
            setattr(self, f"layer{k}", nn.Sequential(*layers))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) for images (B, in_channels, H, W)."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.stem[0].in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a batch of images shaped (B, {self.stem[0].in_channels}, "
                             f"H, W), got {shape}")
        h = self.stem(x)
        for k in range(1, 5):
            h = getattr(self, f"layer{k}")(h)
        return self.fc(self.pool(h).flatten(1))
