"""Exercise 10: top-k attention, an efficient variant, with a bound on its error that needs only
the k + 1 largest scores."""

from __future__ import annotations

import torch

from ._feedback import (CHECK_RNG, HARDCODED, Feedback, confusable, describe, distinct, guarded,
                        run_cases, token_case)

NAMES = ("y", "bound")
NOT_RENORMALISED = "the top-k weights not renormalised"


def topk_reference(theta, phi, g, k, *, bound_from="next", count=True, two=True, cap=True,
                   per_item=True, renormalise=True, largest=True, dim=-1, exact=False,
                   k_used=None, count_from="k", fill="-inf", lse_over="top"):
    """y from the k largest scores of each query (softmax over those), and the bound
    2 max|g| min(1, (M - k) exp(s_(k+1) - logsumexp(top k))) on max_c |y_full - y|, per query.
    The keyword arguments make one known mistake each (the defaults are right)."""
    scores = theta @ phi.transpose(1, 2)                         # (B, N, M)
    M = scores.shape[-1]
    k = k if k_used is None else k_used
    if dim != -1:
        keep = scores.topk(k, dim=1, largest=largest).indices
        mask = torch.full_like(scores, float("-inf")).scatter(1, keep, 0.0)
    else:
        keep = scores.topk(k, dim=-1, largest=largest).indices
        mask = torch.full_like(scores, float("-inf")).scatter(-1, keep, 0.0)
    if fill == "zero":  # the dropped scores set to 0: exp(0) = 1 still weighs them
        weights = torch.softmax(scores.masked_fill(mask != 0, 0.0), dim=-1)
    elif renormalise:
        weights = torch.softmax(scores + mask, dim=-1)
    else:
        weights = torch.softmax(scores, dim=-1) * (mask == 0)
    y = weights @ g
    top = scores.topk(k + 1, dim=-1).values                       # sorted, largest first
    lse = (top[..., 0] if lse_over == "max" else
           torch.logsumexp(top[..., :k] if lse_over == "top" else scores, dim=-1))
    if bound_from == "after_next":
        top = scores.topk(k + 2, dim=-1).values
    edge = top[..., {"next": k, "kth": k - 1, "after_next": k + 1}[bound_from]]
    left_out = {"k": M - k, "k+1": M - k - 1, "M": M}[count_from]
    ratio = (left_out if count else 1) * torch.exp(edge - lse)
    if exact:
        full = torch.softmax(scores, dim=-1)
        ratio = (full * (mask != 0)).sum(-1)
    if cap:
        ratio = ratio.clamp(max=1.0)
    gmax = g.abs().amax(dim=(1, 2)) if per_item else g.abs().amax().expand(g.shape[0])
    bound = (2 if two else 1) * gmax[:, None] * ratio
    return y, bound


