"""The cheaper blocks of :mod:`nlcourse.efficient` trained in MNISTNet's two embedded-Gaussian
blocks (the chapter "Cheaper non-local blocks"), on the MNIST lab's budgets and data.
"""

from __future__ import annotations

from .. import efficient
from ..budget import Budget
from ..models import MNISTNet
from . import mnist
from ._lab import Lab

__all__ = ["MODELS", "SETTINGS", "BUDGETS", "LAB", "build",
           "setup", "run", "sweep", "results", "committed", "trained", "load", "budget"]

MODELS = ("chunked", "top_k", "low_rank", "progressive")

# Block 1 relates 196 queries to 49 keys, block 2 49 to 9 (MNISTNet's docstring): top-4 keeps 4
# of each, rank 4 is a quarter and an eighth of C' (16 and 32), chunks of 64 split block 1's
# queries in 4. Progressive enabling keeps the blocks frozen for half the epochs, rounded down.
SETTINGS = {"chunked": {"chunk": 64}, "top_k": {"k": 4}, "low_rank": {"rank": 4}}
BUDGETS = mnist.BUDGETS


def build(model: str) -> MNISTNet:
    """MNISTNet (embedded Gaussian) with both blocks replaced by the variant ``model``;
    "progressive" keeps the full blocks (frozen at first, by the epoch hook)."""
    net = MNISTNet("embedded_gaussian")
    if model != "progressive":
        efficient.swap_blocks(net, lambda b: efficient.make_variant(b, model, **SETTINGS[model]))
    return net


def _settings(model: str, budget: Budget) -> dict:
    options = SETTINGS.get(model, {"warmup_epochs": budget.epochs // 2})
    return {"mode": "embedded_gaussian", "variant": model, "variant_settings": options}


def _hook(net, model: str, budget: Budget):
    return efficient.progressive(net, budget.epochs // 2) if model == "progressive" else None


LAB = Lab(name="variants", title="the cheaper blocks (chunked, top-k, low-rank, progressive) "
                                 "trained in MNISTNet",
          models=MODELS, budgets=BUDGETS, build=build, load_data=mnist.load_data,
          default_model="chunked", default_seeds=(0, 1), settings=_settings, epoch_hook=_hook)
setup, run, sweep, results, committed, trained, load, budget = LAB.interface()
