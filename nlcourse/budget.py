"""Three training budgets, one table: smoke (CI, seconds), quick (2 CPU cores, minutes), full.

Every notebook and training run reads its budget here, from an explicit name or from the
``NLCOURSE_BUDGET`` environment variable; the default is ``full`` on a CUDA machine, else
``quick``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

__all__ = ["Budget", "BUDGETS", "LONG_RANGE", "SPACETIME", "FASHION", "get_budget"]


@dataclass(frozen=True)
class Budget:
    name: str
    epochs: int
    batch_size: int
    optimizer: str          # "adam" or "adamw"
    lr: float               # the constant rate, or the peak of the one-cycle schedule
    schedule: str           # "constant" or "onecycle"
    weight_decay: float = 0.0
    train_size: int | None = None   # None: the whole training split
    test_size: int | None = None
    description: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


BUDGETS = {
    "smoke": Budget("smoke", epochs=1, batch_size=64, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4, train_size=4096, test_size=1024,
                    description="seconds: a 4,096-image subset, one epoch; checks that it runs, "
                                "not how well it learns"),
    "quick": Budget("quick", epochs=2, batch_size=128, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4,
                    description="minutes on 2 CPU cores: full MNIST, 2 epochs, AdamW with a "
                                "one-cycle learning rate"),
    "full": Budget("full", epochs=10, batch_size=128, optimizer="adam", lr=1e-3,
                   schedule="constant",
                   description="the reference recipe: full MNIST, 10 epochs, batch 128, "
                               "Adam 1e-3 (a GPU/Colab budget)"),
}


def get_budget(budget: str | Budget | None = None) -> Budget:
    """The named budget, else ``$NLCOURSE_BUDGET``, else ``full`` with CUDA and ``quick`` without."""
    if isinstance(budget, Budget):
        return budget
    source = "budget"
    if budget is None:
        budget, source = os.environ.get("NLCOURSE_BUDGET") or None, "NLCOURSE_BUDGET"
    if budget is None:
        return BUDGETS["full" if torch.cuda.is_available() else "quick"]
    if budget not in BUDGETS:
        raise ValueError(f"{source} must be one of {', '.join(map(repr, BUDGETS))}; got {budget!r}")
    return BUDGETS[budget]


# The long-range lab trains on 64 x 64 canvases (notebooks/05_long_range): its own sizes per budget.
LONG_RANGE = {
    "smoke": Budget("smoke", epochs=1, batch_size=64, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4, train_size=512, test_size=256,
                    description="seconds: 512 canvases, one epoch; too little to learn the task"),
    "quick": Budget("quick", epochs=2, batch_size=64, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4, train_size=10000, test_size=2000,
                    description="minutes on 2 CPU cores: 10,000 canvases, 2 epochs"),
    "full": Budget("full", epochs=5, batch_size=64, optimizer="adamw", lr=3e-3,
                   schedule="onecycle", weight_decay=1e-4, train_size=60000, test_size=10000,
                   description="60,000 canvases, 5 epochs (a GPU budget)"),
}


# The space-time lab trains on moving-digit clips (notebooks/06_spacetime): its own sizes per budget.
SPACETIME = {
    "smoke": Budget("smoke", epochs=1, batch_size=64, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4, train_size=256, test_size=128,
                    description="seconds: 256 clips, one epoch; too little to learn the task"),
    "quick": Budget("quick", epochs=3, batch_size=64, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4, train_size=8000, test_size=2000,
                    description="minutes on 2 CPU cores: 8,000 clips, 3 epochs"),
    "full": Budget("full", epochs=8, batch_size=64, optimizer="adamw", lr=3e-3,
                   schedule="onecycle", weight_decay=1e-4, train_size=50000, test_size=10000,
                   description="50,000 clips, 8 epochs (a GPU budget)"),
}


# The ResNet lab trains a small ResNet on Fashion-MNIST (notebooks/07_resnet_nonlocal).
FASHION = {
    "smoke": Budget("smoke", epochs=1, batch_size=64, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4, train_size=1024, test_size=512,
                    description="seconds: 1,024 Fashion-MNIST images, one epoch; checks that it "
                                "runs, not how well it learns"),
    "quick": Budget("quick", epochs=2, batch_size=128, optimizer="adamw", lr=3e-3,
                    schedule="onecycle", weight_decay=1e-4, train_size=20000, test_size=None,
                    description="minutes on 2 CPU cores: 20,000 Fashion-MNIST training images, "
                                "2 epochs, the whole 10,000-image test split"),
    "full": Budget("full", epochs=10, batch_size=128, optimizer="adamw", lr=3e-3,
                   schedule="onecycle", weight_decay=1e-4,
                   description="all 60,000 Fashion-MNIST training images, 10 epochs (a GPU budget)"),
}
