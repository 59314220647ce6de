"""Exercise 1: the embedded Gaussian pairwise function and its normalisation."""

from __future__ import annotations

import torch

from .. import pitfalls, reference
from ._feedback import (TRANSPOSED, Feedback, describe, guarded, run_cases, token_case,
                        token_sizes)

NAMES = ("y", "attention")


def stable_reference(theta, phi, g):
    """reference.nonlocal_op's embedded Gaussian, f = exp(theta . phi) and C(x) = sum_j f, with
    each row's largest score subtracted inside the exponential first: f / C is unchanged (the
    factor exp(-max) cancels), and the large inputs of the check no longer overflow."""
    scores = theta @ phi.transpose(1, 2)
    if scores.abs().max() < 100:  # moderate inputs: the literal reference itself
        return reference.nonlocal_op("embedded_gaussian", theta, phi, g)
    f = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    attention = f / reference.normaliser("embedded_gaussian", f)
    return attention @ g, attention


def known_mistakes(theta, phi, g):
    Cp = theta.shape[-1]
    scores = theta @ phi.transpose(1, 2)
    over_queries = pitfalls.softmax_over_queries(theta, phi, g)
    unnormalised = pitfalls.embedded_gaussian_unnormalised(theta, phi, g)
    y_ref, a_ref = stable_reference(theta, phi, g)
    mistakes = {
        "a softmax over the wrong dimension": (
            over_queries, "it normalises over the queries (dim 1), so each COLUMN sums to 1; the "
            "weights of one query i must sum to 1 over the keys j: softmax(..., dim=-1)"),
        "a missing normalisation": (
            unnormalised if torch.isfinite(unnormalised[1]).all() else None,
            "this is f = exp(theta . phi) itself; the map is f / C(x) with C(x) = sum_j f, which "
            "is what makes each row a softmax"),
        TRANSPOSED: ((None, a_ref.transpose(1, 2)),
                     "rows must be the N queries and columns the M keys: (B, N, M), not (B, M, N)"),
        "a scale the formula does not have": (
            reference.nonlocal_op("embedded_gaussian", theta, phi, g, scale=Cp ** -0.5)
            if scores.abs().max() < 100 else None,
            f"theta . phi was multiplied by C'^-1/2 = {Cp ** -0.5:.3g}, as in a transformer or "
            f"the official code's use_scale; this exercise's f = exp(theta . phi) has no scale"),
        "a scale the formula does not have (1/C')": (
            reference.nonlocal_op("embedded_gaussian", theta, phi, g, scale=1 / Cp)
            if scores.abs().max() < 100 else None,
            f"theta . phi was divided by C' = {Cp}; f = exp(theta . phi) has no scale",
            "a scale the formula does not have"),
        "dividing by C'^-1/2 instead of multiplying": (
            pitfalls.scale_divided(theta, phi, g) if scores.abs().max() < 20 else None,
            "the scores were multiplied by sqrt(C'); this exercise's f = exp(theta . phi) has no "
            "scale at all (and the official code's multiplies by C'^-1/2)",
            "a scale the formula does not have"),
        "a softmax over the batch dimension": (
            _softmax_dim0(scores, g), "softmax(..., dim=0) normalises across the batch; each "
            "query's weights sum to 1 over the keys, dim=-1", "a softmax over the wrong dimension"),
        "a softmax over the whole map": (
            _flat_softmax(scores, g), "the softmax ran over all N x M entries at once (a "
            "flattened map): each query's own row must sum to 1"),
        "a log-softmax": (
            (None, torch.log_softmax(scores, dim=-1)), "log_softmax returns the LOG of the "
            "weights (negative numbers); the weights themselves are torch.softmax"),
        "the scores negated": (
            (None, torch.softmax(-scores, dim=-1)), "the weights grow with theta . phi: "
            "softmax(theta @ phi^T), without a minus sign"),
        "a sigmoid instead of the softmax": (
            (None, torch.sigmoid(scores)), "a sigmoid squashes each score on its own, so a row "
            "does not sum to 1; the softmax normalises over the keys"),
        "the values averaged without the weights": (
            (g.mean(1, keepdim=True).expand(-1, theta.shape[1], -1), None),
            "y must be the attention-weighted average of g, attention @ g, not the plain mean"),
        "the values summed without the weights": (
            (g.sum(1, keepdim=True).expand(-1, theta.shape[1], -1), None),
            "y must be the attention-weighted average of g, attention @ g"),
    }
    return mistakes


def _factors(size):
    M, N = size["M"], size["N"]
    return {1 / M: ("dividing by M after the softmax", f"the softmax already normalises: its "
                    f"rows sum to 1, and dividing by M = {M} keys shrinks them to 1/M"),
            1 / N: ("dividing by N after the softmax", f"the softmax already normalises; "
                    f"dividing by N = {N} is one normalisation too many")}


def _softmax_dim0(scores, g):
    attention = torch.softmax(scores, dim=0)
    return attention @ g, attention


def _flat_softmax(scores, g):
    B, N, M = scores.shape
    attention = torch.softmax(scores.reshape(B, -1), dim=-1).reshape(B, N, M)
    return attention @ g, attention


@guarded("Exercise 1 (embedded Gaussian)")
def check_embedded_gaussian(fn) -> Feedback:
    """``fn(theta, phi, g) -> (y, attention)`` with attention = exp(theta.phi) / sum_j exp(...)."""
    fb = Feedback("Exercise 1 (embedded Gaussian)")
    sizes = token_sizes()
    cases = [token_case(size, k, stable_reference, known_mistakes, _factors) for k, size in
             enumerate(sizes)]
    if run_cases(fb, fn, cases, NAMES):
        fb.good("attention = softmax over the keys of theta . phi, shape (B, N, M), rows sum to 1")
        fb.good(f"y and attention match nlcourse.reference, and so do their gradients, at "
                f"{len(sizes)} random sizes ({'; '.join(describe(s) for s in sizes)})")
        fb.good("large scores do not overflow")
    return fb.report()
