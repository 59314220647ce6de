"""A lab is a declaration: what one experiment trains, on what, under which budgets, and which
pages it serves. It holds no behaviour; :mod:`nlcourse.labs.runner` does for every lab what is done
with one (train a model, sweep seeds, read committed runs back, load a checkpoint).

A lab module is one short file of one shape: ``MODELS``, ``BUDGETS``, ``build(model,
**options)``, ``load_data(budget)`` and ``LAB``, a :class:`Lab` naming them (the README's "To
add a lab" shows a whole one; ``tests/test_labs.py`` holds every module to the shape).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .._modes import NO_BLOCK
from ..budget import NAMES, Budget
from ..cost import count_flops
from ..train import check_objective

__all__ = ["Lab", "NO_BLOCK", "check_model", "flops_per_example"]


@dataclass(frozen=True)
class Lab:
    """One experiment, described.

    ``pages``: the notebooks (``notebooks/NN_name``) or chapters (``book/name``) that run it.
    ``build(model, **options)`` returns the untrained network named ``model`` (the runner seeds
    first, so a seed fixes its weights). ``load_data(budget)`` returns the budget's data: the same
    for every model and seed, with ``source``, ``describe()`` and the four split tensors.
    ``settings(model, budget)``: fixed facts every run records (the block's mode, a variant's
    options); ``measure(net, data, device)``: measured ones (FLOPs); ``epoch_hook(net, model,
    budget)``: a hook for :func:`~nlcourse.train.fit`, or None. ``objective``: what it trains
    for, ``"classify"`` (the test score is ``test_accuracy``) or ``"denoise"`` (``test_psnr``),
    :data:`nlcourse.train.OBJECTIVES`.
    """

    name: str
    title: str
    pages: tuple[str, ...]
    models: tuple[str, ...]
    budgets: Mapping[str, Budget]
    build: Callable[..., nn.Module]
    load_data: Callable[[Budget], object]
    default_model: str
    default_seeds: tuple[int, ...] = (0, 1, 2)
    settings: Callable[[str, Budget], dict] | None = None
    measure: Callable | None = None
    epoch_hook: Callable | None = None
    objective: str = "classify"

    def __post_init__(self):
        check_objective(self.objective)
        if self.default_model not in self.models:
            raise ValueError(f"the {self.name} lab's default_model {self.default_model!r} is not "
                             f"one of its models {self.models}")
        if tuple(self.budgets) != NAMES:
            raise ValueError(f"the {self.name} lab's budgets must be {NAMES}, in that order "
                             f"(nlcourse.budget.table), got {tuple(self.budgets)}")


def check_model(model, models: tuple[str, ...], lab: str) -> str:
    """``model`` if it is one of a lab's ``models``, else a ValueError that lists them."""
    if model not in models:
        raise ValueError(f"model must be one of {', '.join(map(repr, models))} for the {lab} "
                         f"lab; got {model!r}")
    return model


def flops_per_example(field: str):
    """A ``measure`` for :class:`Lab`: the forward FLOPs of the trained network on one test
    example, recorded as ``field``."""
    def measure(net: nn.Module, data, device) -> dict:
        with torch.no_grad():
            return {field: count_flops(lambda: net(data.test_images[:1].to(device)))}
    return measure
