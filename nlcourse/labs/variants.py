"""The cheaper blocks of :mod:`nlcourse.efficient` trained in MNISTNet's two embedded-Gaussian
blocks (the chapter "Cheaper non-local blocks"), on the MNIST lab's budgets and data.
"""

from __future__ import annotations

from .. import efficient
from ..budget import Budget
from ..models import MNISTNet
from . import mnist
from .lab import Lab, check_model

__all__ = ["LAB", "MODELS", "BUDGETS", "MODE", "SETTINGS", "build", "load_data"]

MODELS = ("chunked", "top_k", "low_rank", "progressive")
MODE = "embedded_gaussian"

# Block 1 relates 196 queries to 49 keys, block 2 49 to 9 (MNISTNet's docstring): top-4 keeps 4
# of each, rank 4 is a quarter and an eighth of C' (16 and 32), chunks of 64 split block 1's
# queries in 4. Progressive enabling keeps the blocks frozen for half the epochs, rounded down.
SETTINGS = {"chunked": {"chunk": 64}, "top_k": {"k": 4}, "low_rank": {"rank": 4}}
BUDGETS = mnist.BUDGETS
load_data = mnist.load_data


def build(model: str, **options) -> MNISTNet:
    """MNISTNet (embedded Gaussian) with both blocks replaced by the variant ``model`` (its
    ``SETTINGS``, updated by ``options``); "progressive" keeps the full blocks (frozen at
    first, by the epoch hook)."""
    check_model(model, MODELS, "variants")
    net = MNISTNet(MODE)
    if model != "progressive":
        settings = {**SETTINGS[model], **options}
        efficient.swap_blocks(net, lambda b: efficient.make_variant(b, model, **settings))
    return net


def _settings(model: str, budget: Budget) -> dict:
    options = SETTINGS.get(model, {"warmup_epochs": budget.epochs // 2})
    return {"mode": MODE, "variant": model, "variant_settings": options}


def _hook(net, model: str, budget: Budget):
    return efficient.progressive(net, budget.epochs // 2) if model == "progressive" else None


LAB = Lab(name="variants", title="the cheaper blocks (chunked, top-k, low-rank, progressive) "
                                 "trained in MNISTNet",
          pages=("book/efficient",),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="chunked", default_seeds=(0, 1), settings=_settings, epoch_hook=_hook)
