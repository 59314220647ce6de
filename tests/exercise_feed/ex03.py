"""Exercise 3, concatenation without the concatenation: fn(theta, phi, g, w) -> (y, attention)."""

import torch
import torch.nn.functional as F

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex03_concatenation import BROADCAST_SUM, CONCAT_TENSOR, PYTHON_LOOP


def forgot_return(theta, phi, g, w):
    Cp = theta.shape[-1]
    a, b = theta @ w[:Cp], phi @ w[Cp:]
    attention = torch.relu(a[:, :, None] + b[:, None, :]) / phi.shape[1]
    attention @ g, attention


def no_relu(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = ((theta @ w[:Cp]).unsqueeze(2) + (phi @ w[Cp:]).unsqueeze(1)) / phi.shape[1]
    return attention @ g, attention


def halves_swapped(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = F.relu((theta @ w[Cp:]).unsqueeze(2) + (phi @ w[:Cp]).unsqueeze(1)) / phi.shape[1]
    return attention @ g, attention


def concatenated(theta, phi, g, w):
    B, N, Cp = theta.shape
    M = phi.shape[1]
    pairs = torch.cat([theta.unsqueeze(2).expand(B, N, M, Cp),
                       phi.unsqueeze(1).expand(B, N, M, Cp)], dim=-1)
    attention = torch.relu(pairs @ w) / M
    return attention @ g, attention


def broadcast_sum(theta, phi, g, w):
    Cp = theta.shape[-1]
    s = (theta.unsqueeze(2) * w[:Cp] + phi.unsqueeze(1) * w[Cp:]).sum(-1)
    attention = torch.relu(s) / phi.shape[1]
    return attention @ g, attention


def unreduced(theta, phi, g, w):
    Cp = theta.shape[-1]
    s = theta.unsqueeze(2) * w[:Cp] + phi.unsqueeze(1) * w[Cp:]
    attention = torch.relu(s) / phi.shape[1]
    return attention.sum(-1) @ g, attention


def by_n(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = torch.relu((theta @ w[:Cp]).unsqueeze(2) + (phi @ w[Cp:]).unsqueeze(1))
    attention = attention / theta.shape[1]
    return attention @ g, attention


def no_division(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = torch.relu((theta @ w[:Cp]).unsqueeze(2) + (phi @ w[Cp:]).unsqueeze(1))
    return attention @ g, attention


def softmax(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = torch.softmax(torch.relu((theta @ w[:Cp]).unsqueeze(2)
                                         + (phi @ w[Cp:]).unsqueeze(1)), dim=-1)
    return attention @ g, attention


def relu_each(theta, phi, g, w):
    Cp = theta.shape[-1]
    a, b = torch.relu(theta @ w[:Cp]), torch.relu(phi @ w[Cp:])
    attention = (a.unsqueeze(2) + b.unsqueeze(1)) / phi.shape[1]
    return attention @ g, attention


def python_loop(theta, phi, g, w):
    B, N, Cp = theta.shape
    M = phi.shape[1]
    rows = []
    for b in range(B):
        for i in range(N):
            rows.append(torch.stack([torch.relu(torch.dot(torch.cat([theta[b, i], phi[b, j]]), w))
                                     for j in range(M)]))
    attention = torch.stack(rows).reshape(B, N, M) / M
    return attention @ g, attention


def hard_coded_cp(theta, phi, g, w):
    a, b = theta @ w[:4], phi @ w[4:]
    attention = torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / phi.shape[1]
    return attention @ g, attention


def modifies_w(theta, phi, g, w):
    Cp = theta.shape[-1]
    w /= phi.shape[1]
    attention = torch.relu((theta @ w[:Cp]).unsqueeze(2) + (phi @ w[Cp:]).unsqueeze(1))
    return attention @ g, attention


def no_grad(theta, phi, g, w):
    Cp = theta.shape[-1]
    with torch.no_grad():
        a, b = theta @ w[:Cp], phi @ w[Cp:]
    attention = torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / phi.shape[1]
    return attention @ g, attention


def inplace_relu(theta, phi, g, w):
    Cp = theta.shape[-1]
    s = (theta @ w[:Cp]).unsqueeze(2) + (phi @ w[Cp:]).unsqueeze(1)
    s.relu_()
    s /= phi.shape[1]
    s.clamp_(min=0)
    return s @ g, s


def transposed(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = torch.relu((theta @ w[:Cp]).unsqueeze(1) + (phi @ w[Cp:]).unsqueeze(2))
    attention = attention / phi.shape[1]
    return attention.transpose(1, 2) @ g, attention


def batch0(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = torch.relu((theta[0] @ w[:Cp])[:, None] + (phi[0] @ w[Cp:])[None]) / phi.shape[1]
    return attention @ g[0], attention


def same_half(theta, phi, g, w):
    Cp = theta.shape[-1]
    attention = torch.relu((theta @ w[:Cp]).unsqueeze(2) + (phi @ w[:Cp]).unsqueeze(1))
    return attention / phi.shape[1] @ g, attention / phi.shape[1]


WRONG = [
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("no ReLU", no_relu, {"a forgotten ReLU"}),
    ("halves of w swapped", halves_swapped, {"the halves of w swapped"}),
    ("concatenation tensor", concatenated, {CONCAT_TENSOR}),
    ("broadcast then sum", broadcast_sum, {BROADCAST_SUM}),
    ("unreduced (B, N, M, C')", unreduced, {fbk.UNREDUCED}),
    ("divided by N", by_n, {"dividing by N where M was meant"}),
    ("not divided", no_division, {"a missing normalisation"}),
    ("softmax", softmax, {"a softmax where C(x) = M was meant"}),
    ("ReLU on each half", relu_each, {"the ReLU applied to each half"}),
    ("python loop", python_loop, {PYTHON_LOOP}),
    ("C' = 4 hard-coded", hard_coded_cp, {fbk.HARDCODED}),
    ("w modified in place", modifies_w, {fbk.INPLACE_INPUT}),
    ("a and b under no_grad", no_grad, {fbk.DETACHED}),
    ("in-place relu", inplace_relu, {fbk.INPLACE_BACKWARD}),
    ("transposed", transposed, {fbk.TRANSPOSED}),
    ("batch 0", batch0, {fbk.BATCH}),
    ("same half of w", same_half, {"the same half of w for theta and phi"}),
]


def right_float32(theta, phi, g, w):
    Cp = theta.shape[-1]
    w32 = w.float()
    a, b = theta.float() @ w32[:Cp], phi.float() @ w32[Cp:]
    attention = torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / phi.shape[1]
    return attention @ g.float(), attention


def right_einsum(theta, phi, g, w):
    wt, wp = w.chunk(2)
    a = torch.einsum("bnc,c->bn", theta, wt)
    b = torch.einsum("bmc,c->bm", phi, wp)
    attention = F.relu(a[..., None] + b[:, None, :]) / phi.size(1)
    return torch.einsum("bnm,bmd->bnd", attention, g), attention


def right_clamp(theta, phi, g, w):
    Cp = theta.shape[-1]
    scores = (theta @ w[:Cp])[:, :, None] + (phi @ w[Cp:])[:, None, :]
    attention = scores.clamp(min=0) / phi.shape[1]
    return torch.bmm(attention, g), attention


def right_matmul_view(theta, phi, g, w):
    Cp = theta.shape[-1]
    a = torch.matmul(theta, w[:Cp].unsqueeze(-1))                  # (B, N, 1)
    b = torch.matmul(phi, w[Cp:].unsqueeze(-1)).transpose(1, 2)     # (B, 1, M)
    attention = torch.relu(a + b)
    attention = attention / phi.shape[1]
    return attention @ g, attention


RIGHT = [("float32", right_float32), ("einsum and chunk", right_einsum), ("clamp", right_clamp),
         ("matmul with column vectors", right_matmul_view)]
