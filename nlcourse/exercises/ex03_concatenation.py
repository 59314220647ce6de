"""Exercise 3: the concatenation version without the (B, N, M, 2C') tensor."""

from __future__ import annotations

import torch

from .. import pitfalls, reference
from ._feedback import CHECK_RNG, Feedback, describe, distinct, guarded, run_cases, token_case
from ._largest import Largest

CONCAT_TENSOR = "the concatenation tensor built"
BROADCAST_SUM = "an O(N M C') broadcast-then-sum"
PYTHON_LOOP = "a Python loop over pairs"


def draw_sizes(rng=None):
    """Three random sizes with C' >= 5, so that a (B, N, M, C') tensor is at least 5 times the
    (B, N, M) map the check allows; the last has large values."""
    rng = rng or CHECK_RNG
    s1 = distinct(rng, dict(B=(2, 3), N=(11, 17), M=(6, 9), Cp=(5, 5), Cg=(4, 4)))
    s2 = distinct(rng, dict(B=(4, 5), N=(6, 8), M=(12, 15), Cp=(9, 10), Cg=(3, 3)))
    s3 = distinct(rng, dict(B=(2, 3), N=(18, 22), M=(10, 13), Cp=(6, 7), Cg=(5, 5)))
    s1["scale"], s2["scale"], s3["scale"] = 1.0, 1.0, 12.0
    return [s1, s2, s3]


def _reference(theta, phi, g, w):
    return reference.nonlocal_op("concatenation", theta, phi, g, w_concat=w)


def _known(theta, phi, g, w):
    Cp, M, N = theta.shape[-1], phi.shape[1], theta.shape[1]
    a, b = theta @ w[:Cp], phi @ w[Cp:]
    scores = a.unsqueeze(2) + b.unsqueeze(1)

    def out(attention):
        return attention @ g, attention
    return {
        "a forgotten ReLU": (
            pitfalls.concatenation_without_relu(theta, phi, g, w),
            "f = ReLU(w^T [theta_i; phi_j]): without the ReLU every query weighs the keys by "
            "a_i + b_j, negative weights included"),
        "the halves of w swapped": (
            _reference(theta, phi, g, torch.cat([w[Cp:], w[:Cp]])),
            "w's first C' entries multiply theta (the query), its last C' entries phi (the key)"),
        "the same half of w for theta and phi": (
            out(torch.relu((theta @ w[:Cp]).unsqueeze(2) + (phi @ w[:Cp]).unsqueeze(1)) / M),
            "theta uses w[:C'] and phi uses w[C':]"),
        "the ReLU applied to each half": (
            out((torch.relu(a).unsqueeze(2) + torch.relu(b).unsqueeze(1)) / M),
            "the ReLU acts on the sum a_i + b_j, not on a and b separately"),
        "a softmax where C(x) = M was meant": (
            out(torch.softmax(torch.relu(scores), -1)), "concatenation divides ReLU(...) by "
            "the number of keys M; there is no softmax"),
        "normalising by the sum of f": (
            out(torch.relu(scores) / torch.relu(scores).sum(-1, keepdim=True).clamp_min(1e-300)),
            "C(x) = M, the number of keys, not the sum of the weights"),
        "dividing by N where M was meant": (
            out(torch.relu(scores) / N), f"C(x) = M = {M} keys, not N = {N} queries"),
    }


def _factors(size):
    N, M, Cp = size["N"], size["M"], size["Cp"]
    return {M: ("a missing normalisation", f"divide ReLU(a_i + b_j) by M = {M}, the number of "
                f"keys"),
            M / N: ("dividing by N where M was meant", f"C(x) = M = {M} keys, not N = {N}"),
            1 / M: ("dividing by M twice", f"divide once by M = {M}"),
            M / (2 * Cp): ("dividing by 2C' where M was meant", f"C(x) = M = {M}, not 2C'")}


@guarded("Exercise 3 (concatenation)")
def check_concatenation(fn) -> Feedback:
    """``fn(theta, phi, g, w) -> (y, attention)`` with attention = ReLU(a_i + b_j) / M."""
    fb = Feedback("Exercise 3 (concatenation)")
    sizes = draw_sizes()
    cases = []
    for k, size in enumerate(sizes):
        w = torch.randn(2 * size["Cp"], dtype=torch.float64,
                        generator=torch.Generator().manual_seed(100 + k)).requires_grad_()
        case = token_case(size, k, _reference, _known, _factors, extra={"w": w})
        case.size = size
        cases.append(case)

    def after(case):
        size, largest = case.size, case.measured.largest
        B, N, M, Cp = size["B"], size["N"], size["M"], size["Cp"]
        where = f"at size {describe(size)}"
        if largest >= B * N * M * 2 * Cp:
            fb.bad(f"the result is right, but a tensor of {largest:,} numbers was built {where}:"
                   f" the (B, N, M, 2C') concatenation has {B * N * M * 2 * Cp:,}. Use "
                   f"w^T [theta_i; phi_j] = a_i + b_j", mistake=CONCAT_TENSOR)
            return False
        if largest > 2 * B * N * M:
            fb.bad(f"the result is right, but a tensor of {largest:,} numbers was built {where},"
                   f" about {largest / (B * N * M):.0f} times the (B, N, M) map: a (B, N, M, C')"
                   f" product summed afterwards costs O(N M C') memory. Reduce over C' first: "
                   f"a = theta @ w[:C'], b = phi @ w[C':], then add a_i + b_j",
                   mistake=BROADCAST_SUM)
            return False
        if case.measured.operations > B * N * M:
            fb.bad(f"the result is right, but your function ran {case.measured.operations:,} "
                   f"tensor operations {where}, more than the {B * N * M:,} (b, i, j) pairs: a "
                   f"Python loop over positions, which takes seconds at real sizes. Use "
                   f"broadcasting: a.unsqueeze(2) + b.unsqueeze(1)", mistake=PYTHON_LOOP)
            return False
        return True

    if run_cases(fb, fn, cases, ("y", "attention"), measure=Largest, after=after):
        fb.good(f"f = ReLU(a_i + b_j) / M matches the reference, gradients included, at "
                f"{len(sizes)} random sizes ({'; '.join(describe(s) for s in sizes)})")
        fb.good("no tensor larger than twice the (B, N, M) map was built")
    return fb.report()
