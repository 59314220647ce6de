"""Three training budgets: smoke (CI, seconds), quick (2 CPU cores, minutes), full (a GPU).

Each lab keeps its own table of the three (``nlcourse.labs.<lab>.BUDGETS``), all of one shape:
:func:`table` builds it and checks it. The name is resolved once, where a run starts (the
command line or a lab's ``setup``), by :func:`resolve`: an explicit name, else
``$NLCOURSE_BUDGET``, else ``quick`` on a CPU and, on a CUDA machine, the lab's GPU default
(``full`` where that lab's full budget has been run and committed, ``quick`` until then).
Everything below that takes the resolved :class:`Budget` object.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

__all__ = ["Budget", "NAMES", "PURPOSE", "table", "recipe", "resolve_name", "resolve"]

NAMES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Budget:
    """How long and on how much data one lab trains: what :func:`nlcourse.train.fit` needs."""

    name: str
    epochs: int
    batch_size: int
    # The course's recipe for 2 CPU cores (AdamW, one-cycle to a peak of 3e-3) unless a lab's
    # table says otherwise, as the MNIST lab's full budget does (the public demo's Adam 1e-3).
    optimizer: str = "adamw"        # "adam" or "adamw"
    lr: float = 3e-3                # the constant rate, or the peak of the one-cycle schedule
    schedule: str = "onecycle"      # "constant" or "onecycle"
    weight_decay: float = 1e-4
    train_size: int | None = None   # None: the whole training split
    test_size: int | None = None
    description: str = ""

    def __post_init__(self):
        if self.name not in NAMES:
            raise ValueError(f"a budget's name must be one of {', '.join(map(repr, NAMES))}; "
                             f"got {self.name!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw'; got {self.optimizer!r}")
        if self.schedule not in ("constant", "onecycle"):
            raise ValueError(f"schedule must be 'constant' or 'onecycle'; got {self.schedule!r}")

    def as_dict(self) -> dict:
        return asdict(self)


# What each budget is for; a lab's table adds what its budgets train on.
PURPOSE = {"smoke": "seconds: checks that it runs, not how well it learns",
           "quick": "minutes on 2 CPU cores", "full": "a GPU budget"}


def _describe(name: str, examples: str, settings: dict) -> str:
    size = settings.get("train_size")
    parts = [f"{'all' if size is None else f'{size:,}'} {examples}",
             f"{settings['epochs']} epoch{'s' if settings['epochs'] > 1 else ''}",
             f"batch {settings['batch_size']}"]
    if settings.get("schedule", "onecycle") == "constant":
        parts.append(f"{settings['optimizer'].replace('adamw', 'AdamW').replace('adam', 'Adam')} "
                     f"{settings['lr']:.0e} at a constant rate".replace("e-0", "e-"))
    note = settings.get("note")
    return f"{PURPOSE[name]}: {', '.join(parts)}" + (f" ({note})" if note else "")


def recipe(settings: dict) -> str:
    """How a run was trained, in words, from its record's ``budget_settings`` ("10 epochs of Adam
    at a constant rate"): for pages that compare networks trained differently, so that the text
    names the recipe the record holds rather than one typed beside it."""
    missing = [k for k in ("epochs", "optimizer", "schedule") if k not in settings]
    if missing:
        raise ValueError(f"settings must hold epochs, optimizer and schedule (a run record's "
                         f"budget_settings); missing {', '.join(missing)}")
    optimizers = {"adam": "Adam", "adamw": "AdamW"}
    schedules = {"constant": "at a constant rate", "onecycle": "with a one-cycle schedule"}
    for key, known in (("optimizer", optimizers), ("schedule", schedules)):
        if settings[key] not in known:
            raise ValueError(f"settings[{key!r}] must be one of {', '.join(known)}; "
                             f"got {settings[key]!r}")
    optimizer, schedule = optimizers[settings["optimizer"]], schedules[settings["schedule"]]
    epochs = settings["epochs"]
    return f"{epochs} epoch{'s' if epochs != 1 else ''} of {optimizer} {schedule}"


def table(examples: str, **budgets: dict) -> dict[str, Budget]:
    """A lab's budgets, ``{name: Budget}``, from the settings of each of smoke, quick and full
    (``smoke=dict(epochs=1, batch_size=64, train_size=512, ...)``; ``note`` adds a remark).
    ``examples`` names what the lab trains on ("MNIST training images"): each description is
    written from the settings, so that it cannot disagree with them."""
    if sorted(budgets) != sorted(NAMES):
        raise ValueError(f"a budget table needs exactly one of each of {', '.join(NAMES)}; "
                         f"got {', '.join(budgets) or 'none'}")
    return {name: Budget(name, **{k: v for k, v in budgets[name].items() if k != "note"},
                         description=_describe(name, examples, budgets[name]))
            for name in NAMES}


def resolve_name(budget: str | None = None, gpu_default: str = "full") -> str:
    """The budget's name: ``budget``, else ``$NLCOURSE_BUDGET``, else by hardware:
    ``gpu_default`` with CUDA, ``quick`` without."""
    source = "budget"
    if budget is None:
        budget, source = os.environ.get("NLCOURSE_BUDGET") or None, "NLCOURSE_BUDGET"
    if budget is None:
        return gpu_default if torch.cuda.is_available() else "quick"
    if budget not in NAMES:
        raise ValueError(f"{source} must be one of {', '.join(map(repr, NAMES))}; got {budget!r}")
    return budget


def resolve(budgets: dict[str, Budget], budget: str | Budget | None = None,
            gpu_default: str = "full") -> Budget:
    """The entry of a lab's table for ``budget``: a name, or None for :func:`resolve_name`. A
    :class:`Budget` is returned as it is (a test's or a reader's own settings; the run record
    keeps its every setting)."""
    if isinstance(budget, Budget):
        return budget
    return budgets[resolve_name(budget, gpu_default)]
