"""Lab 6, second part: the paper's kind of video backbone, a ResNet with 3-D convolutions
(torchvision's ``r3d_18``), without blocks and with non-local blocks where the paper puts them
(res3 and res4, every other residual block: :func:`~nlcourse.backbones.add_nonlocal`), on the
same moving-digit clips as :mod:`nlcourse.labs.spacetime`. Notebook ``06_spacetime``.

The clips are grey, so the stem convolution takes one channel instead of three; everything else
is torchvision's ``r3d_18`` as it is. torchvision is imported only when a network is built.
"""

from __future__ import annotations

from torch import nn

from ..backbones import add_nonlocal, paper_placement
from ..budget import Budget, table
from ..clips import moving_digit_clips
from ..data import load_mnist
from ._lab import Lab, flops_per_example

__all__ = ["MODELS", "BUDGETS", "LAB", "MODE", "STAGES", "build", "load_data",
           "setup", "run", "sweep", "results", "committed", "trained", "load", "budget"]

MODELS = ("none", "nonlocal")   # r3d_18 as it is; r3d_18 with the paper's blocks
MODE = "embedded_gaussian"      # the paper's default pairwise function
STAGES = (3, 4)                 # res3 and res4 (torchvision's layer2 and layer3)

# A training step of r3d_18 on 64 of these clips took 2.2 s on 2 CPU cores when this lab was
# written, so the quick budget trains on half as many clips as the first part's.
BUDGETS = table("clips", smoke=dict(epochs=1, batch_size=32, train_size=64, test_size=64),
                quick=dict(epochs=3, batch_size=32, train_size=4_000, test_size=2_000),
                full=dict(epochs=8, batch_size=64, train_size=50_000, test_size=10_000))


def build(model: str = "nonlocal", mode: str = MODE, **block_kwargs) -> nn.Module:
    """torchvision's ``r3d_18`` for 10 classes with a one-channel stem; for ``"nonlocal"``, with
    blocks after residual block 2 of res3 and of res4 (the paper's placement for a network of
    two residual blocks a stage), each the identity at insertion."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(map(repr, MODELS))}; got {model!r}")
    from torchvision.models.video import r3d_18  # heavy (torchvision): only when a net is built

    net = r3d_18(num_classes=10)
    old = net.stem[0]
    net.stem[0] = nn.Conv3d(1, old.out_channels, old.kernel_size, old.stride, old.padding,
                            bias=False)
    if model == "nonlocal":
        add_nonlocal(net, stages=STAGES, blocks=paper_placement(net, STAGES), mode=mode,
                     **block_kwargs)
    return net


def load_data(budget: Budget, mnist=None):
    """The budget's clips: the same generator and data seed as the space-time lab's."""
    mnist = mnist if mnist is not None else load_mnist()
    return moving_digit_clips(mnist, budget.train_size, budget.test_size, seed=0)


LAB = Lab(name="r3d", title="torchvision's r3d_18 with and without the paper's blocks, on "
                            "moving digits",
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="nonlocal", settings=lambda model, budget: {"mode": MODE},
          measure=flops_per_example("flops_per_clip"))
setup, run, sweep, results, committed, trained, load, budget = LAB.interface()
