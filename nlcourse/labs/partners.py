"""A task where different queries must look at different places: four digits on a canvas, in two
pairs, and every cell on a digit must name the class of that digit's partner.

The pairs are drawn at random for every canvas, and partners lie farther apart than the
receptive field of :class:`~nlcourse.models.LongRangeNet`'s convolutions
(:func:`nlcourse.data.partner_canvas`), so a cell can answer only by looking at one place far
away, and the cells of the two pairs at different places. Seven networks: LongRangeNet without a
block, with one non-local block of each pairwise function, with GCNet's global-context block (one
map for every query), and with dilated convolutions whose receptive field covers the canvas.
"""

from __future__ import annotations

import torch

from .._modes import MODES, NO_BLOCK
from ..budget import Budget, table
from ..data import load_mnist, partner_canvas
from ..mapstats import row_similarity
from ..models import CANVAS_DILATIONS, LongRangeNet
from .lab import Lab, check_model

__all__ = ["LAB", "MODELS", "BUDGETS", "NETWORKS", "CANVAS", "GAP", "WIDTH", "build", "load_data",
           "predictions",
           "digit_cells", "key_digits", "map_measures", "measure"]

#: The networks that are not LongRangeNet with a block of one pairwise function, or none.
NETWORKS = {"global_context": {"global_context": True}, "dilated": {"dilations": CANVAS_DILATIONS}}
MODELS = (NO_BLOCK, *MODES, *NETWORKS)
# Sized for the quick budget on 2 CPU cores: a 48 x 48 canvas (a 12 x 12 output grid) and 32
# channels, against lab 5's 64 and 64; partners at least GAP pixels apart, beyond the 18-pixel
# receptive field of every cell on a digit (the lab checks it on the data).
CANVAS, GAP, WIDTH = 48, 12, 32

BUDGETS = table("canvases", smoke=dict(epochs=1, batch_size=64, train_size=512, test_size=256),
                quick=dict(epochs=4, batch_size=64, train_size=10_000, test_size=2_000),
                full=dict(epochs=10, batch_size=64, train_size=60_000, test_size=10_000))


def build(model: str, **options) -> LongRangeNet:
    """LongRangeNet (``WIDTH`` channels) with one block of the pairwise function ``model``, none
    (``"none"``), GCNet's block (``"global_context"``) or the dilated convolutions
    (``"dilated"``)."""
    check_model(model, MODELS, "partners")
    return LongRangeNet(None if model in NETWORKS else model,
                        **{"width": WIDTH, **NETWORKS.get(model, {}), **options})


def load_data(budget: Budget):
    """The budget's canvases (always the same ones for a budget: the data seed is fixed)."""
    return partner_canvas(load_mnist(), budget.train_size, budget.test_size, canvas=CANVAS,
                          gap=GAP, seed=0)


@torch.no_grad()
def predictions(net, images, device=None, batch: int = 256, maps: bool = False):
    """The class predicted at every output cell, (n, 16, 16); with ``maps``, also the block's
    maps, (n, N, M), or None for a network without a block."""
    device = device or next(net.parameters()).device
    net.eval()
    found, nl_maps = [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device)
        if maps:
            logits, m = net(x, return_nl_maps=True)
            nl_maps += [m[0].cpu()] if m else []
        else:
            logits = net(x)
        found.append(logits.argmax(1).cpu())
    cells = torch.cat(found)
    return (cells, torch.cat(nl_maps) if nl_maps else None) if maps else cells


def digit_cells(data, split: str = "test") -> torch.Tensor:
    """Which digit each output cell lies on, as the targets are set: (n, grid * grid), the digit's
    index 0-3 where the cell's centre lies in its square, else -1 (the cells with no target)."""
    grid = data.canvas // data.stride
    centre = torch.arange(grid) * data.stride + (data.stride - 1) / 2
    boxes = getattr(data, f"{split}_boxes")                     # (n, 4, 4): t, l, b, r
    rows = (centre >= boxes[..., 0:1]) & (centre <= boxes[..., 2:3])      # (n, 4, grid)
    cols = (centre >= boxes[..., 1:2]) & (centre <= boxes[..., 3:4])
    on = rows[..., :, None] & cols[..., None, :]                # (n, 4, grid, grid)
    which = torch.full(on.shape[:1] + on.shape[2:], -1, dtype=torch.long)
    for d in range(on.shape[1]):
        which[on[:, d]] = d
    return which.flatten(1)


