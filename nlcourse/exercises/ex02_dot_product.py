"""Exercise 2: the dot product, then its linear-time form theta (phi^T g) / M."""

from __future__ import annotations

import torch

from .. import pitfalls, reference
from ._feedback import (CHECK_RNG, Feedback, describe, distinct, guarded, run_cases, token_case,
                        token_sizes)
from ._largest import Largest

NN_MATRIX = "the N x M matrix built"


def _reference(theta, phi, g):
    return reference.nonlocal_op("dot_product", theta, phi, g)


def _factors(size):
    N, M, Cp = size["N"], size["M"], size["Cp"]
    return {
        M: ("a missing normalisation", f"you forgot C(x): divide theta . phi by M = {M}, the "
            f"number of keys"),
        M / N: ("dividing by N where M was meant", f"C(x) is the number of KEYS M = {M} (the "
                f"positions summed over, after pooling), not the number of queries N = {N}"),
        1 / M: ("dividing by M twice", f"divide once by M = {M}: once in the map, and y = "
                f"attention @ g inherits it"),
        M / Cp: ("dividing by C' where M was meant", f"C(x) = M = {M} keys, not the channel "
                 f"count C' = {Cp}"),
        M ** 0.5 / Cp ** 0.5: ("a scale the formula does not have", "divide by M, with no "
                               "sqrt(C') scale"),
        Cp ** -0.5: ("a scale the formula does not have", "the dot product's map is theta . "
                     "phi / M, with no sqrt(C') scale"),
    }


def _known(theta, phi, g):
    f = theta @ phi.transpose(1, 2)
    M = phi.shape[1]
    return {
        "a softmax where C(x) = M was meant": (
            (torch.softmax(f, -1) @ g, torch.softmax(f, -1)), "the dot-product version has no "
            "exponential: f = theta . phi can be negative, and it is divided by M, not "
            "normalised by a sum"),
        "y without the normalisation": (
            (f @ g, None), "attention is divided by M but y is not: compute y from the "
            "normalised attention, y = attention @ g"),
        "dividing by N where M was meant": (
            pitfalls.dot_product_divided_by_n(theta, phi, g), "C(x) = M, the number of keys"),
        "normalising by the sum of f": (
            ((f / f.sum(-1, keepdim=True)) @ g, f / f.sum(-1, keepdim=True)),
            "C(x) = sum_j f belongs to the Gaussian versions; f = theta . phi can be negative, "
            f"so the dot product divides by the count M = {M}"),
    }


def draw_sizes(rng=None) -> list:
    """The three token sizes of the quadratic form (:func:`token_sizes`), and a fourth, larger
    one for the linear form's memory."""
    return token_sizes(rng) + [memory_size(rng)]


def memory_size(rng=None):
    s = distinct(rng or CHECK_RNG, dict(B=(2, 3), N=(60, 90), M=(40, 55), Cp=(4, 5), Cg=(6, 7)))
    s["scale"] = 1.0
    return s


@guarded("Exercise 2 (dot product)")
def check_dot_product(fn, fn_linear=None) -> Feedback:
    """``fn(theta, phi, g) -> (y, attention)``; ``fn_linear(theta, phi, g) -> y`` without the
    N x M matrix."""
    fb = Feedback("Exercise 2 (dot product)")
    sizes = token_sizes()
    cases = [token_case(s, k, _reference, _known, _factors) for k, s in enumerate(sizes)]
    if not run_cases(fb, fn, cases, ("y", "attention")):
        return fb.report()
    fb.good(f"attention = theta . phi / M with shape (B, N, M); y, attention and their "
            f"gradients match nlcourse.reference at {len(sizes)} random sizes")
    if fn_linear is None:
        return fb.report()
    big = memory_size()
    sizes = token_sizes() + [big]
    cases = [token_case(s, 10 + k, lambda t, p, g: (_reference(t, p, g)[0],),
                        lambda t, p, g: {n: ((v[0][0],) if v[0] and v[0][0] is not None else None,
                                             v[1]) for n, v in _known(t, p, g).items()},
                        _factors) for k, s in enumerate(sizes)]
    for case, size in zip(cases, sizes):
        case.memory = size

    def after(case):
        size = getattr(case, "memory", None)
        if size is None:
            return True
        largest = case.measured.largest
        N, M = size["N"], size["M"]
        pairs = [sh for sh in case.measured.shapes if N in sh and M in sh]
        if pairs:
            fb.bad(f"the linear form's y is right, but it built a tensor of shape {pairs[0]} at "
                   f"size {describe(size)}: an N x M = {N} x {M} matrix, which it should avoid. "
                   f"Multiply phi^T g first (a C' x Cg matrix), then theta by it", mistake=NN_MATRIX)
            return False
        fb.good(f"the linear form's largest intermediate holds {largest:,} numbers at size "
                f"{describe(size)} (one N x M matrix would hold {size['N'] * size['M']:,})")
        return True

    if run_cases(fb, fn_linear, cases, ("y",), measure=Largest, after=after):
        fb.good("the linear form equals the quadratic one, gradients included")
    return fb.report()
