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

from torch import nn

from ._modes import check_mode
from .blocks import NonLocalBlock2d

__all__ = ["add_nonlocal", "paper_placement", "nonlocal_blocks"]

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


def _out_channels(block: nn.Module) -> int:
    for name in ("conv3", "conv2"):           # Bottleneck, then BasicBlock
        conv = getattr(block, name, None)
        if isinstance(conv, nn.Conv2d):
            return conv.out_channels
    raise TypeError(f"cannot tell the output channels of a {type(block).__name__}: expected a "
                    f"torchvision BasicBlock or Bottleneck")


def add_nonlocal(model: nn.Module, stages=(3, 4), blocks=None, mode: str = "embedded_gaussian",
                 **block_kwargs) -> nn.Module:
    """Insert non-local blocks after chosen residual blocks of a torchvision ResNet, in place.

    Args:
        model: ``torchvision.models.resnet18`` .. ``resnet152`` (or a model with the same
            ``layer1`` .. ``layer4`` layout).
        stages: the paper's stage numbers to touch, 2 (``layer1``) to 5 (``layer4``).
        blocks: where in each stage. ``None``: the paper's rule (:func:`~nlcourse.backbones.paper_placement`); an
            int ``k``: after the last ``k`` residual blocks... no: after residual block ``k``
            (1-indexed; ``-1`` is the last) of each stage; a dict ``{stage: [k, ...]}``: exactly
            there.
        mode: the pairwise function of the new blocks.
        **block_kwargs: passed to every :class:`~nlcourse.NonLocalBlock2d`.

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
            block = NonLocalBlock2d(_out_channels(residual), mode=mode, **block_kwargs)
            layer[i] = nn.Sequential(residual, block)
    return model


def nonlocal_blocks(model: nn.Module) -> list[tuple[str, NonLocalBlock2d]]:
    """(name, block) for every non-local block in ``model``, in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, NonLocalBlock2d)]
