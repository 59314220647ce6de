"""The first cell every lab runs: budget, device, seeds and plotting style in one call."""

from __future__ import annotations

from .budget import Budget, get_budget
from .train import pick_device, set_seed


def setup(budget: str | None = None, seed: int = 0, device=None):
    """Resolve the budget (argument, else $NLCOURSE_BUDGET, else by hardware), pick the device,
    seed everything and set the figure style; print what was chosen. Returns (budget, device)."""
    from . import viz

    chosen: Budget = get_budget(budget)
    dev = pick_device(device, verbose=True)
    set_seed(seed)
    viz.use_style()
    print(f"budget: {chosen.name} ({chosen.description}); seed {seed}")
    return chosen, dev
