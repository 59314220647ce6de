"""Exercise 2, the dot product: check_dot_product(fn, fn_linear)."""

import numpy as np
import torch

from nlcourse.exercises import _feedback as fbk

NO_NORM = "a missing normalisation"
BY_N = "dividing by N where M was meant"
SOFTMAX = "a softmax where C(x) = M was meant"
NM = "the N x M matrix built"


def dot(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / phi.shape[1]
    return attention @ g, attention


def linear(theta, phi, g):
    return theta @ (phi.transpose(1, 2) @ g) / phi.shape[1]


def q(body):
    """A wrong quadratic part with the right linear part."""
    return (body, linear)


def lin(body):
    """The right quadratic part with a wrong linear part."""
    return (dot, body)


def forgot_return(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / phi.shape[1]
    attention @ g, attention


def by_n(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / theta.shape[1]
    return attention @ g, attention


def by_32(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / 32
    return attention @ g, attention


def no_norm(theta, phi, g):
    f = torch.bmm(theta, phi.transpose(1, 2))
    return f @ g, f


def softmax(theta, phi, g):
    attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
    return attention @ g, attention


def normalised_twice(theta, phi, g):
    M = phi.shape[1]
    attention = theta @ phi.transpose(1, 2) / M
    return attention @ g / M, attention


def sum_normaliser(theta, phi, g):
    f = theta @ phi.transpose(1, 2)
    attention = f / f.sum(-1, keepdim=True)
    return attention @ g, attention


def modifies_phi(theta, phi, g):
    phi /= phi.shape[1]
    attention = theta @ phi.transpose(1, 2)
    return attention @ g, attention


def numpy_version(theta, phi, g):
    a = np.einsum("bnc,bmc->bnm", theta.detach().numpy(), phi.detach().numpy()) / phi.shape[1]
    return torch.from_numpy(a) @ g, torch.from_numpy(a)


def no_grad(theta, phi, g):
    with torch.no_grad():
        attention = theta @ phi.transpose(1, 2) / phi.shape[1]
    return attention @ g, attention


def batch0(theta, phi, g):
    attention = theta[0] @ phi[0].T / phi.shape[1]
    return attention @ g[0], attention


def view_fixed(theta, phi, g):
    attention = (theta @ phi.transpose(1, 2) / phi.shape[1]).view(2, 16, 8)
    return attention @ g, attention


def transposed(theta, phi, g):
    attention = phi @ theta.transpose(1, 2) / phi.shape[1]
    return attention.transpose(1, 2) @ g, attention


def by_cp(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / theta.shape[-1]
    return attention @ g, attention


def scaled(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / theta.shape[-1] ** 0.5 / phi.shape[1]
    return attention @ g, attention


def linear_quadratic(theta, phi, g):
    return (theta @ phi.transpose(1, 2)) @ g / phi.shape[1]


def linear_by_n(theta, phi, g):
    return theta @ (phi.transpose(1, 2) @ g) / theta.shape[1]


def linear_forgot_return(theta, phi, g):
    kv = phi.transpose(1, 2) @ g
    theta @ kv / phi.shape[1]


def linear_wrong_order(theta, phi, g):
    return (theta @ phi.transpose(1, 2) / phi.shape[1]) @ g


def linear_no_grad(theta, phi, g):
    with torch.no_grad():
        return theta @ (phi.transpose(1, 2) @ g) / phi.shape[1]


def linear_inplace(theta, phi, g):
    theta /= phi.shape[1]
    return theta @ (phi.transpose(1, 2) @ g)


def linear_missing_transpose(theta, phi, g):
    return theta @ (phi @ g.transpose(1, 2)) / phi.shape[1]


def linear_returns_pair(theta, phi, g):
    kv = phi.transpose(1, 2) @ g
    return theta @ kv / phi.shape[1], kv


def by_len(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / len(phi)          # len() is the batch size
    return attention @ g, attention


def by_m_minus_one(theta, phi, g):
    attention = theta @ phi.transpose(1, 2) / (phi.shape[1] - 1)   # an "unbiased" mean
    return attention @ g, attention


WRONG = [
    ("forgot return", q(forgot_return), {fbk.NO_RETURN}),
    ("divided by N", q(by_n), {BY_N}),
    ("divided by 32", q(by_32), {fbk.HARDCODED}),
    ("divided by len(phi)", q(by_len), {"dividing by B where M was meant"}),
    ("divided by M - 1", q(by_m_minus_one), {"dividing by M - 1 where M was meant"}),
    ("no normalisation", q(no_norm), {NO_NORM}),
    ("softmax", q(softmax), {SOFTMAX}),
    ("y divided twice", q(normalised_twice), {"y divided by M twice", "dividing by M twice"}),
    ("sum normaliser", q(sum_normaliser), {"normalising by the sum of f"}),
    ("phi modified in place", q(modifies_phi), {fbk.INPLACE_INPUT}),
    ("numpy", q(numpy_version), {fbk.DETACHED, fbk.NUMPY}),
    ("no_grad map", q(no_grad), {fbk.DETACHED}),
    ("batch 0", q(batch0), {fbk.BATCH}),
    ("view(2, 16, 8)", q(view_fixed), {fbk.HARDCODED}),
    ("transposed", q(transposed), {fbk.TRANSPOSED}),
    ("divided by C'", q(by_cp), {"dividing by C' where M was meant"}),
    ("sqrt scale", q(scaled), {"a scale the formula does not have"}),
    ("linear builds N x M", lin(linear_quadratic), {NM}),
    ("linear divided by N", lin(linear_by_n), {BY_N}),
    ("linear forgot return", lin(linear_forgot_return), {fbk.NO_RETURN}),
    ("linear in the wrong order", lin(linear_wrong_order), {NM}),
    ("linear no_grad", lin(linear_no_grad), {fbk.DETACHED}),
    ("linear modifies theta", lin(linear_inplace), {fbk.INPLACE_INPUT}),
    ("linear missing transpose", lin(linear_missing_transpose), {fbk.MATMUL_SHAPES}),
    ("linear returns a pair", lin(linear_returns_pair), {fbk.WRONG_TYPE}),
]


def right_float32(theta, phi, g):
    attention = (theta.float() @ phi.float().transpose(1, 2)) / phi.shape[1]
    return attention @ g.float(), attention


def right_einsum(theta, phi, g):
    attention = torch.einsum("bnc,bmc->bnm", theta, phi) / phi.size(1)
    return torch.einsum("bnm,bmd->bnd", attention, g), attention


def right_inplace_safe(theta, phi, g):
    attention = torch.bmm(theta, phi.permute(0, 2, 1))
    attention /= phi.shape[1]  # in place on a fresh tensor: mul/div keep the backward intact
    return torch.bmm(attention, g), attention


def right_linear_einsum(theta, phi, g):
    kv = torch.einsum("bmc,bmd->bcd", phi, g) / phi.shape[1]
    return torch.einsum("bnc,bcd->bnd", theta, kv)


def right_linear_float32(theta, phi, g):
    return (theta.float() @ (phi.float().transpose(1, 2) @ g.float())) / phi.shape[1]


def right_linear_mean(theta, phi, g):
    # phi^T g / M is the mean over the keys of the outer products phi_j g_j^T
    return theta @ (phi.unsqueeze(-1) * g.unsqueeze(-2)).mean(dim=1)


RIGHT = [("float32", (right_float32, right_linear_float32)),
         ("einsum", (right_einsum, right_linear_einsum)),
         ("in-place safe", (right_inplace_safe, linear)),
         ("mean of outer products", (dot, right_linear_mean))]
