"""Exercise 9: multi-head attention as parallel non-local operations, against
torch.nn.MultiheadAttention."""

from __future__ import annotations

import torch
from torch import nn

from ._feedback import (CHECK_RNG, GUARD_ADVICE, Case, Feedback, Guard, clone_args, confusable,
                        describe, distinct, guarded, name_leaves, run_cases)

NAMES = ("out", "weights")
NO_SCALE = "a missing scale"
WIDE_SCALE = "the scale of the whole width"
MODULE_CALLED = "the module called instead of written out"
FUNCTIONAL_CALLED = "F.multi_head_attention_forward called"
FORBIDDEN = {
    "multi_head_attention_forward": (FUNCTIONAL_CALLED, "your function called "
                                     "F.multi_head_attention_forward, the module's own forward"),
    "_native_multi_head_attention": (FUNCTIONAL_CALLED, "your function called "
                                     "torch._native_multi_head_attention, the module's fast "
                                     "path"),
}


def _heads(t, h):
    B, L, E = t.shape
    return t.reshape(B, L, h, E // h).transpose(1, 2)            # (B, h, L, d)


def by_hand(mha, query, key, value, *, scale="head", split="heads_first", out_proj=True,
            bias=True, dim=-1, qk_swapped=False, average=False, merge="transpose",
            out_bias=1, transpose_in=True, transpose_out=True, qkv_order=(0, 1, 2)):
    """Multi-head attention written as h parallel embedded-Gaussian operations; the keyword
    arguments make one known mistake each (the defaults are right)."""
    E, h = mha.embed_dim, mha.num_heads
    d = E // h
    chunks = mha.in_proj_weight.chunk(3)
    Wq, Wk, Wv = (chunks[i] for i in qkv_order)
    bq, bk, bv = mha.in_proj_bias.chunk(3) if bias else (None, None, None)
    if qk_swapped:
        Wq, Wk, bq, bk = Wk, Wq, bk, bq

    def linear(t, W, b):                      # t @ W^T + b, or t @ W when the learner forgot .T
        out = t @ (W.transpose(0, 1) if transpose_in else W)
        return out if b is None else out + b
    q, k, v = (linear(t, W, b) for t, W, b in ((query, Wq, bq), (key, Wk, bk), (value, Wv, bv)))
    if split == "heads_first":
        q, k, v = _heads(q, h), _heads(k, h), _heads(v, h)
    else:  # heads interleaved: (B, L, d, h)
        q, k, v = (t.reshape(*t.shape[:2], d, h).permute(0, 3, 1, 2) for t in (q, k, v))
    s = {"head": d ** -0.5, "none": 1.0, "wide": E ** -0.5, "inverse": d ** 0.5,
         "both": d ** -1.0, "after": 1.0, "values": 1.0}[scale]
    weights = torch.softmax(s * q @ k.transpose(-1, -2), dim=dim)   # (B, h, N, M)
    if scale == "after":
        weights = weights * d ** -0.5
    y = weights @ (v * d ** -0.5 if scale == "values" else v)        # (B, h, N, d)
    if merge == "transpose":
        y = y.transpose(1, 2)
    elif merge == "interleave":   # (B, h, N, d) -> (B, N, d, h): channel c of head k at c h + k
        y = y.permute(0, 2, 3, 1)
    y = y.reshape(query.shape[0], query.shape[1], E)
    if out_proj:
        Wo = mha.out_proj.weight
        out = y @ (Wo.transpose(0, 1) if transpose_out else Wo)
        out = out + out_bias * mha.out_proj.bias
    else:
        out = y
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
        "heads merged in the wrong order": (
            run(merge="interleave"), "the merge must undo the split: (B, h, N, d) -> (B, N, h, d)"
            " -> (B, N, E), so that head k's channels stay together at k*d to (k+1)*d - 1"),
        "the output bias added twice": (run(out_bias=2), "mha.out_proj(y) already adds its "
                                        "bias: do not add mha.out_proj.bias again"),
        "the output bias forgotten": (run(out_bias=0), "mha.out_proj has a bias too: "
                                      "mha.out_proj(y), or F.linear(y, weight, bias)"),
        "the projection weights untransposed": (
            run(transpose_in=False), "a linear layer computes x W^T + b: F.linear(x, W, b), or "
            "x @ W.T + b (the weights are square here, so x @ W runs, silently wrong)"),
        "the output weight untransposed": (
            run(transpose_out=False), "out_proj computes y W^T + b: y @ W.T, or mha.out_proj(y)"),
        "the scale divided instead of multiplied": (
            run(scale="inverse"), "the scores are multiplied by d^-1/2 (divided by sqrt(d)), "
            "not by sqrt(d)", "a misplaced scale"),
        "the scale applied to q and k both": (
            run(scale="both"), "d^-1/2 once, on the scores q . k: scaling q and k by it each "
            "gives d^-1", "a misplaced scale"),
        "the scale applied after the softmax": (
            run(scale="after"), "the scale multiplies the scores inside the softmax; after it, "
            "the rows no longer sum to 1", "a misplaced scale"),
        "the scale applied to the values": (
            run(scale="values"), "the scale belongs to the scores q . k, inside the softmax, "
            "not to v", "a misplaced scale"),
        "the q, k, v chunks in the wrong order": (
            run(qkv_order=(2, 1, 0)), "in_proj_weight.chunk(3) gives W_q, W_k, W_v in that "
            "order", "the query and key projections swapped"),
        "the heads flattened into the batch": (
            (None, run()[1].flatten(0, 1)), "weights must be (B, h, N, M): keep the heads as "
            "their own dimension rather than (B h, N, M)"),
    }


