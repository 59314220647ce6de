"""Exercise 6: put a non-local block into a small CNN, train it, and report the change."""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import NonLocalBlock
from ._feedback import (DETACHED, EMPTY, FAILED, INTEGER, NO_RETURN, NOT_FINITE, WRONG_TYPE,
                        Feedback, call, guarded)

NO_BLOCK = "no block inserted"
BLOCK_UNUSED = "a block that is never called"
DOUBLE_RESIDUAL = "a double residual"
CONV_ZERO_GAMMA_ONE = "W zeroed with BN gamma left at 1"
NOT_IDENTITY = "a block that is not the identity at initialisation"
OUTPUT_CHANGED = "an output that differs from the network without the block"


def _inspect_blocks(fb: Feedback, blocks) -> bool:
    for k, b in enumerate(blocks):
        W = b.W
        if isinstance(W, nn.Sequential) and len(W) == 2 and isinstance(W[1], nn.modules.batchnorm
                                                                       ._BatchNorm):
            conv_zero = bool((W[0].weight == 0).all())
            gamma_on = bool((W[1].weight != 0).any())
            if conv_zero and gamma_on:
                fb.bad(f"block {k}: W's conv is zero while BN's gamma is not: the block is the "
                       f"identity at step 0 only (after one SGD step the conv is non-zero and BN "
                       f"scales its output back to unit size). Zero BN's gamma and beta instead "
                       f"(NonLocalBlock does this by default)", mistake=CONV_ZERO_GAMMA_ONE)
                return False
    return True