def _known(theta, phi, g, k):
    def run(**change):
        try:
            return topk_reference(theta, phi, g, k, **change)
        except RuntimeError:  # a mistake that cannot run at this size (k > N over the queries)
            return None, None
    bound = {  # the bound's mistakes first: they leave y right
        "the k-th score instead of the (k+1)-th": (
            (None, run(bound_from="kth")[1]), "every key left out scores at most s_(k+1), the "
            "largest score NOT kept: the k-th score is kept, and gives a looser bound"),
        "the (k+2)-th score instead of the (k+1)-th": (
            (None, run(bound_from="after_next")[1]), "the largest score left out is s_(k+1), "
            "the first one after the k kept: the bound must use it, or it may not hold",
            "the bound from the wrong order statistic"),
        "(M - k) forgotten": ((None, run(count=False)[1]), "there are M - k keys left out, each "
                              "with weight at most exp(s_(k+1) - logsumexp(top k))"),
        "M - k - 1 keys left out": ((None, run(count_from="k+1")[1]), "the keys left out are "
                                    "all but the k kept: M - k of them, s_(k+1) included",
                                    "the count of left-out keys off by one"),
        "M keys instead of M - k": ((None, run(count_from="M")[1]), "only the M - k keys not "
                                    "kept add to the error", "the count of left-out keys off by "
                                    "one"),
        "the factor 2 forgotten": ((None, run(two=False)[1]), "y_full - y = p_out (mean of the "
                                   "left-out values - y): each coordinate of the bracket can be "
                                   "up to 2 max|g|"),
        "the bound not capped at 1": ((None, run(cap=False)[1]), "the left-out mass p_out is at "
                                      "most 1, so min(1, ...) keeps the bound meaningful"),
        "max |g| over the whole batch": ((None, run(per_item=False)[1]), "each batch item has its"
                                         " own values g: take max |g| per item"),
        "the largest score instead of the logsumexp": (
            (None, run(lse_over="max")[1]), "the left-out weight is exp(s_(k+1)) over the SUM "
            "of the kept exp(s): logsumexp(top k), not the largest kept score alone"),
        "the logsumexp over every key": (
            (None, run(lse_over="all")[1]), "the bound divides by the kept keys' mass, "
            "logsumexp over the top k only; over all M keys it needs the full softmax's sum"),
        "the bound from the full softmax": (
            (None, run(exact=True)[1]), "this uses the full softmax, which top-k exists to "
            "avoid: bound it from the (k+1)-th score alone"),
    }
    weights = {
        NOT_RENORMALISED: (run(renormalise=False), "keep the top-k scores and take the softmax "
                           "over them (the others at -inf), so that the kept weights sum to 1"),
        "the dropped scores set to 0, not -inf": (
            run(fill="zero"), "a dropped score of 0 still gets exp(0) = 1 in the softmax: set "
            "the dropped scores to -inf so that their weight is exactly 0"),
        "the k smallest scores": (run(largest=False), "topk(..., largest=True) keeps the LARGEST"),
        "top-k over the queries": (run(dim=1), "each query keeps its own k largest keys: topk "
                                   "along dim=-1"),
    }
    fixed = {f"k = {other} instead of the argument k = {k}": (
        (run(k_used=other)[0], None), "take k from the argument: the check passes a different k "
        "at each size", HARDCODED) for other in range(1, phi.shape[1]) if other != k}
    return bound | weights | fixed


def draw_sizes(rng=None) -> list[dict]:
    """Three random sizes and k: a small k (the bound's cap at 1 matters), a middle one, and large
    values; k < N and M - k > 2, and B, N, M, C', C_g, k, k + 1 (and M - 1, N - 1) all
    different."""
    rng = rng or CHECK_RNG
    out = []
    for dims, scale, k_range in (
            (dict(B=(2, 3), N=(9, 14), M=(16, 22), Cp=(5, 6), Cg=(7, 8)), 1.0, (2, 4)),
            (dict(B=(4, 5), N=(24, 30), M=(12, 16), Cp=(3, 3), Cg=(6, 6)), 1.0, (5, 8)),
            (dict(B=(2, 3), N=(16, 20), M=(24, 28), Cp=(7, 8), Cg=(4, 5)), 12.0, (9, 14))):
        for _ in range(1000):
            s = distinct(rng, dict(dims, k=k_range))
            values = list(confusable(s).values())
            if len(set(values)) == len(values):
                break
        s["scale"] = scale
        out.append(s)
    return out


@guarded("Exercise 10 (top-k attention)")
def check_topk(fn) -> Feedback:
    """``fn(theta, phi, g, k) -> (y, bound)``: y from each query's k largest scores, and the
    bound on max_c |y_full - y| from the (k + 1)-th score."""
    fb = Feedback("Exercise 10 (top-k attention)")
    sizes = draw_sizes()
    cases = []
    for j, size in enumerate(sizes):
        k = size["k"]
        shape = {key: v for key, v in size.items() if key != "k"}
        case = token_case(shape, 20 + j, lambda t, p, g, k=k: topk_reference(t, p, g, k),
                          lambda t, p, g, k=k: _known(t, p, g, k))
        case.args = case.args + (k,)
        case.where = f"at size {describe(shape)}, k={k}"
        case.sizes = dict(size)
        cases.append(case)
    if run_cases(fb, fn, cases, NAMES):
        fb.good(f"y and the bound equal the reference's, gradients included, at {len(sizes)} "
                f"random sizes and k ({'; '.join(describe(s) for s in sizes)})")
    return fb.report()