GUARD_ADVICE[MODULE_CALLED] = GUARD_ADVICE[FUNCTIONAL_CALLED] = (
    "write the h heads out from mha.in_proj_weight, mha.in_proj_bias and mha.out_proj's weight "
    "and bias (F.scaled_dot_product_attention is allowed for one head's weighted sum)")


def _reference(mha, query, key, value):
    return mha(query, key, value, need_weights=True, average_attn_weights=False)


def draw_sizes(rng=None) -> list[dict]:
    """Three sizes drawn at random on each run: h heads of width d (E = h d), batch above one,
    N != M, the last with large values; B, N, M, h, d, E (and M - 1, N - 1) all different."""
    rng = rng or CHECK_RNG
    out = []
    for k, (lo_h, hi_h) in enumerate(((2, 3), (4, 4), (3, 3))):
        for _ in range(1000):
            s = distinct(rng, dict(B=(2, 5), N=(6, 14), M=(15, 20), h=(lo_h, hi_h), d=(5, 9)))
            s["E"] = s["h"] * s["d"]
            values = list(confusable(s).values())
            if len(set(values)) == len(values):
                break
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
    guard = (lambda: Guard(forbidden=FORBIDDEN, calls={"mha": (mha, MODULE_CALLED, (
        "your function called the module, mha(...) (or mha.forward)"))}))
    return Case(args=(mha, *passed), watch=watch, leaves=leaves + params, guard=guard,
                reference=lambda: _reference(mha, *leaves),
                known=lambda: _known(mha, *[t.detach() for t in leaves]),
                factors={}, sizes=dict(size),
                floor=s if s > 1 else 0.0, where=f"at size {describe(size)}")


@guarded("Exercise 9 (multi-head attention)")
def check_multi_head(fn) -> Feedback:
    """``fn(mha, query, key, value) -> (out, weights)`` equal to
    ``mha(query, key, value, average_attn_weights=False)`` for an
    ``nn.MultiheadAttention(E, h, batch_first=True)``, written as h parallel operations."""
    fb = Feedback("Exercise 9 (multi-head attention)")
    sizes = draw_sizes()
    cases = [_case(s, k) for k, s in enumerate(sizes)]
    if run_cases(fb, fn, cases, NAMES):
        fb.good(f"out and the per-head weights equal nn.MultiheadAttention's, gradients included "
                f"(inputs and the module's parameters), at {len(sizes)} random sizes "
                f"({'; '.join(describe(s) for s in sizes)})")
    return fb.report()
