"""Exercise 8: read the cost of a configuration, checked against nlcourse.cost.

The check asks for eight configurations drawn at random (two per pairwise function, odd and even
sides, odd and even channel counts, C' given and defaulted), and reads a wrong count through a
model of the count with each step changeable: a mistake is named when it explains the answers at
every configuration, alone or with one other; otherwise the answers are fitted term by term (the
convolutions, the scores, the weighted sum) to say which term is off and by how much."""

from __future__ import annotations

import itertools
import math

from .. import cost
from .._modes import MODES, pairwise_function
from ._feedback import CHECK_RNG, FAILED, Feedback, as_number, call, guarded, stub_left

POOLS = {  # the number of keys M from H and W, as learners compute it
    "floor": lambda H, W: (H // 2) * (W // 2),
    "none": lambda H, W: H * W,
    "quarter": lambda H, W: H * W / 4,
    "quarter_floor": lambda H, W: H * W // 4,
    "ceil": lambda H, W: ((H + 1) // 2) * ((W + 1) // 2),
    "precedence": lambda H, W: H // 2 * W // 2,
    "round": lambda H, W: round(H / 2) * round(W / 2),
    "twice": lambda H, W: (H // 4) * (W // 4),
}
DEFAULT_CP = {  # C' from C when inter_channels is None
    "floor": lambda C: max(C // 2, 1),
    "C": lambda C: C,
    "ceil": lambda C: (C + 1) // 2,
    "half": lambda C: C / 2,
}


def _variant(mode, shape, inter_channels, *, per_mac=2, batch=True, pool="floor", w_conv=True,
             convs=True, pairwise=True, gaussian_convs=False, score_width="right",
             weighted=True, sum_width="Cp", concat_width=2, default_cp="floor", use_cp=True,
             as_mode=None, residual=0):
    """The literal path's forward FLOPs with one assumption changed (the right answer with the
    defaults): what a learner computes when they make that one mistake."""
    f = pairwise_function(as_mode or mode)
    B, C, H, W = shape
    Cp = (inter_channels if use_cp else None) or DEFAULT_CP[default_cp](C)
    N = H * W
    M = POOLS[pool](H, W)
    conv = N * C * Cp * (3 if (f.embedded or gaussian_convs) else 1) if convs else 0
    conv += N * Cp * C if (convs and w_conv) else 0
    width = {"right": Cp if f.embedded else C, "C": C, "Cp": Cp}[score_width]
    if not pairwise:
        pair = 0
    else:
        pair = N * M * width * (concat_width if f.form == "concat" else 1)
        pair += N * M * (Cp if sum_width == "Cp" else C) if weighted else 0
    extra = residual * N * C / 2     # the residual's N C additions, as 1 or 2 FLOPs each
    return per_mac * (B if batch else 1) * (conv + pair + extra)


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
    "N // 4 instead of pooling each axis": (dict(pool="quarter_floor"), "a 2x2 max-pool floors "
                                            "each axis separately: M = (H // 2) * (W // 2), not "
                                            "(H W) // 4 (they differ when H and W are odd)"),
    "the pooled size rounded up": (dict(pool="ceil"), "MaxPool2d(2) drops an odd last row or "
                                   "column: M = (H // 2) * (W // 2), rounded down on each axis"),
    "H // 2 * W // 2 without brackets": (dict(pool="precedence"), "// and * bind equally and "
                                         "run left to right, so H // 2 * W // 2 is "
                                         "((H // 2) * W) // 2: write (H // 2) * (W // 2)"),
    "the pooled size from round(H / 2)": (dict(pool="round"), "Python's round() rounds half "
                                          "to even (round(3.5) = 4, round(2.5) = 2): the "
                                          "pool floors, (H // 2) * (W // 2)"),
    "the residual counted": (dict(residual=1), "the task leaves out additions that are not "
                             "part of a multiply-add: the residual x + W y among them"),
    "the residual counted as multiply-adds": (dict(residual=2), "the residual x + W y is N C "
                                              "additions, which the task leaves out"),
    "pooled twice": (dict(pool="twice"), "the keys are pooled once, by 2 along each axis"),
    "W's convolution forgotten": (dict(w_conv=False), "W maps C' back to C at every position: "
                                  "N C' C multiply-adds"),
    "the convolutions forgotten": (dict(convs=False), "theta, phi, g and W are 1x1 convolutions "
                                   "at every position: N C C' multiply-adds each"),
    "the pairwise step forgotten": (dict(pairwise=False), "the literal path builds the N x M "
                                    "scores and multiplies them by g"),
    "theta and phi counted in Gaussian mode": (dict(gaussian_convs=True), "the Gaussian mode has"
                                               " no theta and phi: f works on x itself"),
    "the scores at the wrong width": (dict(score_width="C"), "theta . phi has C' terms per pair "
                                      "(C only in Gaussian mode, which uses x itself)"),
    "the Gaussian's scores at width C'": (dict(score_width="Cp"), "in Gaussian mode f compares x"
                                          " itself: each score is a dot product of length C"),
    "the weighted sum forgotten": (dict(weighted=False), "after the scores, y = f g costs "
                                   "N M C' more multiply-adds"),
    "the weighted sum at width C": (dict(sum_width="C"), "g has C' channels, so y = f g costs "
                                    "N M C' multiply-adds; W brings C' back to C afterwards"),
    "the concatenation counted like the dot product": (
        dict(concat_width=1), "w^T [theta_i; phi_j] has 2C' terms per pair"),
    "C' taken as C": (dict(default_cp="C"), "inter_channels=None means C' = C // 2"),
    "C' rounded up": (dict(default_cp="ceil"), "the block's default C' is C // 2, rounded down "
                      "for an odd C ((C + 1) // 2 rounds up)"),
    "C' as C / 2, not C // 2": (dict(default_cp="half"), "a channel count is an integer: C // "
                                "2 for an odd C, not C / 2"),
    "inter_channels ignored": (dict(use_cp=False), "when inter_channels is given, C' is that "
                               "number, not C // 2"),
    "the mode ignored": (dict(as_mode="embedded_gaussian"), "the four pairwise functions cost "
                         "differently: no theta and phi in Gaussian mode (scores of width C), "
                         "2C' per score for the concatenation"),
}


def draw_configs(rng=None) -> list[tuple]:
    """Eight configurations, two per mode, drawn at random on each run: batch above one, C' given
    (four) and defaulted (four, two of them with an odd C), sides odd and even in every pattern
    (so that pooling floors and H // 2 * W // 2 shows), and within each configuration B, C, C',
    H, W, N and M all different."""
    rng = rng or CHECK_RNG
    parity = [(0, 1), (1, 0), (1, 1), (0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]  # (H, W) odd?
    odd_c = {0, 5}                                   # defaulted C' (k even) with an odd C
    out = []
    for k, mode in enumerate(MODES * 2):
        for _ in range(1000):
            B = rng.randint(2, 5)
            C = 2 * rng.randint(4, 24) + (1 if k in odd_c else 0)
            H = 2 * rng.randint(3, 10) + parity[k][0]
            W = 2 * rng.randint(3, 10) + parity[k][1]
            Cp = None if k % 2 == 0 else rng.randint(2, C - 1)
            effective = Cp or C // 2
            values = [B, C, effective, H, W, H * W, (H // 2) * (W // 2)]
            if (len(set(values)) == len(values) and H != W
                    and (Cp is None or Cp not in (C // 2, (C + 1) // 2))):
                break
        out.append((mode, (B, C, H, W), Cp))
    return out


def confusable(config) -> dict:
    """The quantities of one configuration a learner could confuse (kept pairwise different)."""
    mode, (B, C, H, W), Cp = config
    return {"B": B, "C": C, "C'": Cp or C // 2, "H": H, "W": W, "N": H * W,
            "M": (H // 2) * (W // 2)}


def _explains(answers, configs, change):
    return all(abs(got - _variant(*config, **change)) < 0.5
               for got, config in zip(answers, configs))


TERMS = ("the convolutions", "the scores", "the weighted sum")


def _terms(mode, shape, inter_channels):
    """Each term of the right count, in FLOPs (the defaults of :func:`_variant`)."""
    f = pairwise_function(mode)
    B, C, H, W = shape
    Cp = inter_channels or max(C // 2, 1)
    N, M = H * W, (H // 2) * (W // 2)
    width = (Cp if f.embedded else C) * (2 if f.form == "concat" else 1)
    return [2 * B * t for t in (N * C * Cp * (4 if f.embedded else 2), N * M * width,
                                N * M * Cp)]


def term_fit(answers, configs):
    """Fit the answers as a sum of the right count's terms, each times a small factor (0, 1/2,
    1, 2, 3 or 4), the fit with the fewest terms off first: {term: factor} for the terms that
    are off, or None when no such fit explains every configuration."""
    rows = [_terms(*config) for config in configs]
    choices = (0, 0.5, 1, 2, 3, 4)
    fits = sorted(itertools.product(choices, repeat=len(TERMS)),
                  key=lambda fs: sum(f != 1 for f in fs))
    for factors in fits:
        if all(abs(sum(f * t for f, t in zip(factors, row)) - got) < 0.5
               for row, got in zip(rows, answers)):
            return {name: f for name, f in zip(TERMS, factors) if f != 1} or None
    return None


def _say_factor(term, factor):
    if factor == 0:
        return f"{term} left out"
    if factor == 0.5:
        return f"{term} at half its cost (one FLOP per multiply-add?)"
    return f"{term} counted {factor:g} times"


@guarded("Exercise 8 (the cost of a configuration)")
def check_block_cost(fn) -> Feedback:
    """``fn(mode, shape, inter_channels) -> FLOPs`` of one forward pass of a 2-D NonLocalBlock
    (sub-sampled keys, the literal path that builds the N x M matrix), against
    ``nlcourse.cost.block_flops(..., fast=False)``."""
    fb = Feedback("Exercise 8 (the cost of a configuration)")
    configs = draw_configs()
    answers = []
    for mode, shape, Cp in configs:
        where = f"for mode={mode!r}, shape={shape}, inter_channels={Cp}"
        got = call(fb, fn, mode, shape, Cp, where=where)
        if got is FAILED or (got is None and stub_left(fb, fn)):
            return fb.report()
        got = as_number(fb, got, "the number of FLOPs", where)
        if got is None:
            return fb.report()
        answers.append(got)
    wants = [cost.block_flops(mode, shape, Cp, fast=False) for mode, shape, Cp in configs]
    wrong = [k for k, (got, want) in enumerate(zip(answers, wants)) if abs(got - want) >= 0.5]
    if not wrong:
        fb.good(f"the FLOPs match nlcourse.cost.block_flops(..., fast=False) for "
                f"{len(configs)} random configurations, two per mode, C' given and defaulted, "
                f"odd sides and odd channel counts included")
        return fb.report()
    k = wrong[0]
    mode, shape, Cp = configs[k]
    where = f"for mode={mode!r}, shape={shape}, inter_channels={Cp}"
    head = f"{answers[k]:,.0f} FLOPs {where}, expected {wants[k]:,}"
    # a mistake that explains the answers at EVERY configuration (one configuration alone can fit
    # two mistakes: for B = 2 a forgotten batch and a forgotten factor 2 agree), alone or with one
    # other mistake
    for name, (change, why) in MISTAKES.items():
        if _explains(answers, configs, change):
            fb.bad(f"{head}: {why}", mistake=name)
            return fb.report()
    for (a, (ca, wa)), (b, (cb, wb)) in itertools.combinations(MISTAKES.items(), 2):
        if set(ca) & set(cb):
            continue
        if _explains(answers, configs, {**ca, **cb}):
            fb.bad(f"{head}: two mistakes together, {a} ({wa}) and {b} ({wb})", mistake=a)
            fb.mistakes.append(b)
            return fb.report()
    off = term_fit(answers, configs)
    if off is not None:
        said = "; ".join(_say_factor(term, f) for term, f in off.items())
        fb.bad(f"{head}. Term by term, your counts fit the right ones with {said}. Each term: "
               f"the 1x1 convolutions N C C' multiply-adds each (theta, phi, g, W; no theta and "
               f"phi in Gaussian mode), the scores N M times their width, the weighted sum "
               f"N M C', all at 2 FLOPs per multiply-add",
               mistake="a term counted wrongly")
        fb.mistakes.extend(_say_factor(term, f) for term, f in off.items())
        return fb.report()
    ratio = answers[k] / wants[k] if wants[k] else math.inf
    odd = [j for j in wrong if configs[j][1][2] % 2 or configs[j][1][3] % 2
           or (configs[j][2] is None and configs[j][1][1] % 2)]
    hint = (" Every configuration that differs has an odd side or an odd C: check how you "
            "round M = (H // 2) * (W // 2) and C' = C // 2." if odd == wrong else "")
    fb.bad(f"{head} (yours is {ratio:.3g} times that; {len(wrong)} of {len(configs)} "
           f"configurations differ).{hint} Count, for B images: the 1x1 convolutions (N C C' "
           f"each), the scores (N M C'), the weighted sum (N M C'), with M = (H // 2) * (W // 2),"
           f" and 2 FLOPs per multiply-add")
    return fb.report()
