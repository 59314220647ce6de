"""Exercise 10: top-k attention, an efficient variant, with a bound on its error that needs only
the k + 1 largest scores."""

from __future__ import annotations

import torch

from ._feedback import (_RNG, HARDCODED, Feedback, describe, distinct, guarded, run_cases,
                        token_case)

NAMES = ("y", "bound")
NOT_RENORMALISED = "the top-k weights not renormalised"


def topk_reference(theta, phi, g, k, *, bound_from="next", count=True, two=True, cap=True,
                   per_item=True, renormalise=True, largest=True, dim=-1, exact=False,
                   k_used=None):
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
    if renormalise:
        weights = torch.softmax(scores + mask, dim=-1)
    else:
        weights = torch.softmax(scores, dim=-1) * (mask == 0)
    y = weights @ g
    top = scores.topk(k + 1, dim=-1).values                       # sorted, largest first
    lse = torch.logsumexp(top[..., :k], dim=-1)
    edge = top[..., k] if bound_from == "next" else top[..., k - 1]
    ratio = (M - k if count else 1) * torch.exp(edge - lse)
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
    fixed = {f"k = {other} instead of the argument k = {k}": (
        run(k_used=other), "take k from the argument: the check passes a different k at each "
        "size", HARDCODED) for other in range(1, phi.shape[1]) if other != k}
    return fixed | {
        "the k-th score instead of the (k+1)-th": (
            (None, run(bound_from="kth")[1]), "every key left out scores at most s_(k+1), the "
            "largest score NOT kept: that is the tighter, still valid, bound"),
        "(M - k) forgotten": ((None, run(count=False)[1]), "there are M - k keys left out, each "
                              "with weight at most exp(s_(k+1) - logsumexp(top k))"),
        "the factor 2 forgotten": ((None, run(two=False)[1]), "y_full - y = p_out (mean of the "
                                   "left-out values - y): each coordinate of the bracket can be "
                                   "up to 2 max|g|"),
        "the bound not capped at 1": ((None, run(cap=False)[1]), "the left-out mass p_out is at "
                                      "most 1, so min(1, ...) keeps the bound meaningful"),
        "max |g| over the whole batch": ((None, run(per_item=False)[1]), "each batch item has its"
                                         " own values g: take max |g| per item"),
        NOT_RENORMALISED: (run(renormalise=False), "keep the top-k scores and take the softmax "
                           "over them (the others at -inf), so that the kept weights sum to 1"),
        "the k smallest scores": (run(largest=False), "topk(..., largest=True) keeps the LARGEST"),
        "top-k over the queries": (run(dim=1), "each query keeps its own k largest keys: topk "
                                   "along dim=-1"),
        "the bound from the full softmax": (
            (None, run(exact=True)[1]), "this uses the full softmax, which top-k exists to "
            "avoid: bound it from the (k+1)-th score alone"),
    }


def _sizes():
    """Three random sizes and k: a small k (the bound's cap at 1 matters), a middle one, and large
    values; k < N and M - k > 2, all dimensions different."""
    out = []
    for dims, scale, k_range in (
            (dict(B=(2, 3), N=(9, 14), M=(16, 22), Cp=(5, 6), Cg=(7, 8)), 1.0, (2, 4)),
            (dict(B=(4, 5), N=(24, 30), M=(12, 16), Cp=(3, 3), Cg=(6, 6)), 1.0, (5, 8)),
            (dict(B=(2, 3), N=(16, 20), M=(24, 28), Cp=(7, 8), Cg=(4, 5)), 12.0, (9, 14))):
        s = distinct(_RNG, dict(dims, k=k_range))
        s["scale"] = scale
        out.append(s)
    return out


@guarded("Exercise 10 (top-k attention)")
def check_topk(fn) -> Feedback:
    """``fn(theta, phi, g, k) -> (y, bound)``: y from each query's k largest scores, and the
    bound on max_c |y_full - y| from the (k + 1)-th score."""
    fb = Feedback("Exercise 10 (top-k attention)")
    sizes = _sizes()
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
