"""Exercise 3: the concatenation version without the (B, 2C', N, M) tensor."""

from __future__ import annotations

import torch

from .. import pitfalls, reference
from ._feedback import SHAPES, Feedback, as_pair, call, diagnose_pair, token_inputs
from ._largest import largest_intermediate


def check_concatenation(fn) -> Feedback:
    """``fn(theta, phi, g, w) -> (y, attention)`` with attention = ReLU(a_i + b_j) / M."""
    fb = Feedback("Exercise 3 (concatenation)")
    for k, shape in enumerate(SHAPES):
        theta, phi, g = token_inputs(k, **shape)
        w = torch.randn(2 * shape["Cp"], dtype=torch.float64,
                        generator=torch.Generator().manual_seed(100 + k))
        result = call(fb, largest_intermediate, fn, theta, phi, g, w)
        if result is None:
            return fb.report()
        out, largest = result
        out = as_pair(fb, out)
        if out is None:
            return fb.report()
        y_ref, a_ref = reference.nonlocal_op("concatenation", theta, phi, g, w_concat=w)
        Cp, N, M = shape["Cp"], shape["N"], shape["M"]
        swapped = torch.cat([w[Cp:], w[:Cp]])
        known = {
            "a forgotten ReLU": (
                pitfalls.concatenation_without_relu(theta, phi, g, w)[1],
                "f = ReLU(w^T [theta_i; phi_j]): without the ReLU every query weighs the keys "
                "by a_i + b_j, and y_i collapses to a_i * mean(g) + mean(b g)"),
            "dividing by N where M was meant": (
                a_ref * M / N if N != M else None, f"C(x) = M = {M} keys, not N = {N} queries"),
            "the halves of w swapped": (
                reference.nonlocal_op("concatenation", theta, phi, g, w_concat=swapped)[1],
                "w's first C' entries multiply theta (the query), its last C' entries phi"),
            "a transposed map": (a_ref.transpose(1, 2), "the map is (B, N queries, M keys)"),
        }
        if not diagnose_pair(fb, out, (y_ref, a_ref), known, {}, shape):
            return fb.report()
        pairs = shape["B"] * N * M * 2 * Cp
        if largest >= pairs:
            fb.bad(f"the result is right, but a tensor of {largest:,} numbers was built: the "
                   f"(B, N, M, 2C') concatenation has {pairs:,}. Use w^T [theta_i; phi_j] = "
                   f"a_i + b_j", mistake="the concatenation tensor built")
            return fb.report()
    fb.good("f = ReLU(a_i + b_j) / M matches the reference on 3 random shapes")
    fb.good("no (B, N, M, 2C') tensor was built")
    return fb.report()
