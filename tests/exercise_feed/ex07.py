"""Exercise 7, the backward pass by hand: fn(theta, phi, g, grad_y) -> (grad_theta, grad_phi,
grad_g)."""

import numpy as np
import torch

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex07_softmax_backward import AUTOGRAD, SECOND_TERM


def _forward(theta, phi):
    return torch.softmax(theta @ phi.transpose(1, 2), dim=-1)


def forgot_return(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_S = A * (grad_y @ g.transpose(1, 2))
    grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def no_second_term(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_S = A * (grad_y @ g.transpose(1, 2))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def sum_wrong_dim(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(dim=1, keepdim=True))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def sum_unweighted(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - grad_A.sum(-1, keepdim=True))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def sign_flipped(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * ((A * grad_A).sum(-1, keepdim=True) - grad_A)
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, -(A.transpose(1, 2) @ grad_y)


def softmax_skipped(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_S = grad_y @ g.transpose(1, 2)
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def grad_g_untransposed(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A @ grad_y


def swapped(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S.transpose(1, 2) @ theta, grad_S @ phi, A.transpose(1, 2) @ grad_y


def with_autograd(theta, phi, g, grad_y):
    leaves = [t.clone().requires_grad_() for t in (theta, phi, g)]
    y = _forward(leaves[0], leaves[1]) @ leaves[2]
    y.backward(grad_y)
    return tuple(t.grad for t in leaves)


def literal_exp(theta, phi, g, grad_y):
    f = torch.exp(theta @ phi.transpose(1, 2))
    A = f / f.sum(-1, keepdim=True)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def modifies_grad_y(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_g = A.transpose(1, 2) @ grad_y
    grad_y -= 0.0 * grad_y + grad_y.mean()   # "centre" it, in place
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, grad_g


def batch0(theta, phi, g, grad_y):
    A = _forward(theta[:1], phi[:1])
    grad_A = grad_y[:1] @ g[:1].transpose(1, 2)
    grad_S = (A * (grad_A - (A * grad_A).sum(-1, keepdim=True))).expand(theta.shape[0], -1, -1)
    A = A.expand(theta.shape[0], -1, -1)
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def view_fixed(theta, phi, g, grad_y):
    A = _forward(theta, phi).view(2, 12, 6)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def divided_by_m(theta, phi, g, grad_y):
    M = phi.shape[1]
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S @ phi / M, grad_S.transpose(1, 2) @ theta / M, A.transpose(1, 2) @ grad_y / M


def wrong_order(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return A.transpose(1, 2) @ grad_y, grad_S @ phi, grad_S.transpose(1, 2) @ theta


def only_two(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta


def grad_s_transposed_for_theta(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return grad_S @ phi, grad_S @ theta, A.transpose(1, 2) @ grad_y


WRONG = [
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("Jacobian's second term forgotten", no_second_term, {SECOND_TERM}),
    ("row sum over dim 1", sum_wrong_dim, {"the row sum over the wrong dimension"}),
    ("row sum without the weights", sum_unweighted, {"the row sum without the weights"}),
    ("signs flipped", sign_flipped, {"a sign error"}),
    ("softmax skipped", softmax_skipped, {"the softmax skipped"}),
    ("grad_g without the transpose", grad_g_untransposed, {fbk.MATMUL_SHAPES, fbk.SHAPE}),
    ("grad_theta and grad_phi swapped", swapped, {"grad_theta and grad_phi swapped"}),
    ("autograd", with_autograd, {AUTOGRAD}),
    ("literal exp", literal_exp, {fbk.OVERFLOW}),
    ("grad_y modified in place", modifies_grad_y, {fbk.INPLACE_INPUT}),
    ("batch 0 for everyone", batch0, {fbk.BATCH}),
    ("view(2, 12, 6)", view_fixed, {fbk.HARDCODED}),
    ("divided by M", divided_by_m, {"a 1/M that belongs to the dot product"}),
    ("outputs in the wrong order", wrong_order, {"the outputs in the wrong order"}),
    ("two outputs", only_two, {fbk.WRONG_TYPE}),
    ("grad_phi without the transpose", grad_s_transposed_for_theta, {fbk.MATMUL_SHAPES,
                                                                     fbk.SHAPE}),
]


def right_einsum(theta, phi, g, grad_y):
    A = torch.einsum("bnc,bmc->bnm", theta, phi).softmax(-1)
    grad_A = torch.einsum("bnd,bmd->bnm", grad_y, g)
    grad_S = A * (grad_A - torch.einsum("bnm,bnm->bn", A, grad_A)[..., None])
    return (torch.einsum("bnm,bmc->bnc", grad_S, phi), torch.einsum("bnm,bnc->bmc", grad_S, theta),
            torch.einsum("bnm,bnd->bmd", A, grad_y))


def right_float32(theta, phi, g, grad_y):
    theta, phi, g, grad_y = (t.float() for t in (theta, phi, g, grad_y))
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_S = A * grad_A
    grad_S -= A * grad_S.sum(-1, keepdim=True)   # in place on a fresh tensor
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


def right_numpy(theta, phi, g, grad_y):
    t, p, v, gy = (x.numpy() for x in (theta, phi, g, grad_y))
    s = t @ p.transpose(0, 2, 1)
    e = np.exp(s - s.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    ga = gy @ v.transpose(0, 2, 1)
    gs = a * (ga - (a * ga).sum(-1, keepdims=True))
    return tuple(torch.from_numpy(x) for x in (gs @ p, gs.transpose(0, 2, 1) @ t,
                                               a.transpose(0, 2, 1) @ gy))


def right_jacobian_loop(theta, phi, g, grad_y):
    A = _forward(theta, phi)
    grad_A = grad_y @ g.transpose(1, 2)
    jac = torch.diag_embed(A) - A.unsqueeze(-1) * A.unsqueeze(-2)     # (B, N, M, M)
    grad_S = (jac @ grad_A.unsqueeze(-1)).squeeze(-1)
    return grad_S @ phi, grad_S.transpose(1, 2) @ theta, A.transpose(1, 2) @ grad_y


RIGHT = [("einsum", right_einsum), ("float32, in place", right_float32),
         ("NumPy (no autograd needed)", right_numpy), ("explicit Jacobian", right_jacobian_loop)]