@guarded("Exercise 6 (a block in a CNN)")
def check_insert_block(make_model, base=None) -> Feedback:
    """``make_model()`` returns the CNN with at least one NonLocalBlock inserted; ``base()`` (if
    given) the same CNN without it, whose parameters the check copies in by name to compare
    the two networks' outputs at initialisation."""
    fb = Feedback("Exercise 6 (a block in a CNN)")
    torch.manual_seed(0)
    model = call(fb, make_model, where="when building the model")
    if model is FAILED:
        return fb.report()
    if not isinstance(model, nn.Module):
        fb.bad(f"make_model() should return an nn.Module, got {type(model).__name__}",
               mistake=NO_RETURN if model is None else WRONG_TYPE)
        return fb.report()
    blocks = [m for m in model.modules() if isinstance(m, NonLocalBlock)]
    if not blocks:
        fb.bad("the model holds no nlcourse.NonLocalBlock: insert one between two conv stages",
               mistake=NO_BLOCK)
        return fb.report()
    fb.good(f"{len(blocks)} non-local block(s): " + ", ".join(
        f"{b.mode} on {b.in_channels} channels" for b in blocks))
    if not _inspect_blocks(fb, blocks):
        return fb.report()
    seen = {}

    def hook(module, inputs, output):
        seen[module] = (inputs[0].detach(), output.detach() if isinstance(output, torch.Tensor)
                        else output[0].detach())
    handles = [b.register_forward_hook(hook) for b in blocks]
    gen = torch.Generator().manual_seed(1)
    outputs = {}
    for B in (3, 5):
        x = torch.rand(B, 1, 28, 28, generator=gen)
        out = call(fb, model.eval(), x, where=f"on a batch of {B} images")
        if out is FAILED:
            return fb.report()
        if out is None:
            fb.bad("the model's forward returned None: did forward() forget its `return`?",
                   mistake=NO_RETURN)
            return fb.report()
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (B, 10):
            fb.bad(f"the output should be (batch, 10) logits, got "
                   f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}"
                   f" for a batch of {B}", mistake=EMPTY if isinstance(out, torch.Tensor) and
                   out.numel() == 0 else WRONG_TYPE)
            return fb.report()
        if not out.is_floating_point():
            fb.bad(f"the logits have dtype {out.dtype}, an integer type: the network's output "
                   f"must stay floating-point (no .long(), round or argmax in forward)",
                   mistake=INTEGER)
            return fb.report()
        if not bool(torch.isfinite(out).all()):
            fb.bad(f"the logits hold NaN or infinity for a batch of {B} random images: a "
                   f"division by zero or an overflow in forward", mistake=NOT_FINITE)
            return fb.report()
        outputs[B] = (x, out.detach())
    for h in handles:
        h.remove()
    unused = [k for k, b in enumerate(blocks) if b not in seen]
    if unused:
        fb.bad(f"block(s) {unused} are defined in __init__ but forward() never calls them",
               mistake=BLOCK_UNUSED)
        return fb.report()
    for k, b in enumerate(blocks):
        h, z = seen[b]
        if not torch.allclose(z, h, atol=1e-6):
            fb.bad(f"block {k} is not the identity at initialisation (largest |z - x| = "
                   f"{(z - h).abs().max().item():.3g}): a fresh block must leave its input "
                   f"unchanged (BN gamma = beta = 0), so that inserting it does not disturb the "
                   f"network", mistake=NOT_IDENTITY)
            return fb.report()
    fb.good("each block is the identity at initialisation")
    if base is not None:
        reference = call(fb, base, where="when building the network without the block")
        if reference is FAILED:
            return fb.report()
        own = model.state_dict()
        wanted = reference.state_dict()
        if all(k in own and own[k].shape == v.shape for k, v in wanted.items()):
            reference.load_state_dict({k: own[k] for k in wanted})
            x, out = outputs[5]
            with torch.no_grad():
                plain = reference.eval()(x)
            if not torch.allclose(out, plain, atol=1e-5):
                # If the blocks' outputs were zero, would the network compute the plain one? Then
                # something adds the block's input to its output again: a double residual.
                zeroed = [b.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
                          for b in blocks]
                with torch.no_grad():
                    try:
                        zero_out = model(x)
                    except Exception:  # noqa: BLE001 (a model that cannot run zeroed: no verdict)
                        zero_out = None
                for h in zeroed:
                    h.remove()
                diff = (out - plain).abs().max().item()
                if isinstance(zero_out, torch.Tensor) and zero_out.shape == plain.shape and \
                        torch.allclose(zero_out, plain, atol=1e-5):
                    fb.bad(f"each block is the identity, yet the network's output differs from "
                           f"the same network without the block (largest difference {diff:.3g})"
                           f": the block's input is added to its output again. NonLocalBlock "
                           f"already adds the residual (z = W y + x); x + block(x) counts x "
                           f"twice", mistake=DOUBLE_RESIDUAL)
                else:
                    fb.bad(f"each block is the identity, yet the network's output differs from "
                           f"the same network without the block (largest difference {diff:.3g})"
                           f": the code around the block changes what the network computes (an "
                           f"extra operation, a scaled residual, a softmax on the logits?). "
                           f"Insert the block and change nothing else", mistake=OUTPUT_CHANGED)
                return fb.report()
            fb.good("the untrained network's output equals that of the network without the "
                    "block, with the same weights")
        else:
            fb.note("the model's parameter names differ from the base network's, so the two "
                    "outputs were not compared")
    model.train()
    x = outputs[5][0]
    out = call(fb, model, x, where="in train mode")
    if out is FAILED:
        return fb.report()
    if not out.requires_grad:
        fb.bad("the model's output carries no gradient: is part of forward() under "
               "torch.no_grad() or detached?", mistake=DETACHED)
        return fb.report()
    try:
        torch.nn.functional.cross_entropy(out, torch.arange(5) % 10).backward()
    except Exception as err:  # the learner's forward broke the backward pass
        fb.bad(f"the backward pass failed: {type(err).__name__}: {str(err).splitlines()[0]}",
               mistake=DETACHED)
        return fb.report()
    if any(b.W[1].weight.grad is None or torch.count_nonzero(b.W[1].weight.grad) == 0
           for b in blocks if isinstance(b.W, nn.Sequential)):
        fb.bad("no gradient reaches a block's W (BN gamma): is the block's output detached, "
               "computed under torch.no_grad(), or not used downstream?", mistake=DETACHED)
        return fb.report()
    fb.good("gradients reach the blocks' W, so training can switch them on")
    return fb.report()
