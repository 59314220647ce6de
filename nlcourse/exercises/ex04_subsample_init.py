"""Exercise 4: pool the right tensors; initialise W so that the block starts as the identity."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .. import pitfalls
from ..blocks import NonLocalBlock
from ._feedback import (CHECK_RNG, FAILED, Case, Feedback, call, confusable, describe, distinct,
                        guarded, name_leaves, run_cases, stub_left)

VIEW = "a .view that mixes channels"
W_REPLACED = "block.W replaced"
W_FROZEN = "W frozen"
W_ZERO = "W frozen at zero"
CONV_ZERO_GAMMA_ONE = "W zeroed with BN gamma left at 1"
NOT_IDENTITY = "a block that is not the identity"
OTHER_PARAMS = "parameters outside W changed"


def _tokens(t):
    return t.flatten(2).transpose(1, 2)


def draw_sizes(rng=None):
    """Two random sizes: batch above one, non-square even maps, and B, C, C', H, W all
    different."""
    rng = rng or CHECK_RNG
    out = []
    for ranges in (dict(B=(2, 3), C=(6, 6), Cp=(4, 5), H=(4, 5), W=(6, 7)),
                   dict(B=(4, 5), C=(10, 10), Cp=(3, 3), H=(7, 8), W=(3, 4))):
        for _ in range(1000):
            s = {k: rng.randint(lo, hi) for k, (lo, hi) in ranges.items()}
            s["H"], s["W"] = 2 * s["H"], 2 * s["W"]   # even sides: the pool keeps every pixel
            values = list(confusable(s).values())
            if len(set(values)) == len(values):
                break
        out.append(s)
    return out


def _project_case(size, k):
    torch.manual_seed(10 + k)
    block = NonLocalBlock(size["C"], inter_channels=size["Cp"]).double()
    gen = torch.Generator().manual_seed(20 + k)
    x = torch.randn(size["B"], size["C"], size["H"], size["W"], dtype=torch.float64,
                    generator=gen).requires_grad_()
    leaves = name_leaves(x=x) + [p for p in block.parameters()]
    for name, p in block.named_parameters():
        p._nl_name = f"block.{name}"
    passed = x.clone()
    view_why = ("x.view(B, -1, C) keeps the memory order, channel plane by channel plane, so each "
                "'position' mixes values of one channel; use x.flatten(2).transpose(1, 2)")

    def known():
        t_raw, p_raw, g_raw = block.theta(x), block.phi(x), block.g(x)
        pool = block.pool
        return {
            "theta pooled": ((_tokens(pool(t_raw)), None, None), "the queries are never pooled: "
                             "every one of the N input positions needs its own output y_i"),
            "phi not pooled": ((None, _tokens(p_raw), None), "the keys phi are max-pooled like "
                               "g; with N keys for the weights but M = N/4 values, the product "
                               "fails"),
            "g not pooled": ((None, None, _tokens(g_raw)), "g is pooled like phi: it holds one "
                             "value per key"),
            VIEW: ((pitfalls.tokens_by_view(t_raw), pitfalls.tokens_by_view(pool(p_raw)),
                    pitfalls.tokens_by_view(pool(g_raw))), view_why),
            "theta and phi swapped": ((_tokens(p_raw), _tokens(pool(t_raw)), None),
                                      "theta = block.theta(x) for the queries, phi = "
                                      "block.phi(x) for the keys"),
            "the input pooled instead of the embeddings": (
                (None, _tokens(block.phi(pool(x))), _tokens(block.g(pool(x)))),
                "the block pools phi(x) and g(x), after the 1x1 convolutions, not x before them "
                "(the official Caffe2 code does the latter; both are valid, but this block does "
                "the former)"),
            "average pooling instead of max pooling": (
                (None, _tokens(nn.functional.avg_pool2d(p_raw, 2)),
                 _tokens(nn.functional.avg_pool2d(g_raw, 2))), "use block.pool, a 2x2 max-pool"),
            "channels first (B, C', positions)": (
                (t_raw.flatten(2), pool(p_raw).flatten(2), pool(g_raw).flatten(2)),
                "token layout puts positions first and channels last: .transpose(1, 2)"),
        }

    return Case(args=(block, passed), watch={"x": (passed, x.detach().clone())}, leaves=leaves,
                reference=lambda: block.project(x), known=known, sizes=dict(size),
                where=f"at size {describe(size)}")


@guarded("Exercise 4a (sub-sampling)")
def check_projection(project) -> Feedback:
    """``project(block, x) -> (theta, phi, g)`` in token layout (B, positions, C'), keys pooled."""
    fb = Feedback("Exercise 4a (sub-sampling)")
    sizes = draw_sizes()
    cases = [_project_case(s, k) for k, s in enumerate(sizes)]
    if run_cases(fb, project, cases, ("theta", "phi", "g")):
        fb.good("theta keeps all N = H*W positions; phi and g are max-pooled to M = N/4 keys, "
                f"at {len(sizes)} random sizes ({'; '.join(describe(s) for s in sizes)})")
        fb.good("token layout (B, positions, C') with the channels of one position together; "
                "gradients reach x and every convolution")
    return fb.report()


def _randomised_block(C, Cp, seed):
    torch.manual_seed(seed)
    block = NonLocalBlock(C, inter_channels=Cp)
    with torch.no_grad():  # start from a W that is far from the identity
        for p in block.W.parameters():
            p.normal_(0, 1)
    return block


def init_size(rng=None):
    """C, C' and B of the identity check, all different."""
    return distinct(rng or CHECK_RNG, dict(C=(6, 10), Cp=(3, 5), B=(2, 4)))


@guarded("Exercise 4b (identity initialisation)")
def check_identity_init(init_identity) -> Feedback:
    """``init_identity(block)`` sets W (conv + BN) in place so that block(x) == x, and keeps it
    trainable."""
    fb = Feedback("Exercise 4b (identity initialisation)")
    if stub_left(fb, init_identity):
        return fb.report()
    size = init_size()
    C, Cp = size["C"], size["Cp"]
    block = _randomised_block(C, Cp, 0)
    W, conv, bn = block.W, block.W[0], block.W[1]
    others = {n: p.detach().clone() for n, p in block.named_parameters() if not n.startswith("W.")}
    if call(fb, init_identity, block, where="on a fresh block") is FAILED:
        return fb.report()
    if getattr(block, "W", None) is not W or not (isinstance(block.W, nn.Sequential) and len(block.W) == 2 and
                                block.W[0] is conv and block.W[1] is bn):
        fb.bad(f"block.W is no longer the block's own Sequential(conv, BatchNorm) (it is now "
               f"{type(getattr(block, 'W', None)).__name__}): change the parameters of the existing W in place "
               f"(e.g. torch.nn.init.zeros_(block.W[1].weight)); an optimizer built before "
               f"would still hold the old ones", mistake=W_REPLACED)
        return fb.report()
    changed = [n for n, p in block.named_parameters() if n in others and
               not torch.equal(p.detach(), others[n])]
    if changed:
        fb.bad(f"your function changed {', '.join(changed)}: only W needs to change (theta, phi "
               f"and g must keep their random weights, or the block has nothing to learn from)",
               mistake=OTHER_PARAMS)
        return fb.report()
    frozen = [n for n, p in block.W.named_parameters() if not p.requires_grad]
    if frozen:
        fb.bad(f"W's parameters {', '.join('W.' + n for n in frozen)} no longer require "
               f"gradients: a frozen W keeps the block switched off forever. Leave requires_grad "
               f"on", mistake=W_FROZEN)
        return fb.report()
    gamma, beta, weight = (t.detach().clone() for t in (bn.weight, bn.bias, conv.weight))
    # 1. the identity, at two sizes (non-square), in eval and in train mode
    gen = torch.Generator().manual_seed(5)
    for B, H, Wd in ((size["B"], 6, 10), (size["B"] + 3, 12, 4)):
        x = torch.randn(B, C, H, Wd, generator=gen)
        for mode in ("eval", "train"):
            state = copy.deepcopy(block.state_dict())
            getattr(block, mode)()
            with torch.no_grad():
                z = block(x)
            block.load_state_dict(state)  # a train-mode forward updates BN's running stats
            if not torch.allclose(z, x, atol=1e-6):
                err = (z - x).abs().max().item()
                if bool((gamma != 0).any()) and bool((weight != 0).any()):
                    why = "W's conv and BN's gamma are both non-zero, so W y is not zero"
                elif bool((beta != 0).any()):
                    why = "BN's beta (its bias) is not zero, so z = x + beta"
                else:
                    why = "W y is not zero for every y"
                fb.bad(f"block(x) != x in {mode} mode for x of shape {(B, C, H, Wd)} (largest "
                       f"|z - x| = {err:.3g}): {why}", mistake=NOT_IDENTITY)
                return fb.report()
    fb.good("block(x) == x at initialisation, in eval and train mode, at two sizes")
    # 2. trainable: one SGD step
    x, target = torch.randn(size["B"] + 1, C, 6, 8, generator=gen), torch.randn(
        size["B"] + 1, C, 6, 8, generator=gen)
    block.train()
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    ((block(x) - target) ** 2).mean().backward()
    grad_gamma = bn.weight.grad
    opt.step()
    with torch.no_grad():
        moved = ((block.eval()(x) - x).norm() / x.norm()).item()
    if bool((weight == 0).all()) and bool((gamma != 0).any()):
        fb.bad(f"the identity holds at step 0 only: after one SGD step ||z - x|| / ||x|| = "
               f"{moved:.2f}. Zeroing W's conv while BN's gamma stays non-zero is a known "
               f"mistake: the conv's gradient is not zero, and BN normalises its small new output "
               f"back to unit size. Zero BN's gamma (and beta) instead and keep the conv's random "
               f"weights", mistake=CONV_ZERO_GAMMA_ONE)
        return fb.report()
    if bool((weight == 0).all()) and bool((gamma == 0).all()):
        fb.bad("W's conv and BN's gamma are both zero and stay zero: BN normalises an all-zero "
               "input to zero, so no gradient ever reaches gamma, and through gamma = 0 none "
               "reaches the conv. The block can only learn BN's constant beta. Keep the conv's "
               "random weights; zero only gamma and beta", mistake=W_ZERO)
        return fb.report()
    if grad_gamma is None or bool((grad_gamma == 0).all()):
        fb.bad("no gradient reaches BN's gamma, so W can never switch on: keep the conv's "
               "weights random and non-zero", mistake=W_FROZEN)
        return fb.report()
    if moved > 0.1:
        fb.bad(f"after one SGD step ||z - x|| / ||x|| = {moved:.2f}: the block left the identity "
               f"at once; zero BN's gamma and beta so that it starts switched off",
               mistake=NOT_IDENTITY)
        return fb.report()
    fb.good(f"after one SGD step the block is still near the identity (||z - x|| / ||x|| = "
            f"{moved:.3f}) and W is learning (gamma receives a gradient)")
    return fb.report()
