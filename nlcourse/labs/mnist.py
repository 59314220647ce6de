"""MNISTNet on MNIST, without blocks and with each of the four pairwise functions.

The network and the ``full`` recipe (10 epochs, Adam 1e-3, batch 128) are those of the public
PyTorch demo (AlexHex7/Non-local_pytorch); ``quick`` trains 2 epochs with AdamW and a one-cycle
schedule, sized for 2 CPU cores.
"""

from __future__ import annotations

from .._modes import MODES, NO_BLOCK
from ..budget import Budget, table
from ..data import load_mnist
from ..models import MNISTNet
from .lab import Lab, check_model

__all__ = ["LAB", "MODELS", "BUDGETS", "build", "load_data"]

MODELS = (NO_BLOCK, *MODES)

BUDGETS = table("MNIST training images",
                smoke=dict(epochs=1, batch_size=64, train_size=4096, test_size=1024),
                quick=dict(epochs=2, batch_size=128),
                full=dict(epochs=10, batch_size=128, optimizer="adam", lr=1e-3,
                          schedule="constant", weight_decay=0.0,
                          note="the public PyTorch demo's recipe"))


def build(model: str, **options) -> MNISTNet:
    """MNISTNet with two blocks of the pairwise function ``model``, or none for ``"none"``;
    ``options`` go to the blocks."""
    check_model(model, MODELS, "mnist")
    return MNISTNet(model, **options)


def load_data(budget: Budget):
    """Full MNIST (or the budget's seeded subset; the same one for every model and seed)."""
    return load_mnist().subset(budget.train_size, budget.test_size, seed=0)


LAB = Lab(name="mnist", title="MNISTNet on MNIST, without blocks and with each pairwise function",
          pages=("notebooks/02_train_mnist", "notebooks/03_attention_maps",
                 "notebooks/04_compare_modes"),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="embedded_gaussian", settings=lambda model, budget: {"mode": model})
