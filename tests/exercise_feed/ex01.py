"""Exercise 1, the embedded Gaussian: fn(theta, phi, g) -> (y, attention)."""

import numpy as np
import torch
import torch.nn.functional as F

from nlcourse.exercises import _feedback as fbk

WRONG_DIM = "a softmax over the wrong dimension"
NO_NORM = "a missing normalisation"
SCALE = "a scale the formula does not have"


def forgot_return(theta, phi, g):
    attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
    attention @ g, attention


def literal_exp(theta, phi, g):
    f = torch.exp(theta @ phi.transpose(1, 2))
    attention = f / f.sum(dim=-1, keepdim=True)
    return attention @ g, attention


def softmax_dim1(theta, phi, g):
    attention = F.softmax(torch.bmm(theta, phi.permute(0, 2, 1)), dim=1)
    return torch.bmm(attention, g), attention


def no_normalisation(theta, phi, g):
    scores = theta @ phi.transpose(1, 2)
    attention = torch.exp(scores - scores.max())
    return attention @ g, attention


def transposed(theta, phi, g):
    attention = torch.softmax(phi @ theta.transpose(1, 2), dim=1)
    return (attention.transpose(1, 2) @ g), attention


def with_scale(theta, phi, g):
    d = theta.shape[-1]
    attention = torch.softmax(theta @ phi.transpose(1, 2) / d ** 0.5, dim=-1)
    return attention @ g, attention


def under_no_grad(theta, phi, g):
    with torch.no_grad():
        attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
        y = attention @ g
    return y, attention


def numpy_round_trip(theta, phi, g):
    t, p, v = theta.detach().numpy(), phi.detach().numpy(), g.detach().numpy()
    s = t @ p.transpose(0, 2, 1)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)
    return torch.from_numpy(a @ v), torch.from_numpy(a)


def modifies_input(theta, phi, g):
    theta -= theta.mean()  # "centre the queries"
    attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
    return attention @ g, attention


def inplace_breaks_backward(theta, phi, g):
    scores = theta @ phi.transpose(1, 2)
    scores -= scores.max(dim=-1, keepdim=True).values
    f = scores.exp()
    f /= f.sum(-1, keepdim=True)
    return f @ g, f


def batch_zero_only(theta, phi, g):
    attention = torch.softmax(theta[0] @ phi[0].T, dim=-1)
    return attention @ g[0], attention


def batch_zero_broadcast(theta, phi, g):
    attention = torch.softmax(theta[0] @ phi[0].T, dim=-1).expand(theta.shape[0], -1, -1)
    return attention @ g, attention


def hard_coded_view(theta, phi, g):
    scores = torch.matmul(theta, phi.transpose(1, 2)).view(2, 12, 5)
    attention = torch.softmax(scores, dim=-1)
    return attention @ g, attention


def softmax_whole_map(theta, phi, g):
    B = theta.shape[0]
    scores = (theta @ phi.transpose(1, 2)).reshape(B, -1)
    attention = torch.softmax(scores, dim=-1).reshape(B, theta.shape[1], phi.shape[1])
    return attention @ g, attention


def returns_only_y(theta, phi, g):
    attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
    return attention @ g


def swapped_outputs(theta, phi, g):
    attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
    return attention, attention @ g


def missing_transpose(theta, phi, g):
    attention = torch.softmax(theta @ phi, dim=-1)
    return attention @ g, attention


def log_softmax(theta, phi, g):
    attention = torch.log_softmax(theta @ phi.transpose(1, 2), dim=-1)
    return attention @ g, attention


def item_loop(theta, phi, g):
    B, N, _ = theta.shape
    attention = torch.zeros(B, N, phi.shape[1], dtype=theta.dtype)
    for b in range(B):
        attention[b] = torch.softmax(theta[b] @ phi[b].T, dim=-1).detach()
    return attention @ g, attention


def divides_by_m(theta, phi, g):
    attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1) / phi.shape[1]
    return attention @ g, attention


WRONG = [
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("literal exp overflows", literal_exp, {fbk.OVERFLOW}),
    ("softmax over dim 1", softmax_dim1, {WRONG_DIM}),
    ("exp without C(x)", no_normalisation, {NO_NORM, fbk.CONSTANT}),
    ("transposed map", transposed, {fbk.TRANSPOSED}),
    ("1/sqrt(d) scale", with_scale, {SCALE}),
    ("no_grad", under_no_grad, {fbk.DETACHED}),
    ("numpy round trip", numpy_round_trip, {fbk.DETACHED, fbk.NUMPY}),
    ("modifies theta", modifies_input, {fbk.INPLACE_INPUT}),
    ("in-place softmax", inplace_breaks_backward, {fbk.INPLACE_BACKWARD}),
    ("batch 0 only", batch_zero_only, {fbk.BATCH}),
    ("batch 0 broadcast", batch_zero_broadcast, {fbk.BATCH}),
    ("view(2, 12, 5)", hard_coded_view, {fbk.HARDCODED}),
    ("softmax over the whole map", softmax_whole_map, {"a softmax over the whole map"}),
    ("only y returned", returns_only_y, {fbk.WRONG_TYPE}),
    ("outputs swapped", swapped_outputs, {fbk.SHAPE, fbk.TRANSPOSED}),
    ("phi not transposed", missing_transpose, {fbk.MATMUL_SHAPES}),
    ("log_softmax", log_softmax, {"a log-softmax"}),
    ("loop with detach", item_loop, {fbk.DETACHED}),
    ("softmax then / M", divides_by_m, {fbk.CONSTANT, "dividing by M after the softmax"}),
]


def right_float32(theta, phi, g):
    attention = torch.softmax(theta.float() @ phi.float().transpose(1, 2), dim=-1)
    return attention @ g.float(), attention


def right_einsum(theta, phi, g):
    attention = torch.einsum("bnc,bmc->bnm", theta, phi).softmax(dim=-1)
    return torch.einsum("bnm,bmc->bnc", attention, g), attention


def right_max_shift(theta, phi, g):
    scores = theta @ phi.transpose(1, 2)
    f = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    attention = f / f.sum(-1, keepdim=True)
    return attention @ g, attention


def right_logsumexp(theta, phi, g):
    scores = torch.bmm(theta, phi.transpose(1, 2))
    attention = torch.exp(scores - torch.logsumexp(scores, dim=-1, keepdim=True))
    return torch.bmm(attention, g), attention


def right_inplace_safe(theta, phi, g):
    scores = theta @ phi.transpose(1, 2)
    scores = scores - scores.max(dim=-1, keepdim=True).values
    attention = scores.exp()
    attention = attention / attention.sum(-1, keepdim=True)
    y = attention @ g
    y += 0.0  # in place on a fresh tensor that autograd does not need
    return y, attention


def right_loop(theta, phi, g):
    ys, maps = [], []
    for b in range(theta.shape[0]):
        a = F.softmax(theta[b] @ phi[b].T, dim=1)
        ys.append(a @ g[b])
        maps.append(a)
    return torch.stack(ys), torch.stack(maps)


RIGHT = [("float32", right_float32), ("einsum", right_einsum), ("max shift", right_max_shift),
         ("logsumexp", right_logsumexp), ("in-place safe", right_inplace_safe),
         ("loop over the batch", right_loop)]
