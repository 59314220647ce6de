"""Exercise 9, multi-head attention: fn(mha, query, key, value) -> (out, weights)."""

import torch
import torch.nn.functional as F

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex09_multi_head import (FUNCTIONAL_CALLED, MODULE_CALLED, NO_SCALE,
                                                WIDE_SCALE)


def _project(mha, query, key, value, bias=True):
    Wq, Wk, Wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3) if bias else (None, None, None)
    return F.linear(query, Wq, bq), F.linear(key, Wk, bk), F.linear(value, Wv, bv)


def _split(t, h):
    return t.reshape(t.shape[0], t.shape[1], h, -1).transpose(1, 2)


def _merge(y):
    return y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)


def no_scale(mha, query, key, value):
    h = mha.num_heads
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def wide_scale(mha, query, key, value):
    h = mha.num_heads
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / mha.embed_dim ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def interleaved(mha, query, key, value):
    h, E = mha.num_heads, mha.embed_dim
    q, k, v = (t.reshape(t.shape[0], t.shape[1], E // h, h).permute(0, 3, 1, 2)
               for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / (E // h) ** 0.5, dim=-1)
    return mha.out_proj((w @ v).permute(0, 2, 3, 1).reshape(query.shape)), w


def no_out_proj(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return _merge(w @ v), w


def no_bias(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value, bias=False))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def wrong_dim(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=2)
    return mha.out_proj(_merge(w @ v)), w


def qk_swapped(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    Wk, Wq, Wv = mha.in_proj_weight.chunk(3)
    bk, bq, bv = mha.in_proj_bias.chunk(3)
    q, k, v = (_split(F.linear(t, W, b), h) for t, W, b in ((query, Wq, bq), (key, Wk, bk),
                                                             (value, Wv, bv)))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def averaged(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w.mean(dim=1)


def forgot_return(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    mha.out_proj(_merge(w @ v)), w


def four_heads(mha, query, key, value):
    q, k, v = (_split(t, 4) for t in _project(mha, query, key, value))
    d = mha.embed_dim // 4
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def merge_without_transpose(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    y = (w @ v).reshape(query.shape)                  # (B, h, N, d) read as (B, N, E)
    return mha.out_proj(y), w


def literal_exp(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    f = torch.exp(q @ k.transpose(-1, -2) / d ** 0.5)
    w = f / f.sum(-1, keepdim=True)
    return mha.out_proj(_merge(w @ v)), w


def modifies_query(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    query /= d ** 0.5   # fold the scale into the input
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def detached(mha, query, key, value):
    with torch.no_grad():
        return right_einsum(mha, query, key, value)


def only_out(mha, query, key, value):
    return right_einsum(mha, query, key, value)[0]


def weights_transposed(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w.transpose(-1, -2)


def calls_the_module(mha, query, key, value):
    return mha(query, key, value, average_attn_weights=False)


def functional_forward(mha, query, key, value):
    q, k, v = (t.transpose(0, 1) for t in (query, key, value))
    out, w = F.multi_head_attention_forward(
        q, k, v, mha.embed_dim, mha.num_heads, mha.in_proj_weight, mha.in_proj_bias, None, None,
        False, 0.0, mha.out_proj.weight, mha.out_proj.bias, training=False,
        average_attn_weights=False)
    return out.transpose(0, 1), w


def a_copy_of_the_module(mha, query, key, value):
    twin = torch.nn.MultiheadAttention(mha.embed_dim, mha.num_heads, batch_first=True).double()
    twin.load_state_dict(mha.state_dict())
    return twin(query, key, value, average_attn_weights=False)


def merged_interleaved(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    y = (w @ v).permute(0, 2, 3, 1).reshape(query.shape)        # (B, N, d, h): wrong order
    return mha.out_proj(y), w


def no_out_bias(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return _merge(w @ v) @ mha.out_proj.weight.T, w


def untransposed(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    Wq, Wk, Wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    q, k, v = (_split(t @ W + b, h) for t, W, b in ((query, Wq, bq), (key, Wk, bk),
                                                     (value, Wv, bv)))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def scale_after_softmax(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2), dim=-1) / d ** 0.5
    return mha.out_proj(_merge(w @ v)), w


def scale_multiplied(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) * d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w


def weights_flat(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w.flatten(0, 1)


def bias_twice(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)) + mha.out_proj.bias, w


def weights_heads_second(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v)), w.transpose(1, 2)       # (B, N, h, M)


WRONG = [
    ("no 1/sqrt(d)", no_scale, {NO_SCALE}),
    ("1/sqrt(E)", wide_scale, {WIDE_SCALE}),
    ("heads interleaved", interleaved, {"heads split along the wrong axis"}),
    ("out_proj forgotten", no_out_proj, {"out_proj forgotten"}),
    ("biases forgotten", no_bias, {"the projection biases forgotten"}),
    ("softmax over queries", wrong_dim, {"a softmax over the wrong dimension"}),
    ("W_q and W_k swapped", qk_swapped, {"the query and key projections swapped"}),
    ("weights averaged", averaged, {"the weights averaged over the heads", fbk.SHAPE}),
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("4 heads hard-coded", four_heads, {fbk.HARDCODED, fbk.SHAPE}),
    ("merged without the transpose", merge_without_transpose, {"heads merged without the "
                                                                "transpose"}),
    ("literal exp", literal_exp, {fbk.OVERFLOW}),
    ("query scaled in place", modifies_query, {fbk.INPLACE_INPUT}),
    ("mha under no_grad", detached, {fbk.DETACHED}),
    ("only out returned", only_out, {fbk.WRONG_TYPE}),
    ("weights transposed", weights_transposed, {fbk.TRANSPOSED, fbk.SHAPE}),
    ("calls mha(...)", calls_the_module, {MODULE_CALLED}),
    ("F.multi_head_attention_forward", functional_forward, {FUNCTIONAL_CALLED}),
    ("a copy of the module", a_copy_of_the_module, {FUNCTIONAL_CALLED, MODULE_CALLED}),
    ("heads merged in the wrong order", merged_interleaved, {"heads merged in the wrong order"}),
    ("output bias forgotten", no_out_bias, {"the output bias forgotten"}),
    ("x @ W, not x @ W.T", untransposed, {"the projection weights untransposed"}),
    ("scale after the softmax", scale_after_softmax, {"a misplaced scale"}),
    ("scale multiplied by sqrt(d)", scale_multiplied, {"a misplaced scale"}),
    ("(B h, N, M) weights", weights_flat, {"the heads flattened into the batch"}),
    ("out_proj bias added again", bias_twice, {"the output bias added twice"}),
    ("(B, N, h, M) weights", weights_heads_second, {fbk.AXES}),
]


def right_float32(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (_split(t.float(), h) for t in _project(mha, query, key, value))
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return mha.out_proj(_merge(w @ v).double()).float(), w


def right_einsum(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = (t.unflatten(-1, (h, d)) for t in _project(mha, query, key, value))
    w = torch.einsum("bnhd,bmhd->bhnm", q * d ** -0.5, k).softmax(-1)
    y = torch.einsum("bhnm,bmhd->bnhd", w, v).flatten(2)
    return F.linear(y, mha.out_proj.weight, mha.out_proj.bias), w


def right_sdpa(mha, query, key, value):
    h = mha.num_heads
    q, k, v = (_split(t, h) for t in _project(mha, query, key, value))
    y = F.scaled_dot_product_attention(q, k, v)
    w = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
    return mha.out_proj(_merge(y)), w


def right_loop_over_heads(mha, query, key, value):
    h, d = mha.num_heads, mha.head_dim
    q, k, v = _project(mha, query, key, value)
    ys, ws = [], []
    for i in range(h):
        part = slice(i * d, (i + 1) * d)
        w = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / d ** 0.5, dim=-1)
        ys.append(w @ v[..., part])
        ws.append(w)
    return mha.out_proj(torch.cat(ys, dim=-1)), torch.stack(ws, dim=1)


RIGHT = [("float32", right_float32), ("einsum", right_einsum), ("SDPA for y", right_sdpa),
         ("a loop over heads", right_loop_over_heads)]
