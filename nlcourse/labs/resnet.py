"""A small torchvision-layout ResNet on Fashion-MNIST without a block and with one block in each
stage in turn (the paper's Table 2b at small scale).
"""

from __future__ import annotations

from .._modes import NO_BLOCK
from ..backbones import SmallResNet, add_nonlocal
from ..budget import Budget, table
from ..data import load_fashion_mnist
from .lab import Lab, check_model, flops_per_example

__all__ = ["LAB", "MODELS", "BUDGETS", "MODE", "build", "load_data"]

# "none": the ResNet without a block; "resK": one block in stage K, before its last residual block.
MODELS = (NO_BLOCK, "res2", "res3", "res4", "res5")
MODE = "embedded_gaussian"

# Quick and full test on the whole 10,000-image test split.
BUDGETS = table("Fashion-MNIST training images",
                smoke=dict(epochs=1, batch_size=64, train_size=1024, test_size=512),
                quick=dict(epochs=2, batch_size=128, train_size=20_000),
                full=dict(epochs=10, batch_size=128))


def build(model: str, width: int = 8, depth: int = 2, **options) -> SmallResNet:
    """:class:`~nlcourse.backbones.SmallResNet` with one block right before the last residual
    block of stage K for ``model="resK"`` (as the paper adds its single block, Sec. 5), or none;
    ``options`` go to the block (``mode`` defaults to the embedded Gaussian)."""
    check_model(model, MODELS, "resnet")
    net = SmallResNet(width=width, depth=depth)
    if model != NO_BLOCK:
        add_nonlocal(net, stages=(int(model[3:]),), blocks=depth - 1 if depth > 1 else 1,
                     **{"mode": MODE, **options})
    return net


def load_data(budget: Budget):
    """The budget's Fashion-MNIST split: a seeded subset of the training images (always the same
    one for a budget) and the budget's test images."""
    return load_fashion_mnist().subset(budget.train_size, budget.test_size, seed=0)


LAB = Lab(name="resnet", title="a small ResNet on Fashion-MNIST with one block in each stage",
          pages=("notebooks/07_resnet_nonlocal",),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="res3", settings=lambda model, budget: {"mode": MODE},
          measure=flops_per_example("flops_per_image"))
