"""Exercise 2: the dot product, then its linear-time form theta (phi^T g) / M."""

from __future__ import annotations

import torch

from .. import pitfalls, reference
from ._feedback import Feedback, answers, call, close, diagnose, diagnose_pair, token_inputs
from ._largest import largest_intermediate


def check_dot_product(fn, fn_linear=None) -> Feedback:
    """``fn(theta, phi, g) -> (y, attention)``; ``fn_linear(theta, phi, g) -> y`` without the
    N x M matrix."""
    fb = Feedback("Exercise 2 (dot product)")
    for shape, (theta, phi, g), answer, (y_ref, a_ref) in answers(fb, fn, "dot_product"):
        f = theta @ phi.transpose(1, 2)
        wrong_n = pitfalls.dot_product_divided_by_n(theta, phi, g)[1]
        known = {
            "dividing by N where M was meant": (
                wrong_n if shape["N"] != shape["M"] else None,
                f"C(x) is the number of KEYS M = {shape['M']} (the positions summed over, after "
                f"pooling), not the number of queries N = {shape['N']}"),
            "a missing normalisation": (f, "the dot product's map is f / C(x) with C(x) = M"),
            "a softmax where C(x) = M was meant": (
                torch.softmax(f, dim=-1), "the dot-product version has no exponential: "
                "f = theta . phi can be negative, and it is divided by M, not normalised by a sum"),
            "a transposed map": (a_ref.transpose(1, 2), "the map is (B, N queries, M keys)"),
        }
        if not diagnose_pair(fb, answer, (y_ref, a_ref), known, {}, shape):
            return fb.report()
    if not fb.ok:   # the function failed, or returned no pair
        return fb.report()
    fb.good("attention = theta . phi / M with shape (B, N, M); y matches the reference")
    if fn_linear is not None:
        theta, phi, g = token_inputs(7, B=1, N=64, M=32, Cp=4, Cg=4)
        y_ref, _ = reference.nonlocal_op("dot_product", theta, phi, g)
        result = call(fb, largest_intermediate, fn_linear, theta, phi, g)
        if result is None:
            return fb.report()
        y_lin, largest = result
        if isinstance(y_lin, tuple):
            y_lin = y_lin[0]
        if not close(y_lin, y_ref):
            diagnose(fb, y_lin, y_ref, {
                "dividing by N where M was meant": (
                    pitfalls.dot_product_divided_by_n(theta, phi, g)[0],
                    "divide by the number of keys M")}, "the linear form's y")
            return fb.report()
        if largest >= 64 * 32:
            fb.bad(f"the linear form equals the reference but built a tensor of {largest:,} numbers, "
                   f"as large as the N x M = 2,048 matrix it should avoid: multiply phi^T g first "
                   f"(a C' x C' matrix), then theta by it", mistake="the N x M matrix built")
            return fb.report()
        fb.good(f"the linear form equals the quadratic one, and its largest intermediate holds "
                f"{largest:,} numbers (the N x M matrix would hold 2,048)")
    return fb.report()
