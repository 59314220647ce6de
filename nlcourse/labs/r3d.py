"""The paper's kind of video backbone, a ResNet with 3-D convolutions (torchvision's ``r3d_18``),
without blocks and with non-local blocks where the paper puts them (res3 and res4, every other
residual block: :func:`~nlcourse.backbones.add_nonlocal`), on the same moving-digit clips as
:mod:`nlcourse.labs.spacetime`.

The clips are grey, so the stem convolution takes one channel instead of three; everything else
is torchvision's ``r3d_18`` as it is.
"""

from __future__ import annotations

from torch import nn

from .._modes import NO_BLOCK
from ..backbones import add_nonlocal, paper_placement
from ..budget import table
from .lab import Lab, check_model, flops_per_example
from .spacetime import load_data

__all__ = ["LAB", "MODELS", "BUDGETS", "MODE", "STAGES", "build", "load_data"]

MODELS = (NO_BLOCK, "nonlocal")   # r3d_18 as it is; r3d_18 with the paper's blocks
MODE = "embedded_gaussian"        # the paper's default pairwise function
STAGES = (3, 4)                   # res3 and res4 (torchvision's layer2 and layer3)

# A training step of r3d_18 costs far more than one of the space-time lab's network
# (results/r3d/quick holds the measured times), so the quick budget trains on half as many clips.
BUDGETS = table("clips", smoke=dict(epochs=1, batch_size=32, train_size=64, test_size=64),
                quick=dict(epochs=3, batch_size=32, train_size=4_000, test_size=2_000),
                full=dict(epochs=8, batch_size=64, train_size=50_000, test_size=10_000))


def build(model: str, **options) -> nn.Module:
    """torchvision's ``r3d_18`` for 10 classes with a one-channel stem; for ``"nonlocal"``, with
    blocks after residual block 2 of res3 and of res4 (the paper's placement for a network of
    two residual blocks a stage), each the identity at insertion; ``options`` go to the blocks
    (``mode`` defaults to the embedded Gaussian)."""
    check_model(model, MODELS, "r3d")
    from torchvision.models.video import r3d_18  # heavy (torchvision): only when a net is built

    net = r3d_18(num_classes=10)
    old = net.stem[0]
    net.stem[0] = nn.Conv3d(1, old.out_channels, old.kernel_size, old.stride, old.padding,
                            bias=False)
    if model != NO_BLOCK:
        add_nonlocal(net, stages=STAGES, blocks=paper_placement(net, STAGES),
                     **{"mode": MODE, **options})
    return net


LAB = Lab(name="r3d", title="torchvision's r3d_18 with and without the paper's blocks, on "
                            "moving digits",
          pages=("notebooks/06_spacetime",),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="nonlocal", settings=lambda model, budget: {"mode": MODE},
          measure=flops_per_example("flops_per_clip"))