def key_digits(data, n_keys: int, split: str = "test") -> torch.Tensor:
    """Which keys of a map with ``n_keys`` keys laid over the canvas (36 after the block's 2 x 2
    max-pooling of the 12 x 12 grid, 144 for GCNet's) overlap each digit's square: (n, 4, n_keys)
    booleans."""
    grid = int(round(n_keys ** 0.5))
    span = data.canvas / grid
    boxes = getattr(data, f"{split}_boxes")
    starts = torch.arange(grid) * span
    rows = (starts <= boxes[..., 2:3]) & (starts + span > boxes[..., 0:1])   # (n, 4, grid)
    cols = (starts <= boxes[..., 3:4]) & (starts + span > boxes[..., 1:2])
    return (rows[..., :, None] & cols[..., None, :]).flatten(2)


def map_measures(nl_maps: torch.Tensor, data, split: str = "test") -> dict:
    """What the block's maps (n, N, M) do with the queries on digits: the share of a query's
    weight (absolute weights, normalised per row) on its partner's keys, on its own digit's, and
    on the other pair's, averaged over those queries (a key that overlaps two digits' squares
    counts for both, so the three can add up to a little more than the weight on digits); and
    the row similarity (:func:`nlcourse.mapstats.row_similarity`) among the queries on digits,
    averaged over the canvases: 1 when they all weight the keys alike."""
    n = nl_maps.shape[0]
    cells = digit_cells(data, split=split)[:n]                   # (n, N): digit or -1
    keys = key_digits(data, nl_maps.shape[2], split=split)[:n].float()   # (n, 4, M)
    partners = getattr(data, f"{split}_partners")[:n]
    w = nl_maps.abs().double()
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-300)
    on_digit = w @ keys.double().transpose(1, 2)                # (n, N, 4): weight on each digit
    shares = {"partner": [], "own": [], "other_pair": []}
    similarity = []
    for k in range(n):
        queries = cells[k] >= 0
        d = cells[k][queries]
        mine = on_digit[k][queries]                             # (q, 4)
        partner = partners[k][d]
        pair = torch.stack([d, partner], 1)
        shares["partner"].append(mine.gather(1, partner[:, None]).mean())
        shares["own"].append(mine.gather(1, d[:, None]).mean())
        rest = mine.sum(1) - mine.gather(1, pair).sum(1)
        shares["other_pair"].append(rest.mean())
        similarity.append(row_similarity(nl_maps[k][queries][None].double())[0])
    out = {f"weight_on_{name}": torch.stack(v).mean().item() for name, v in shares.items()}
    out["row_similarity"] = torch.stack(similarity).mean().item()
    return out


def measure(net, data, device, n_maps: int = 200) -> dict:
    """What every run records beside its accuracy: the share of cells on digits that name their
    own digit's class where it differs from the partner's (looking at oneself), and, for a network
    with a block, :func:`map_measures` over the first ``n_maps`` test canvases."""
    cells = predictions(net, data.test_images, device).flatten(1)
    which = digit_cells(data)
    own = torch.gather(data.test_classes, 1, which.clamp_min(0))
    partner = data.test_labels.flatten(1)
    differ = (which >= 0) & (own != partner)
    out = {"own_class_rate": (cells == own)[differ].float().mean().item()}
    _, nl_maps = predictions(net, data.test_images[:n_maps], device, maps=True)
    if nl_maps is not None:
        out.update(map_measures(nl_maps, data))
    return out


LAB = Lab(name="partners", title="four digits in two pairs on 48 x 48 canvases: each digit's "
                                 "cells name its partner's class",
          pages=("notebooks/08_partners",),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="embedded_gaussian",
          settings=lambda model, budget: {"network": model},
          measure=measure)
