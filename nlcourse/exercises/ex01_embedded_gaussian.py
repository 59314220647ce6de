"""Exercise 1: the embedded Gaussian pairwise function and its normalisation."""

from __future__ import annotations

from .. import pitfalls
from ._feedback import SHAPES, Feedback, answers, diagnose_pair


def check_embedded_gaussian(fn) -> Feedback:
    """``fn(theta, phi, g) -> (y, attention)`` with attention = exp(theta.phi) / sum_j exp(...)."""
    fb = Feedback("Exercise 1 (embedded Gaussian)")
    for shape, (theta, phi, g), answer, (y_ref, a_ref) in answers(fb, fn, "embedded_gaussian"):
        a_dim1 = pitfalls.softmax_over_queries(theta, phi, g)[1]
        a_raw = pitfalls.embedded_gaussian_unnormalised(theta, phi, g)[1]
        known_maps = {
            "a softmax over the wrong dimension": (
                a_dim1, "it normalises over the queries (dim 1), so each COLUMN sums to 1; the "
                "weights of one query i must sum to 1 over the keys j: softmax(..., dim=-1)"),
            "a missing normalisation": (
                a_raw, "this is f = exp(theta . phi) itself; the map is f / C(x) with "
                "C(x) = sum_j f, which is what makes each row a softmax"),
            "a transposed map": (
                a_ref.transpose(1, 2), "rows must be the N queries and columns the M keys: "
                "(B, N, M), not (B, M, N)"),
        }
        known_y = {"a softmax over the wrong dimension": (a_dim1 @ g, known_maps[
                       "a softmax over the wrong dimension"][1]),
                   "a missing normalisation": (a_raw @ g, known_maps["a missing normalisation"][1])}
        if not diagnose_pair(fb, answer, (y_ref, a_ref), known_maps, known_y, shape):
            return fb.report()
    if not fb.ok:   # the function failed, or returned no pair
        return fb.report()
    fb.good("attention = softmax over the keys of theta . phi, shape (B, N, M), rows sum to 1")
    fb.good(f"y = attention @ g matches nlcourse.reference on {len(SHAPES)} random shapes")
    return fb.report()
