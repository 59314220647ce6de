"""Exercise 7: the backward pass of the Gaussian operation y = softmax(x x^T) x by hand, where one
input x is the query, the key and the value at once, so that three paths add; against autograd.

The gradients chapter derives the embedded Gaussian's backward pass with separate theta, phi and
g; here there is only x, so the learner must see that the chain rule sums over its three uses,
and that the score gradient is not symmetric although the scores are."""

from __future__ import annotations

import torch

from ._feedback import (CHECK_RNG, AUTOGRAD, Case, Feedback, Guard, clone_args, describe, distinct,
                        guarded, name_leaves, run_cases)

NAMES = ("grad_x",)
SECOND_TERM = "the softmax Jacobian's second term forgotten"
VALUE_PATH = "the value path forgotten"
KEY_PATH = "the key path forgotten"
QUERY_PATH = "the query path forgotten"
SYMMETRIC = "the score gradient taken as symmetric"
PATHS_APART = "the three paths returned separately, not added"


def gaussian(x):
    """y = softmax(x x^T) x over the keys, each row's largest score subtracted first (which
    leaves the softmax unchanged, and the large inputs of the check finite)."""
    scores = x @ x.transpose(1, 2)
    return torch.softmax(scores, dim=-1) @ x


def _autograd(x, grad_y):
    """The reference: autograd through :func:`gaussian`."""
    leaf = x.detach().clone().requires_grad_()
    with torch.enable_grad():
        return torch.autograd.grad(gaussian(leaf), leaf, grad_y)


def paths(x, grad_y, *, second_term=True, row_dim=-1, weighted=True, softmax=True,
          value_transposed=True, scale=1.0, softmax_dim=-1, grad_a_transposed=False):
    """(value, query, key): the three terms of dL/dx, each with one step changeable (the
    defaults are right; a keyword makes one known mistake). Used by the check only: the solution
    is in the notebook."""
    A = torch.softmax(scale * x @ x.transpose(1, 2), dim=softmax_dim)  # (B, N, N)
    grad_A = grad_y @ x.transpose(1, 2)                               # (B, N, N)
    if grad_a_transposed:
        grad_A = grad_A.transpose(1, 2)
    if not softmax:
        grad_S = grad_A
    elif not second_term:
        grad_S = A * grad_A
    else:
        inner = grad_A * A if weighted else grad_A
        grad_S = A * (grad_A - inner.sum(row_dim, keepdim=True))
    grad_S = scale * grad_S
    value = (A.transpose(1, 2) if value_transposed else A) @ grad_y
    return value, grad_S @ x, grad_S.transpose(1, 2) @ x


def _known(x, grad_y):
    value, query, key = paths(x, grad_y)

    def total(**change):
        return (sum(paths(x, grad_y, **change)),)
    ones = torch.ones_like(grad_y)
    C = x.shape[-1]
    return {
        VALUE_PATH: ((query + key,), "x is also the value: y = A x gives A^T grad_y, the same "
                     "term as grad_g in the chapter"),
        KEY_PATH: ((value + query,), "x is also the key: the scores s_ij = x_i . x_j depend on "
                   "x_j too, which gives grad_S^T x (grad_phi in the chapter)"),
        QUERY_PATH: ((value + key,), "x is also the query: s_ij depends on x_i, which gives "
                     "grad_S x (grad_theta in the chapter)"),
        "only the value path": ((value,), "the scores depend on x as well (twice): add the query "
                                "and the key paths, grad_S x and grad_S^T x"),
        SYMMETRIC: ((value + 2 * query,), "S = x x^T is symmetric, but grad_S is not (its rows "
                    "are softmax rows): the two score paths are grad_S x + grad_S^T x, not "
                    "2 grad_S x"),
        "the score gradient taken as symmetric (transposed)": (
            (value + 2 * key,), "grad_S is not symmetric: the query path is grad_S x and the "
            "key path grad_S^T x", SYMMETRIC),
        SECOND_TERM: (total(second_term=False), "the softmax's Jacobian is diag(a) - a a^T: "
                      "grad_s = a * (grad_a - sum_j a_j grad_a_j), and the subtracted sum is "
                      "missing"),
        "the row sum over the wrong dimension": (
            total(row_dim=1), "the softmax runs over the keys (dim -1), so the sum in its "
            "Jacobian does too"),
        "the row sum without the weights": (
            total(weighted=False), "the subtracted term is sum_j a_j grad_a_j: weight each "
            "grad_a_j by a_j"),
        "the softmax skipped": (total(softmax=False), "grad_A is the gradient with respect to "
                                "the weights; the scores sit behind the softmax, whose Jacobian "
                                "multiplies it"),
        "A instead of A^T in the value path": (
            total(value_transposed=False), "y_i = sum_j a_ij x_j, so x_j collects a_ij over the "
            "queries i: A^T grad_y"),
        "the score paths with the wrong sign": (
            (value - query - key,), "the score paths add to the value path, like every path of "
            "the chain rule: value + grad_S x + grad_S^T x"),
        "grad_A transposed": (total(grad_a_transposed=True), "grad_A = grad_y x^T, (B, N, N) "
                              "with one row per query: x grad_y^T is its transpose"),
        "the softmax over the queries in the forward pass": (
            total(softmax_dim=1), "the weights are a softmax over the keys, dim=-1: S is "
                                  "symmetric, so a softmax over dim 1 gives A^T"),
        "grad_y ignored": ((sum(paths(x, ones)),), "the backward pass starts from the gradient "
                           "it is given, grad_y, not from y.sum() (a grad_y of ones)"),
        "a scale the formula does not have": (
            total(scale=C ** -0.5), f"the scores were multiplied by C^-1/2 = {C ** -0.5:.3g}; "
            f"this exercise's Gaussian is softmax(x x^T) with no scale"),
    }


