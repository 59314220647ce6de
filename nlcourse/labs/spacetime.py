"""Lab 6: the video network without a block and with each of the paper's three block variants
(space-only, time-only, space-time; Table 2d), on moving-digit clips whose answer lies frames
away (:mod:`nlcourse.clips`). Notebook ``06_spacetime``.
"""

from __future__ import annotations

from ..budget import Budget, table
from ..clips import moving_digit_clips
from ..data import load_mnist
from ..models import SPACETIME_VARIANTS, VideoNet
from ._lab import Lab, flops_per_example

__all__ = ["MODELS", "BUDGETS", "LAB", "build", "load_data",
           "setup", "run", "sweep", "results", "committed", "trained", "load", "budget"]

MODELS = ("none", *SPACETIME_VARIANTS)  # "none": the network without a block
MODE = "embedded_gaussian"              # the blocks' pairwise function

BUDGETS = table("clips", smoke=dict(epochs=1, batch_size=64, train_size=256, test_size=128),
                quick=dict(epochs=3, batch_size=64, train_size=8_000, test_size=2_000),
                full=dict(epochs=8, batch_size=64, train_size=50_000, test_size=10_000))


def build(model: str) -> VideoNet:
    return VideoNet(None if model == "none" else model, mode=MODE)


def load_data(budget: Budget, mnist=None):
    """The budget's clips (always the same ones for a budget: the data seed is fixed)."""
    mnist = mnist if mnist is not None else load_mnist()
    return moving_digit_clips(mnist, budget.train_size, budget.test_size, seed=0)


LAB = Lab(name="spacetime", title="space-only, time-only and space-time blocks on moving digits",
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="spacetime", settings=lambda model, budget: {"mode": MODE},
          measure=flops_per_example("flops_per_clip"))
setup, run, sweep, results, committed, trained, load, budget = LAB.interface()
