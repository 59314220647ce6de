"""Exercise 9: multi-head attention as parallel non-local operations, against
torch.nn.MultiheadAttention."""

from __future__ import annotations

import torch
from torch import nn

from ._feedback import (_RNG, Case, Feedback, clone_args, describe, distinct, guarded,
                        name_leaves, run_cases)

NAMES = ("out", "weights")
NO_SCALE = "a missing scale"
WIDE_SCALE = "the scale of the whole width"


def _heads(t, h):
    B, L, E = t.shape
    return t.reshape(B, L, h, E // h).transpose(1, 2)            # (B, h, L, d)


def by_hand(mha, query, key, value, *, scale="head", split="heads_first", out_proj=True,
            bias=True, dim=-1, qk_swapped=False, average=False, merge="transpose"):
    """Multi-head attention written as h parallel embedded-Gaussian operations; the keyword
    arguments make one known mistake each (the defaults are right)."""
    E, h = mha.embed_dim, mha.num_heads
    d = E // h
    Wq, Wk, Wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3) if bias else (None, None, None)
    if qk_swapped:
        Wq, Wk, bq, bk = Wk, Wq, bk, bq
    q, k, v = (nn.functional.linear(t, W, b) for t, W, b in ((query, Wq, bq), (key, Wk, bk),
                                                              (value, Wv, bv)))
    if split == "heads_first":
        q, k, v = _heads(q, h), _heads(k, h), _heads(v, h)
    else:  # heads interleaved: (B, L, d, h)
        q, k, v = (t.reshape(*t.shape[:2], d, h).permute(0, 3, 1, 2) for t in (q, k, v))
    s = {"head": d ** -0.5, "none": 1.0, "wide": E ** -0.5}[scale]
    weights = torch.softmax(s * q @ k.transpose(-1, -2), dim=dim)   # (B, h, N, M)
    y = weights @ v                                                  # (B, h, N, d)
    y = (y.transpose(1, 2) if merge == "transpose" else y).reshape(query.shape[0],
                                                                    query.shape[1], E)
    out = mha.out_proj(y) if out_proj else y
    return out, (weights.mean(1) if average else weights)


def _known(mha, query, key, value):
    def run(**change):
        return by_hand(mha, query, key, value, **change)
    return {
        NO_SCALE: (run(scale="none"), "nn.MultiheadAttention multiplies q . k by d^-1/2, with d ="
                   " E / h the width of ONE head"),
        WIDE_SCALE: (run(scale="wide"), "the scale uses the width of one head, d = E / h, not "
                     "the whole embedding E"),
        "heads split along the wrong axis": (
            run(split="interleaved"), "head k holds the channels k*d to (k+1)*d - 1: reshape to "
            "(B, L, h, d), then move h forward"),
        "out_proj forgotten": (run(out_proj=False), "the heads are concatenated and then mapped "
                               "by mha.out_proj (the block's W)"),
        "the projection biases forgotten": (run(bias=False), "mha.in_proj_bias holds the biases "
                                            "of q, k and v, in that order"),
        "a softmax over the wrong dimension": (run(dim=-2), "each query's weights sum to 1 over "
                                               "the keys: softmax(..., dim=-1)"),
        "the query and key projections swapped": (run(qk_swapped=True), "in_proj_weight stacks "
                                                  "W_q, W_k, W_v in that order"),
        "heads merged without the transpose": (
            run(merge="reshape"), "(B, h, N, d) must become (B, N, h, d) before the reshape to "
            "(B, N, E); a plain reshape mixes queries and heads"),
        "the weights averaged over the heads": (
            (None, run(average=True)[1]), "return one map per head, (B, h, N, M)"),
    }


def _reference(mha, query, key, value):
    return mha(query, key, value, need_weights=True, average_attn_weights=False)


def _sizes():
    """Three sizes drawn at random on each run: h heads of width d (E = h d), batch above one,
    N != M, the last with large values."""
    out = []
    for k, (lo_h, hi_h) in enumerate(((2, 3), (4, 4), (3, 3))):
        s = distinct(_RNG, dict(B=(2, 5), N=(6, 14), M=(15, 20), h=(lo_h, hi_h), d=(5, 9)))
        s["scale"] = 1.0 if k < 2 else 40.0   # scores in the thousands: exp() overflows
        out.append(s)
    return out


def _case(size, k):
    gen = torch.Generator().manual_seed(300 + k)
    E = size["h"] * size["d"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(400 + k)
        mha = nn.MultiheadAttention(E, size["h"], batch_first=True).double()
    with torch.no_grad():  # non-zero biases, so that forgetting them shows
        mha.in_proj_bias.normal_(generator=gen)
        mha.out_proj.bias.normal_(generator=gen)
    s = size["scale"]
    query = torch.randn(size["B"], size["N"], E, dtype=torch.float64, generator=gen) * s
    key = torch.randn(size["B"], size["M"], E, dtype=torch.float64, generator=gen) * s
    value = torch.randn(size["B"], size["M"], E, dtype=torch.float64, generator=gen)
    leaves = name_leaves(query=query.requires_grad_(), key=key.requires_grad_(),
                         value=value.requires_grad_())
    params = []
    for name, p in mha.named_parameters():
        p._nl_name = f"mha.{name}"
        params.append(p)
    passed, watch = clone_args(leaves, ["query", "key", "value"])
    return Case(args=(mha, *passed), watch=watch, leaves=leaves + params,
                reference=lambda: _reference(mha, *leaves),
                known=lambda: _known(mha, *[t.detach() for t in leaves]),
                factors={}, sizes={"B": size["B"], "N": size["N"], "M": size["M"],
                                   "scale": size["scale"]},
                floor=s if s > 1 else 0.0, where=f"at size {describe(size)}, E = {E}")


@guarded("Exercise 9 (multi-head attention)")
def check_multi_head(fn) -> Feedback:
    """``fn(mha, query, key, value) -> (out, weights)`` equal to
    ``mha(query, key, value, average_attn_weights=False)`` for an
    ``nn.MultiheadAttention(E, h, batch_first=True)``, written as h parallel operations."""
    fb = Feedback("Exercise 9 (multi-head attention)")
    sizes = _sizes()
    cases = [_case(s, k) for k, s in enumerate(sizes)]
    if run_cases(fb, fn, cases, NAMES):
        fb.good(f"out and the per-head weights equal nn.MultiheadAttention's, gradients included "
                f"(inputs and the module's parameters), at {len(sizes)} random sizes "
                f"({'; '.join(describe(s) for s in sizes)})")
    return fb.report()
