"""Exercise 1: the embedded Gaussian pairwise function and its normalisation."""

from __future__ import annotations

from .. import pitfalls, reference
from ._feedback import SHAPES, Feedback, as_pair, call, diagnose, token_inputs


def check_embedded_gaussian(fn) -> Feedback:
    """``fn(theta, phi, g) -> (y, attention)`` with attention = exp(theta.phi) / sum_j exp(...)."""
    fb = Feedback("Exercise 1 (embedded Gaussian)")
    for k, shape in enumerate(SHAPES):
        theta, phi, g = token_inputs(k, **shape)
        out = as_pair(fb, call(fb, fn, theta, phi, g))
        if out is None:
            return fb.report()
        y, attention = out
        y_ref, a_ref = reference.nonlocal_op("embedded_gaussian", theta, phi, g)
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
        if not diagnose(fb, attention, a_ref, known_maps, f"the attention for shape {shape}"):
            return fb.report()
        known_y = {"a softmax over the wrong dimension": (a_dim1 @ g, known_maps[
                       "a softmax over the wrong dimension"][1]),
                   "a missing normalisation": (a_raw @ g, known_maps["a missing normalisation"][1])}
        if not diagnose(fb, y, y_ref, known_y, f"y for shape {shape}"):
            return fb.report()
    fb.good("attention = softmax over the keys of theta . phi, shape (B, N, M), rows sum to 1")
    fb.good(f"y = attention @ g matches nlcourse.reference on {len(SHAPES)} random shapes")
    return fb.report()
