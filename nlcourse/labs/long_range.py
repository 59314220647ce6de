"""A dense task that a 3-layer stack of convolutions cannot reach across and one non-local
block can.

One MNIST digit at a random place on a 64 x 64 canvas; the target of every cell of the 16 x 16
output grid is that digit's class (:func:`nlcourse.data.long_range_canvas`). The baseline is
:class:`~nlcourse.models.LongRangeNet` without a block; the others add one block of each mode,
and ``dilated`` adds three dilated convolutions instead, whose receptive field covers the canvas
(the convolutional network that can reach; :data:`nlcourse.models.CANVAS_DILATIONS`).
"""

from __future__ import annotations

import torch

from .._modes import MODES, NO_BLOCK
from ..budget import Budget, table
from ..data import cell_distances, load_mnist, long_range_canvas
from ..models import CANVAS_DILATIONS, LongRangeNet, receptive_field
from .lab import Lab, check_model

__all__ = ["LAB", "MODELS", "BUDGETS", "NETWORKS", "build", "load_data", "cell_accuracy",
           "cell_predictions"]

#: The network that is not LongRangeNet with a block of one pairwise function, or none.
NETWORKS = {"dilated": {"dilations": CANVAS_DILATIONS}}
MODELS = (NO_BLOCK, *MODES, *NETWORKS)

BUDGETS = table("canvases", smoke=dict(epochs=1, batch_size=64, train_size=512, test_size=256),
                quick=dict(epochs=2, batch_size=64, train_size=10_000, test_size=2_000),
                full=dict(epochs=5, batch_size=64, train_size=60_000, test_size=10_000))


def build(model: str, **options) -> LongRangeNet:
    """LongRangeNet with one block of the pairwise function ``model``, none for ``"none"``, or
    the dilated convolutions and no block for ``"dilated"``."""
    check_model(model, MODELS, "long_range")
    return LongRangeNet(None if model in NETWORKS else model, **NETWORKS.get(model, {}),
                        **options)


def load_data(budget: Budget):
    """The budget's canvases (always the same ones for a budget: the data seed is fixed)."""
    return long_range_canvas(load_mnist(), budget.train_size, budget.test_size, seed=0)


@torch.no_grad()
def cell_predictions(net, images, device=None, batch: int = 256):
    """The class predicted at every output cell: (n, 16, 16)."""
    device = device or next(net.parameters()).device
    net.eval()
    return torch.cat([net(images[i:i + batch].to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch)])


def cell_accuracy(net, data, device=None, reach: float | None = None) -> dict:
    """Share of test cells right, within the baseline's reach and beyond it: a cell is beyond when
    its centre lies more than ``reach`` pixels (half the baseline's receptive field, by default)
    from every pixel of the digit's ink."""
    if reach is None:
        reach = receptive_field(LongRangeNet(None).features)[0] / 2
    grid = data.canvas // data.stride
    distance = cell_distances(data.test_boxes, grid=grid, stride=data.stride)
    correct = cell_predictions(net, data.test_images, device) == data.test_labels
    far = distance > reach
    return {"near_accuracy": correct[~far].float().mean().item(),
            "far_accuracy": correct[far].float().mean().item(),
            "far_share": far.float().mean().item(), "reach_pixels": reach}


LAB = Lab(name="long_range", title="a dense task on 64 x 64 canvases where one block matters",
          pages=("notebooks/05_long_range",),
          models=MODELS, budgets=BUDGETS, build=build, load_data=load_data,
          default_model="embedded_gaussian",
          settings=lambda model, budget: ({"mode": NO_BLOCK, "network": model} if model in NETWORKS
                                          else {"mode": model}),
          measure=lambda net, data, device: cell_accuracy(net, data, device))
