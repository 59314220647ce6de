"""The video network without a block and with each of the paper's three block variants
(space-only, time-only, space-time; Table 2d), on moving-digit clips whose answer lies frames
away (:mod:`nlcourse.clips`).
"""

from __future__ import annotations

from .._modes import NO_BLOCK
from ..budget import Budget, table
from ..clips import moving_digit_clips
from ..data import load_mnist
from ..models import SPACETIME_VARIANTS, VideoNet
from .lab import Lab, check_model, flops_per_example

__all__ = ["LAB", "MODELS", "BUDGETS", "MODE", "build", "load_data"]

MODELS = (NO_BLOCK, *SPACETIME_VARIANTS)
MODE = "embedded_gaussian"              # the blocks' pairwise function

BUDGETS = table("clips", smoke=dict(epochs=1, batch_size=64, train_size=256, test_size=128),
                quick=dict(epochs=3, batch_size=64, train_size=8_000, test_size=2_000),
                full=dict(epochs=8, batch_size=64, train_size=50_000, test_size=10_000))


def build(model: str, **options) -> VideoNet:
    """VideoNet with the block variant ``model`` (embedded Gaussian unless ``mode`` says
    otherwise), or none for ``"none"``."""
    check_model(model, MODELS, "spacetime")
    return VideoNet(model, **{"mode": MODE, **options})


def load_data(budget: Budget):
    """The budget's clips (always the same ones for a budget: the data seed is fixed)."""
    return moving_digit_clips(load_mnist(), budget.train_size, budget.test_size, seed=0)


LAB = Lab(name="spacetime", title="space-only, time-only and space-time blocks on moving digits",
          pages=("notebooks/06_spacetime",),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="spacetime", settings=lambda model, budget: {"mode": MODE},
          measure=flops_per_example("flops_per_clip"))
