"""Exercise 10, top-k attention: fn(theta, phi, g, k) -> (y, bound)."""

import torch

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex10_topk import NOT_RENORMALISED


def _masked_y(scores, g, idx):
    mask = torch.full_like(scores, float("-inf")).scatter(-1, idx, 0.0)
    return torch.softmax(scores + mask, dim=-1) @ g


def _bound(scores, g, k, *, edge=None, count=True, two=2, cap=True, gmax=None):
    M = scores.shape[-1]
    top = scores.topk(k + 1, dim=-1).values
    lse = torch.logsumexp(top[..., :k], dim=-1)
    e = top[..., k] if edge is None else edge
    r = (M - k if count else 1) * torch.exp(e - lse)
    r = r.clamp(max=1.0) if cap else r
    gm = g.abs().amax(dim=(1, 2))[:, None] if gmax is None else gmax
    return two * gm * r


def kth_score(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    top = s.topk(k, dim=-1)
    return _masked_y(s, g, top.indices), _bound(s, g, k, edge=top.values[..., -1])


def no_count(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices), _bound(s, g, k, count=False)


def no_two(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices), _bound(s, g, k, two=1)


def no_cap(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices), _bound(s, g, k, cap=False)


def batch_max(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices), _bound(s, g, k, gmax=g.abs().max())


def not_renormalised(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    idx = s.topk(k, -1).indices
    w = torch.softmax(s, -1)
    w = w * torch.zeros_like(w).scatter(-1, idx, 1.0)
    return w @ g, _bound(s, g, k)


def smallest(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1, largest=False).indices), _bound(s, g, k)


def over_queries(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    idx = s.topk(k, dim=1).indices
    mask = torch.full_like(s, float("-inf")).scatter(1, idx, 0.0)
    return torch.softmax(s + mask, -1) @ g, _bound(s, g, k)


def full_softmax_bound(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    idx = s.topk(k, -1).indices
    p_out = (torch.softmax(s, -1) * (torch.ones_like(s).scatter(-1, idx, 0.0))).sum(-1)
    return _masked_y(s, g, idx), 2 * g.abs().amax(dim=(1, 2))[:, None] * p_out


def forgot_return(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    _masked_y(s, g, s.topk(k, -1).indices), _bound(s, g, k)


def literal_exp(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    idx = s.topk(k, -1).indices
    f = torch.exp(s) * torch.zeros_like(s).scatter(-1, idx, 1.0)
    top = s.topk(k + 1, -1).values
    bound = 2 * g.abs().amax(dim=(1, 2))[:, None] * (
        (s.shape[-1] - k) * torch.exp(top[..., k]) / torch.exp(top[..., :k]).sum(-1)).clamp(max=1)
    return (f / f.sum(-1, keepdim=True)) @ g, bound


def no_grad_bound(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    with torch.no_grad():
        bound = _bound(s, g, k)
    return _masked_y(s, g, s.topk(k, -1).indices), bound


def bound_per_channel(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    b = _bound(s, g, k)
    return _masked_y(s, g, s.topk(k, -1).indices), b.unsqueeze(-1).expand(-1, -1, g.shape[-1])


def k_fixed(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(8, -1).indices), _bound(s, g, 8)


def batch0_gmax(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices), _bound(s, g, k, gmax=g[0].abs().max())


def y_only(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices)


def inplace_scores(theta, phi, g, k):
    theta *= 1.0 + 0.0 * theta.sum()
    theta += 0.01
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices), _bound(s, g, k)


def after_next(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    top = s.topk(k + 2, dim=-1)
    return _masked_y(s, g, top.indices[..., :k]), _bound(s, g, k, edge=top.values[..., k + 1])


def count_off_by_one(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    M = s.shape[-1]
    top = s.topk(k + 1, dim=-1).values
    r = ((M - k - 1) * torch.exp(top[..., k] - torch.logsumexp(top[..., :k], -1))).clamp(max=1)
    return _masked_y(s, g, s.topk(k, -1).indices), 2 * g.abs().amax(dim=(1, 2))[:, None] * r


def zero_filled(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    idx = s.topk(k, -1).indices
    kept = torch.zeros_like(s, dtype=torch.bool).scatter(-1, idx, True)
    return torch.softmax(s.masked_fill(~kept, 0.0), -1) @ g, _bound(s, g, k)


def lse_of_all(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    top = s.topk(k + 1, dim=-1).values
    r = ((s.shape[-1] - k) * torch.exp(top[..., k] - torch.logsumexp(s, -1))).clamp(max=1)
    return _masked_y(s, g, s.topk(k, -1).indices), 2 * g.abs().amax(dim=(1, 2))[:, None] * r


def bound_zero(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    return _masked_y(s, g, s.topk(k, -1).indices), torch.zeros(s.shape[:2], dtype=s.dtype)


def max_not_lse(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    top = s.topk(k + 1, dim=-1).values
    r = ((s.shape[-1] - k) * torch.exp(top[..., k] - top[..., 0])).clamp(max=1)
    return _masked_y(s, g, s.topk(k, -1).indices), 2 * g.abs().amax(dim=(1, 2))[:, None] * r


WRONG = [
    ("k-th score", kth_score, {"the k-th score instead of the (k+1)-th"}),
    ("(M - k) forgotten", no_count, {"(M - k) forgotten"}),
    ("factor 2 forgotten", no_two, {"the factor 2 forgotten"}),
    ("no cap", no_cap, {"the bound not capped at 1"}),
    ("max over the batch", batch_max, {"max |g| over the whole batch"}),
    ("not renormalised", not_renormalised, {NOT_RENORMALISED}),
    ("k smallest", smallest, {"the k smallest scores"}),
    ("top-k over queries", over_queries, {"top-k over the queries"}),
    ("bound from the full softmax", full_softmax_bound, {"the bound from the full softmax"}),
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("literal exp", literal_exp, {fbk.OVERFLOW}),
    ("bound under no_grad", no_grad_bound, {fbk.DETACHED}),
    ("bound per channel", bound_per_channel, {fbk.UNREDUCED, fbk.SHAPE}),
    ("k = 8 hard-coded", k_fixed, {fbk.HARDCODED}),
    ("max |g| of batch item 0", batch0_gmax, {fbk.BATCH, "max |g| over the whole batch"}),
    ("only y", y_only, {fbk.WRONG_TYPE}),
    ("theta shifted in place", inplace_scores, {fbk.INPLACE_INPUT}),
    ("(k+2)-th score", after_next, {"the bound from the wrong order statistic"}),
    ("M - k - 1 left out", count_off_by_one, {"the count of left-out keys off by one"}),
    ("dropped scores at 0", zero_filled, {"the dropped scores set to 0, not -inf"}),
    ("logsumexp of every score", lse_of_all, {"the logsumexp over every key"}),
    ("bound of zeros", bound_zero, {fbk.ALL_ZERO}),
    ("largest kept score, not logsumexp", max_not_lse,
     {"the largest score instead of the logsumexp"}),
]


def right_einsum_gather(theta, phi, g, k):
    s = torch.einsum("bnc,bmc->bnm", theta, phi)
    vals, idx = s.topk(k + 1, dim=-1)
    w = torch.softmax(vals[..., :k], dim=-1)                                  # (B, N, k)
    g_kept = torch.gather(g.unsqueeze(1).expand(-1, s.shape[1], -1, -1), 2,
                          idx[..., :k, None].expand(-1, -1, -1, g.shape[-1]))
    y = torch.einsum("bnk,bnkc->bnc", w, g_kept)
    p = (s.shape[-1] - k) * torch.exp(vals[..., k] - torch.logsumexp(vals[..., :k], -1))
    return y, 2 * g.abs().flatten(1).max(1).values[:, None] * torch.minimum(p, torch.ones_like(p))


def right_float32(theta, phi, g, k):
    s = theta.float() @ phi.float().transpose(1, 2)
    return _masked_y(s, g.float(), s.topk(k, -1).indices), _bound(s, g.float(), k)


def right_masked_fill(theta, phi, g, k):
    s = theta @ phi.transpose(1, 2)
    vals = s.topk(k + 1, dim=-1).values
    y = torch.softmax(s.masked_fill(s < vals[..., k - 1:k], float("-inf")), dim=-1) @ g
    log_ratio = torch.log(torch.tensor(float(s.shape[-1] - k), dtype=s.dtype)) + vals[..., k] \
        - torch.logsumexp(vals[..., :k], dim=-1)
    return y, 2 * g.abs().amax(dim=(1, 2)).unsqueeze(1) * log_ratio.clamp(max=0.0).exp()


RIGHT = [("einsum and gather", right_einsum_gather), ("float32", right_float32),
         ("masked_fill, in log space", right_masked_fill)]