def _factors(size):
    N = size["N"]
    return {-1.0: ("a sign error", "the gradient points the other way: check the sign of the "
                   "subtracted term and of every product"),
            2.0: ("every path counted twice", "each of the three uses of x contributes once"),
            1 / N: ("a 1/N that belongs to the dot product", f"the Gaussian has no 1/N (N = {N}):"
                    f" its normalisation is the softmax itself")}


def _apart(x_shape):
    def inspect(out):
        if (isinstance(out, (tuple, list)) and len(out) == 3 and all(
                isinstance(t, torch.Tensor) and tuple(t.shape) == x_shape for t in out)):
            return PATHS_APART, ("you returned three tensors of x's shape, one per path: x is "
                                 "one variable, and its gradient is their sum")
        return None
    return inspect


def draw_sizes(rng=None) -> list[dict]:
    """Three random sizes: N queries (and keys) of C channels, batch above one, all different;
    the last with values large enough that exp(x_i . x_i) overflows unless the max is
    subtracted."""
    rng = rng or CHECK_RNG
    out = [distinct(rng, dict(B=(2, 3), N=(9, 14), C=(4, 6))),
           distinct(rng, dict(B=(4, 5), N=(6, 8), C=(10, 12))),
           distinct(rng, dict(B=(2, 3), N=(15, 20), C=(5, 7)))]
    for size, scale in zip(out, (1.0, 1.0, 15.0)):
        size["scale"] = scale
    return out


def _case(size, k):
    gen = torch.Generator().manual_seed(500 + k)
    B, N, C, s = size["B"], size["N"], size["C"], size["scale"]
    x = torch.randn(B, N, C, dtype=torch.float64, generator=gen) * s
    grad_y = torch.randn(B, N, C, dtype=torch.float64, generator=gen)
    leaves = name_leaves(x=x, grad_y=grad_y)
    passed, watch = clone_args(leaves, ["x", "grad_y"])
    return Case(args=tuple(passed), watch=watch, leaves=leaves,
                reference=lambda: _autograd(x, grad_y), known=lambda: _known(x, grad_y),
                factors=_factors(size), sizes=dict(size), where=f"at size {describe(size)}",
                differentiable=False, no_grad_call=True, floor=s if s > 1 else 0.0,
                guard=lambda: Guard(autograd=True), inspect=_apart((B, N, C)))


@guarded("Exercise 7 (the backward pass by hand)")
def check_softmax_backward(fn) -> Feedback:
    """``fn(x, grad_y) -> grad_x`` for y = softmax(x x^T) x (the Gaussian operation with x as
    query, key and value), written with tensor operations only: any use of autograd is refused
    by name. Compared with autograd's gradient."""
    fb = Feedback("Exercise 7 (the backward pass by hand)")
    sizes = draw_sizes()
    if run_cases(fb, fn, [_case(s, k) for k, s in enumerate(sizes)], NAMES):
        fb.good(f"grad_x equals autograd's at {len(sizes)} random sizes "
                f"({'; '.join(describe(s) for s in sizes)}), large scores included, with no "
                f"autograd in your function")
    return fb.report()


__all__ = ["check_softmax_backward", "gaussian", "paths", "AUTOGRAD"]
