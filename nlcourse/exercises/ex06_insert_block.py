"""Exercise 6: put a non-local block into a small CNN, train it, and report the change."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..blocks import NonLocalBlock
from ._feedback import Feedback, call


def check_insert_block(make_model) -> Feedback:
    """``make_model()`` returns the CNN with at least one NonLocalBlock inserted."""
    fb = Feedback("Exercise 6 (a block in a CNN)")
    model = call(fb, make_model)
    if model is None:
        return fb.report()
    blocks = [m for m in model.modules() if isinstance(m, NonLocalBlock)]
    if not blocks:
        fb.bad("the model holds no nlcourse.NonLocalBlock: insert one between two conv stages")
        return fb.report()
    fb.good(f"{len(blocks)} non-local block(s): " + ", ".join(
        f"{b.mode} on {b.in_channels} channels" for b in blocks))
    x = torch.rand(4, 1, 28, 28)
    out = call(fb, model.eval(), x)
    if out is None:
        return fb.report()
    if tuple(out.shape) != (4, 10):
        fb.bad(f"the output should be (batch, 10) logits, got {tuple(out.shape)}")
        return fb.report()
    without = copy.deepcopy(model)
    for name, module in list(without.named_modules()):
        if isinstance(module, NonLocalBlock):
            parent = without.get_submodule(name.rsplit(".", 1)[0]) if "." in name else without
            setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())
    with torch.no_grad():
        same = torch.allclose(model(x), without.eval()(x))
    if not same:
        fb.bad("the model's output changes when the blocks are removed: a fresh block must be the "
               "identity (BN gamma = 0), so that inserting it does not disturb the network")
    else:
        fb.good("inserting the block(s) leaves the untrained network's output unchanged")
    model.train()
    model(x).sum().backward()
    if all(p.grad is None or torch.count_nonzero(p.grad) == 0 for b in blocks
           for p in b.W.parameters()):
        fb.bad("no gradient reaches the blocks' W: is the block's output used downstream?")
    else:
        fb.good("gradients reach the blocks' W, so training can switch them on")
    return fb.report()
