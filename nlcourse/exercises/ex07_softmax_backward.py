"""Exercise 7: the backward pass of the embedded Gaussian operation, by hand, against autograd."""

from __future__ import annotations

import torch

from ._feedback import (Case, Feedback, clone_args, describe, guarded, name_leaves, run_cases,
                        token_inputs, token_sizes)
from .ex01_embedded_gaussian import stable_reference

NAMES = ("grad_theta", "grad_phi", "grad_g")
AUTOGRAD = "autograd used instead of the formulas"
SECOND_TERM = "the softmax Jacobian's second term forgotten"


def _autograd(theta, phi, g, grad_y):
    """The reference: autograd through nlcourse.reference's forward (max-shifted exponential)."""
    leaves = [t.detach().clone().requires_grad_() for t in (theta, phi, g)]
    with torch.enable_grad():
        y, _ = stable_reference(*leaves)
        return torch.autograd.grad(y, leaves, grad_y)


def _known(theta, phi, g, grad_y):
    A = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
    grad_A = grad_y @ g.transpose(1, 2)
    grad_g = A.transpose(1, 2) @ grad_y
    right_S = A * (grad_A - (grad_A * A).sum(-1, keepdim=True))

    def with_scores(grad_scores, grad_g=grad_g):
        return grad_scores @ phi, grad_scores.transpose(1, 2) @ theta, grad_g
    return {
        SECOND_TERM: (
            with_scores(A * grad_A), "the softmax's Jacobian is diag(a) - a a^T: grad_s = a * "
            "(grad_a - sum_j a_j grad_a_j), and the subtracted sum is missing"),
        "the row sum over the wrong dimension": (
            with_scores(A * (grad_A - (grad_A * A).sum(1, keepdim=True))),
            "the softmax runs over the keys (dim -1), so the sum in its Jacobian does too"),
        "the row sum without the weights": (
            with_scores(A * (grad_A - grad_A.sum(-1, keepdim=True))),
            "the subtracted term is sum_j a_j grad_a_j: weight each grad_a_j by a_j"),
        "the softmax skipped": (
            with_scores(grad_A), "grad_a is the gradient with respect to the weights; the "
            "scores s = theta . phi sit behind the softmax, whose Jacobian multiplies it"),
        "grad_theta and grad_phi swapped": (
            (right_S.transpose(1, 2) @ theta, right_S @ phi, grad_g),
            "s_ij = theta_i . phi_j: grad_theta = grad_s @ phi (one row per query), grad_phi = "
            "grad_s^T @ theta (one row per key)"),
        "the outputs in the wrong order": (
            (grad_g, right_S @ phi, right_S.transpose(1, 2) @ theta),
            "return (grad_theta, grad_phi, grad_g), in the order of the arguments"),
    }


def _factors(size):
    M = size["M"]
    return {-1.0: ("a sign error", "the gradient points the other way: check the sign of the "
                   "subtracted term and of every product"),
            1 / M: ("a 1/M that belongs to the dot product", f"the embedded Gaussian has no "
                    f"1/M (M = {M}): its normalisation is the softmax itself"),
            "rows": ("the softmax Jacobian's second term forgotten", "each row is off by its own "
                     "factor: check the softmax's Jacobian, diag(a) - a a^T")}


def _case(size, k):
    theta, phi, g = token_inputs(size, 500 + k)
    gen = torch.Generator().manual_seed(900 + k)
    grad_y = torch.randn(size["B"], size["N"], size["Cg"], dtype=torch.float64, generator=gen)
    leaves = name_leaves(theta=theta.detach(), phi=phi.detach(), g=g.detach(), grad_y=grad_y)
    passed, watch = clone_args(leaves, ["theta", "phi", "g", "grad_y"])
    return Case(args=tuple(passed), watch=watch, leaves=leaves,
                reference=lambda: _autograd(*leaves), known=lambda: _known(*leaves),
                factors=_factors(size), sizes=dict(size), where=f"at size {describe(size)}",
                differentiable=False, no_grad_call=True,
                floor=size["scale"] if size["scale"] > 1 else 0.0)


@guarded("Exercise 7 (the backward pass by hand)")
def check_softmax_backward(fn) -> Feedback:
    """``fn(theta, phi, g, grad_y) -> (grad_theta, grad_phi, grad_g)`` for y = softmax(theta
    phi^T) g, written with tensor operations (no autograd), compared with autograd."""
    fb = Feedback("Exercise 7 (the backward pass by hand)")
    sizes = token_sizes()
    start = len(fb.lines)
    if run_cases(fb, fn, [_case(s, k) for k, s in enumerate(sizes)], NAMES):
        fb.good(f"grad_theta, grad_phi and grad_g equal autograd's at {len(sizes)} random sizes "
                f"({'; '.join(describe(s) for s in sizes)}), large scores included")
    elif any("does not require grad" in text or "does not have a grad_fn" in text
             for _, text in fb.lines[start:]):
        fb.mistakes.append(AUTOGRAD)
        fb.lines.append((False, f"this looks like {AUTOGRAD}: the check calls your function "
                         f"under torch.no_grad(), so .backward() and torch.autograd.grad have "
                         f"nothing to work on. Write each gradient with matrix products"))
    return fb.report()
