"""The first cell every lab runs: budget, device, seeds and plotting style in one call."""

from __future__ import annotations

from .budget import Budget, get_budget
from .train import pick_device, set_seed


def setup(budget: str | None = None, seed: int = 0, device=None, settings: dict | None = None):
    """Resolve the budget (argument, else $NLCOURSE_BUDGET, else by hardware), pick the device,
    seed everything and set the figure style; print what was chosen. Returns (budget, device).

    ``settings``: the lab's own table of budgets (``nlcourse.budget.LONG_RANGE`` ...), for labs
    that train on other data than MNIST; its entry for the budget is the one described."""
    from . import viz

    chosen: Budget = get_budget(budget)
    dev = pick_device(device, verbose=True)
    set_seed(seed)
    viz.use_style()
    described = settings[chosen.name] if settings is not None else chosen
    print(f"budget: {chosen.name} ({described.description}); seed {seed}")
    return chosen, dev
