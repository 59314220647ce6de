"""Exercise 7, the backward pass by hand with three paths: fn(x, grad_y) -> grad_x for
y = softmax(x x^T) x."""

import numpy as np
import torch

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex07_softmax_backward import (KEY_PATH, PATHS_APART, QUERY_PATH,
                                                      SECOND_TERM, SYMMETRIC, VALUE_PATH)


def _steps(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    grad_A = grad_y @ x.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return A, grad_A, grad_S


def forgot_return(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def no_value_path(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return grad_S @ x + grad_S.transpose(1, 2) @ x


def query_only(x, grad_y):
    """The chapter's grad_theta plus grad_g: x treated as query and value, not as key."""
    A, grad_A, grad_S = _steps(x, grad_y)
    return A.transpose(1, 2) @ grad_y + grad_S @ x


def key_only(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return A.transpose(1, 2) @ grad_y + grad_S.transpose(1, 2) @ x


def symmetric(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return A.transpose(1, 2) @ grad_y + 2 * grad_S @ x     # "S is symmetric"


def no_second_term(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    grad_S = A * (grad_y @ x.transpose(1, 2))
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def row_sum_dim1(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    grad_A = grad_y @ x.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(1, keepdim=True))
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def value_untransposed(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return A @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def sign_flipped(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return -(A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x)


def three_returned(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return A.transpose(1, 2) @ grad_y, grad_S @ x, grad_S.transpose(1, 2) @ x


def with_enable_grad(x, grad_y):
    with torch.enable_grad():
        leaf = x.clone().requires_grad_()
        y = torch.softmax(leaf @ leaf.transpose(1, 2), dim=-1) @ leaf
        grad, = torch.autograd.grad(y, leaf, grad_y)
    return grad


def with_func_vjp(x, grad_y):
    _, pullback = torch.func.vjp(lambda t: torch.softmax(t @ t.transpose(1, 2), -1) @ t, x)
    return pullback(grad_y)[0]


def with_backward(x, grad_y):
    with torch.enable_grad():
        leaf = x.detach().clone()
        leaf.requires_grad = True
        (torch.softmax(leaf @ leaf.transpose(1, 2), dim=-1) @ leaf).backward(grad_y)
    return leaf.grad


def literal_exp(x, grad_y):
    f = torch.exp(x @ x.transpose(1, 2))
    A = f / f.sum(-1, keepdim=True)
    grad_A = grad_y @ x.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def grad_y_in_place(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    value = A.transpose(1, 2) @ grad_y
    grad_y -= grad_y.mean()                                   # "centre" it, in place
    grad_A = grad_y @ x.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return value + grad_S @ x + grad_S.transpose(1, 2) @ x


def batch0(x, grad_y):
    A, grad_A, grad_S = _steps(x[:1], grad_y[:1])
    one = A.transpose(1, 2) @ grad_y[:1] + grad_S @ x[:1] + grad_S.transpose(1, 2) @ x[:1]
    return one.expand(x.shape[0], -1, -1)


def fixed_view(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    grad = A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x
    return grad.view(3, 12, 5)


def ignores_grad_y(x, grad_y):
    return sum(_paths(x, torch.ones_like(grad_y)))


def _paths(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return A.transpose(1, 2) @ grad_y, grad_S @ x, grad_S.transpose(1, 2) @ x


def softmax_skipped(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    grad_S = grad_y @ x.transpose(1, 2)
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def unweighted_sum(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    grad_A = grad_y @ x.transpose(1, 2)
    grad_S = A * (grad_A - grad_A.sum(-1, keepdim=True))
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def zeros_left(x, grad_y):
    grad = torch.zeros_like(x)
    A, grad_A, grad_S = _steps(x, grad_y)
    grad + A.transpose(1, 2) @ grad_y                         # never assigned
    return grad


def score_paths_subtracted(x, grad_y):
    A, grad_A, grad_S = _steps(x, grad_y)
    return A.transpose(1, 2) @ grad_y - grad_S @ x - grad_S.transpose(1, 2) @ x


def grad_a_transposed(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    grad_A = x @ grad_y.transpose(1, 2)                       # (B, N, N) either way: runs
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


def softmax_dim1(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=1)
    grad_A = grad_y @ x.transpose(1, 2)
    grad_S = A * (grad_A - (A * grad_A).sum(-1, keepdim=True))
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


WRONG = [
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("value path forgotten", no_value_path, {VALUE_PATH}),
    ("key path forgotten", query_only, {KEY_PATH}),
    ("query path forgotten", key_only, {QUERY_PATH}),
    ("2 grad_S x", symmetric, {SYMMETRIC}),
    ("Jacobian's second term forgotten", no_second_term, {SECOND_TERM}),
    ("row sum over dim 1", row_sum_dim1, {"the row sum over the wrong dimension"}),
    ("A instead of A^T", value_untransposed, {"A instead of A^T in the value path"}),
    ("signs flipped", sign_flipped, {"a sign error"}),
    ("three paths returned", three_returned, {PATHS_APART}),
    ("autograd under enable_grad", with_enable_grad, {fbk.AUTOGRAD}),
    ("torch.func.vjp", with_func_vjp, {fbk.AUTOGRAD}),
    (".backward() on a leaf", with_backward, {fbk.AUTOGRAD}),
    ("literal exp", literal_exp, {fbk.OVERFLOW}),
    ("grad_y modified in place", grad_y_in_place, {fbk.INPLACE_INPUT}),
    ("batch 0 for everyone", batch0, {fbk.BATCH}),
    ("view(3, 12, 5)", fixed_view, {fbk.HARDCODED}),
    ("grad_y ignored", ignores_grad_y, {"grad_y ignored"}),
    ("softmax skipped", softmax_skipped, {"the softmax skipped"}),
    ("row sum without the weights", unweighted_sum, {"the row sum without the weights"}),
    ("zeros never filled", zeros_left, {fbk.ALL_ZERO}),
    ("score paths subtracted", score_paths_subtracted, {"the score paths with the wrong sign"}),
    ("x grad_y^T", grad_a_transposed, {"grad_A transposed"}),
    ("softmax over dim 1", softmax_dim1, {"the softmax over the queries in the forward pass"}),
]


def right_einsum(x, grad_y):
    A = torch.einsum("bnc,bmc->bnm", x, x).softmax(-1)
    grad_A = torch.einsum("bnc,bmc->bnm", grad_y, x)
    grad_S = A * (grad_A - torch.einsum("bnm,bnm->bn", A, grad_A)[..., None])
    return (torch.einsum("bnm,bnc->bmc", A, grad_y) + torch.einsum("bnm,bmc->bnc", grad_S, x)
            + torch.einsum("bnm,bnc->bmc", grad_S, x))


def right_float32(x, grad_y):
    x, grad_y = x.float(), grad_y.float()
    A, grad_A, grad_S = _steps(x, grad_y)
    grad = A.transpose(1, 2) @ grad_y
    grad += (grad_S + grad_S.transpose(1, 2)) @ x         # in place on a fresh tensor
    return grad


def right_numpy(x, grad_y):
    t, gy = x.numpy(), grad_y.numpy()
    s = t @ t.transpose(0, 2, 1)
    e = np.exp(s - s.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    ga = gy @ t.transpose(0, 2, 1)
    gs = a * (ga - (a * ga).sum(-1, keepdims=True))
    return torch.from_numpy(a.transpose(0, 2, 1) @ gy + (gs + gs.transpose(0, 2, 1)) @ t)


def right_jacobian(x, grad_y):
    A = torch.softmax(x @ x.transpose(1, 2), dim=-1)
    grad_A = grad_y @ x.transpose(1, 2)
    jac = torch.diag_embed(A) - A.unsqueeze(-1) * A.unsqueeze(-2)       # (B, N, N, N)
    grad_S = (jac @ grad_A.unsqueeze(-1)).squeeze(-1)
    return A.transpose(1, 2) @ grad_y + grad_S @ x + grad_S.transpose(1, 2) @ x


RIGHT = [("einsum", right_einsum), ("float32, in place", right_float32),
         ("NumPy (no autograd needed)", right_numpy), ("explicit Jacobian", right_jacobian)]
