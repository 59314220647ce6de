"""Lab 7: a small torchvision-layout ResNet on Fashion-MNIST without a block and with one block in
each stage in turn (the paper's Table 2b at small scale). Notebook ``07_resnet_nonlocal``.
"""

from __future__ import annotations

from ..backbones import SmallResNet, add_nonlocal
from ..budget import Budget, table
from ..data import load_fashion_mnist
from ._lab import Lab, flops_per_example

__all__ = ["MODELS", "BUDGETS", "LAB", "build", "load_data",
           "setup", "run", "sweep", "results", "committed", "trained", "load", "budget"]

# "none": the ResNet without a block; "resK": one block in stage K, before its last residual block.
MODELS = ("none", "res2", "res3", "res4", "res5")
MODE = "embedded_gaussian"

# Quick and full test on the whole 10,000-image test split.
BUDGETS = table("Fashion-MNIST training images",
                smoke=dict(epochs=1, batch_size=64, train_size=1024, test_size=512),
                quick=dict(epochs=2, batch_size=128, train_size=20_000),
                full=dict(epochs=10, batch_size=128))


def build(model: str = "none", mode: str = MODE, width: int = 8, depth: int = 2,
          **block_kwargs) -> SmallResNet:
    """:class:`~nlcourse.backbones.SmallResNet` with one block right before the last residual
    block of stage K for ``model="resK"`` (as the paper adds its single block, Sec. 5), or none."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(map(repr, MODELS))}; got {model!r}")
    net = SmallResNet(width=width, depth=depth)
    if model != "none":
        add_nonlocal(net, stages=(int(model[3:]),), blocks=depth - 1 if depth > 1 else 1,
                     mode=mode, **block_kwargs)
    return net


def load_data(budget: Budget, data=None):
    """The budget's Fashion-MNIST split: a seeded subset of the training images (always the same
    one for a budget) and the budget's test images."""
    data = data if data is not None else load_fashion_mnist()
    return data.subset(budget.train_size, budget.test_size, seed=0)


LAB = Lab(name="resnet", title="a small ResNet on Fashion-MNIST with one block in each stage",
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="res3", settings=lambda model, budget: {"mode": MODE},
          measure=flops_per_example("flops_per_image"))
setup, run, sweep, results, committed, trained, load, budget = LAB.interface()
