"""Exercise 4: pool the right tensors; initialise W so that the block starts as the identity."""

from __future__ import annotations

import torch

from .. import pitfalls
from ..blocks import NonLocalBlock
from ._feedback import Feedback, call, diagnose


def _tokens(t):
    return t.flatten(2).transpose(1, 2)


def check_projection(project) -> Feedback:
    """``project(block, x) -> (theta, phi, g)`` in token layout (B, positions, C'), keys pooled."""
    fb = Feedback("Exercise 4a (sub-sampling)")
    torch.manual_seed(0)
    block = NonLocalBlock(6, inter_channels=4).double()
    x = torch.randn(2, 6, 6, 8, dtype=torch.float64)
    out = call(fb, project, block, x)
    if out is None:
        return fb.report()
    if not (isinstance(out, tuple) and len(out) == 3):
        fb.bad(f"return a tuple (theta, phi, g), got {type(out).__name__}")
        return fb.report()
    theta, phi, g = out
    t_ref, p_ref, g_ref = block.project(x)
    t_raw, p_raw, g_raw = block.theta(x), block.phi(x), block.g(x)
    view_why = ("x.view(B, -1, C) keeps the memory order, channel plane by channel plane, so each "
                "'position' mixes values of one channel; use x.flatten(2).transpose(1, 2)")
    checks = [
        ("theta", theta, t_ref, {
            "theta pooled": (_tokens(block.pool(t_raw)), "the queries are never pooled: every one "
                             "of the N input positions needs its own output y_i"),
            "a .view that mixes channels": (pitfalls.tokens_by_view(t_raw), view_why)}),
        ("phi", phi, p_ref, {
            "phi not pooled": (_tokens(p_raw), "the keys phi are max-pooled exactly like g; with "
                               "N keys for the weights but M = N/4 values, the product fails"),
            "a .view that mixes channels": (pitfalls.tokens_by_view(block.pool(p_raw)), view_why)}),
        ("g", g, g_ref, {
            "g not pooled": (_tokens(g_raw), "g is pooled like phi: it holds one value per key"),
            "a .view that mixes channels": (pitfalls.tokens_by_view(block.pool(g_raw)), view_why)}),
    ]
    for name, answer, expected, known in checks:
        if not diagnose(fb, answer, expected, known, name):
            return fb.report()
    fb.good("theta keeps all N = 48 positions; phi and g are pooled to M = 12 keys")
    fb.good("token layout (B, positions, C') with the channels of one position together")
    return fb.report()


def check_identity_init(init_identity) -> Feedback:
    """``init_identity(block)`` sets W (conv + BN) so that block(x) == x, and keeps it trainable."""
    fb = Feedback("Exercise 4b (identity initialisation)")
    torch.manual_seed(0)
    block = NonLocalBlock(8)
    with torch.no_grad():  # start from a W that is far from the identity
        for p in block.W.parameters():
            p.normal_(0, 1)
    if call(fb, init_identity, block) is None and not fb.ok:
        return fb.report()
    x, target = torch.randn(4, 8, 6, 6), torch.randn(4, 8, 6, 6)
    with torch.no_grad():
        z = block.eval()(x)
    if not torch.allclose(z, x):
        fb.bad(f"block(x) != x after your initialisation (largest |z - x| = "
               f"{(z - x).abs().max().item():.3g}): W y must be exactly 0 for every y")
        return fb.report()
    fb.good("block(x) == x at initialisation")
    conv_zero = bool(torch.all(block.W[0].weight == 0))
    gamma_on = bool(torch.all(block.W[1].weight != 0))
    block.train()
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    ((block(x) - target) ** 2).mean().backward()
    opt.step()
    with torch.no_grad():
        moved = ((block.eval()(x) - x).norm() / x.norm()).item()
    if conv_zero and gamma_on:
        fb.bad(f"the identity holds at step 0 only: after one SGD step ||z - x|| / ||x|| = "
               f"{moved:.2f}. Zeroing W's conv while BN's gamma stays non-zero is a known mistake: "
               f"the conv's gradient is not zero, and BN normalises its small new output back to "
               f"unit size. Zero BN's gamma (and beta) instead and keep the conv's random weights",
               mistake="W zeroed with BN gamma left at 1")
        return fb.report()
    conv, gamma = block.W[0].weight, block.W[1].weight
    if torch.count_nonzero(conv) == 0 and torch.count_nonzero(gamma) == 0:
        fb.bad("W's conv and BN's gamma are both zero and stay zero: BN normalises an all-zero "
               "input to zero, so no gradient ever reaches gamma, and through gamma = 0 none "
               "reaches the conv. The block can only learn BN's constant beta, never anything "
               "that depends on y. Keep the conv's random weights; zero only gamma and beta",
               mistake="W frozen at zero")
        return fb.report()
    if moved > 0.1:
        fb.bad(f"after one SGD step ||z - x|| / ||x|| = {moved:.2f}: the block left the identity "
               f"at once; zero BN's gamma and beta so that it starts switched off")
        return fb.report()
    fb.good(f"after one SGD step the block is still near the identity (||z - x|| / ||x|| = "
            f"{moved:.3f}) and W is learning")
    return fb.report()
