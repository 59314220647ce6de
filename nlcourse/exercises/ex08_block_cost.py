"""Exercise 8: read the cost of a configuration, checked against nlcourse.cost."""

from __future__ import annotations

import math

from .. import cost
from ._feedback import _RNG, FAILED, NO_RETURN, WRONG_TYPE, Feedback, call, guarded

MODES = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")


def _variant(mode, shape, inter_channels, *, per_mac=2, batch=True, pool="floor", w_conv=True,
             convs=True, pairwise=True, gaussian_convs=False, swap_width=False, weighted=True,
             concat_width=2, default_cp=None):
    """The literal path's forward FLOPs with one assumption changed (the right answer with the
    defaults): what a learner computes when they make that one mistake."""
    B, C, H, W = shape
    Cp = inter_channels or (default_cp(C) if default_cp else max(C // 2, 1))
    N = H * W
    M = {"floor": (H // 2) * (W // 2), "none": N, "quarter": N / 4,
         "twice": (H // 4) * (W // 4)}[pool]
    conv = N * C * Cp * (1 if mode == "gaussian" and not gaussian_convs else 3) if convs else 0
    conv += N * Cp * C if (convs and w_conv) else 0
    d = C if (mode == "gaussian" or swap_width) else Cp
    if not pairwise:
        pair = 0
    elif mode == "concatenation":
        pair = N * M * concat_width * d + (N * M * Cp if weighted else 0)
    else:
        pair = N * M * d + (N * M * Cp if weighted else 0)
    return per_mac * (B if batch else 1) * (conv + pair)


MISTAKES = {
    "multiply-adds, not FLOPs": (dict(per_mac=1), "a multiply-add is two FLOPs, a multiplication "
                                 "and an addition: nlcourse.cost counts 2 per multiply-add"),
    "the batch forgotten": (dict(batch=False), "every image of the batch costs the same again: "
                            "multiply by B"),
    "no sub-sampling": (dict(pool="none"), "the block max-pools phi and g by 2 along each axis, so"
                        " M = (H // 2) * (W // 2) keys, not N"),
    "N / 4 instead of pooling each axis": (dict(pool="quarter"), "a 2x2 max-pool floors each "
                                           "axis: M = (H // 2) * (W // 2), which is N / 4 only "
                                           "for even H and W"),
    "pooled twice": (dict(pool="twice"), "the keys are pooled once, by 2 along each axis"),
    "W's convolution forgotten": (dict(w_conv=False), "W maps C' back to C at every position: "
                                  "N C' C multiply-adds"),
    "the convolutions forgotten": (dict(convs=False), "theta, phi, g and W are 1x1 convolutions "
                                   "at every position: N C C' multiply-adds each"),
    "the pairwise step forgotten": (dict(pairwise=False), "the literal path builds the N x M "
                                    "scores and multiplies them by g"),
    "theta and phi counted in Gaussian mode": (dict(gaussian_convs=True), "the Gaussian mode has"
                                               " no theta and phi: f works on x itself"),
    "the scores at the wrong width": (dict(swap_width=True), "theta . phi has C' terms per pair "
                                     "(C only in Gaussian mode, which uses x itself)"),
    "the weighted sum forgotten": (dict(weighted=False), "after the scores, y = f g costs "
                                   "N M C' more multiply-adds"),
    "the concatenation counted like the dot product": (
        dict(concat_width=1), "w^T [theta_i; phi_j] has 2C' terms per pair"),
    "C' taken as C": (dict(default_cp=lambda C: C), "inter_channels=None means C' = C // 2"),
}


def _configs():
    """Eight configurations, two per mode, drawn at random on each run: batch above one, C' given
    and defaulted, non-square maps, one with an odd side (so that pooling floors)."""
    out = []
    for k, mode in enumerate(MODES * 2):
        B = _RNG.randint(2, 5)
        C = 2 * _RNG.randint(4, 24)
        H, W = 2 * _RNG.randint(3, 10), 2 * _RNG.randint(3, 10)
        if H == W:
            W += 2
        if k in (1, 6):
            H += 1
        Cp = None if k % 3 == 0 else _RNG.randint(2, C - 1)
        if Cp is not None and Cp == C // 2:
            Cp += 1
        out.append((mode, (B, C, H, W), Cp))
    return out


@guarded("Exercise 8 (the cost of a configuration)")
def check_block_cost(fn) -> Feedback:
    """``fn(mode, shape, inter_channels) -> FLOPs`` of one forward pass of a 2-D NonLocalBlock
    (sub-sampled keys, the literal path that builds the N x M matrix), against
    ``nlcourse.cost.block_flops(..., fast=False)``."""
    fb = Feedback("Exercise 8 (the cost of a configuration)")
    configs = _configs()
    answers = []
    for mode, shape, Cp in configs:
        where = f"for mode={mode!r}, shape={shape}, inter_channels={Cp}"
        got = call(fb, fn, mode, shape, Cp, where=where)
        if got is FAILED:
            return fb.report()
        if got is None:
            fb.bad(f"your function returned None {where}: did you forget the `return`?",
                   mistake=NO_RETURN)
            return fb.report()
        if hasattr(got, "item") and getattr(got, "ndim", 1) == 0:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got):
            fb.bad(f"return one number of FLOPs {where}, got {type(got).__name__} {got!r:.60}",
                   mistake=WRONG_TYPE)
            return fb.report()
        answers.append(got)
    wants = [cost.block_flops(mode, shape, Cp, fast=False) for mode, shape, Cp in configs]
    wrong = [k for k, (got, want) in enumerate(zip(answers, wants)) if abs(got - want) >= 0.5]
    if not wrong:
        fb.good(f"the FLOPs match nlcourse.cost.block_flops(..., fast=False) for "
                f"{len(configs)} random configurations, two per mode, C' given and defaulted, "
                f"odd sides included")
        return fb.report()
    k = wrong[0]
    mode, shape, Cp = configs[k]
    where = f"for mode={mode!r}, shape={shape}, inter_channels={Cp}"
    # the mistake that explains the answers at EVERY configuration (one configuration alone can
    # fit two mistakes: for B = 2 a forgotten batch and a forgotten factor 2 agree; a mistake that
    # changes nothing in some mode, like theta and phi counted in Gaussian mode, predicts the
    # right count there)
    for name, (change, why) in MISTAKES.items():
        predicted = [_variant(*config, **change) for config in configs]
        if all(abs(got - p) < 0.5 for got, p in zip(answers, predicted)):
            fb.bad(f"{answers[k]:,.0f} FLOPs {where}, expected {wants[k]:,}: {why}",
                   mistake=name)
            return fb.report()
    ratio = answers[k] / wants[k] if wants[k] else math.inf
    fb.bad(f"{answers[k]:,.0f} FLOPs {where}, expected {wants[k]:,} (yours is {ratio:.3g} times "
           f"that; {len(wrong)} of {len(configs)} configurations differ). Count, for B images: "
           f"the 1x1 convolutions (N C C' each), the scores (N M C'), the weighted sum (N M C'), "
           f"with M = (H // 2) * (W // 2), and 2 FLOPs per multiply-add")
    return fb.report()
