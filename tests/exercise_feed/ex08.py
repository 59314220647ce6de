"""Exercise 8, the cost of a configuration: fn(mode, shape, inter_channels) -> FLOPs."""

import math

import torch

from nlcourse.exercises import _feedback as fbk


def _sizes(shape, inter_channels):
    B, C, H, W = shape
    Cp = inter_channels or C // 2
    return B, C, H, W, Cp, H * W, (H // 2) * (W // 2)


def _pair_width(mode, C, Cp):
    return {"gaussian": C, "concatenation": 2 * Cp}.get(mode, Cp)


def _convs(mode, N, C, Cp):
    return N * C * Cp * (1 if mode == "gaussian" else 3) + N * Cp * C


def macs(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def no_batch(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def no_pool(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    M = N
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def quarter(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    M = N / 4
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def no_w(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    convs = N * C * Cp * (1 if mode == "gaussian" else 3)
    return 2 * B * (convs + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def pairwise_only(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * B * (N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def convs_only(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * B * _convs(mode, N, C, Cp)


def gaussian_with_theta(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    convs = 4 * N * C * Cp
    return 2 * B * (convs + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def width_c(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    width = 2 * C if mode == "concatenation" else C
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * width + N * M * Cp)


def no_weighted_sum(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp))


def concat_like_dot(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    width = C if mode == "gaussian" else Cp
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * width + N * M * Cp)


def cp_as_c(mode, shape, inter_channels=None):
    B, C, H, W = shape
    Cp = inter_channels or C
    N, M = H * W, (H // 2) * (W // 2)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def forgot_return(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def as_string(mode, shape, inter_channels=None):
    return f"{2 * macs(mode, shape, inter_channels) / 1e6:.1f} MFLOPs"


def as_tuple(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * B * _convs(mode, N, C, Cp), 2 * B * N * M * (_pair_width(mode, C, Cp) + Cp)


def cp_none_crash(mode, shape, inter_channels=None):
    B, C, H, W = shape
    N, M = H * W, (H // 2) * (W // 2)
    Cp = inter_channels
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def pooled_twice(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    M = (H // 4) * (W // 4)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def precedence(mode, shape, inter_channels=None):
    B, C, H, W = shape
    Cp = inter_channels or C // 2
    N, M = H * W, H // 2 * W // 2
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def cp_rounded_up(mode, shape, inter_channels=None):
    B, C, H, W = shape
    Cp = inter_channels or (C + 1) // 2
    N, M = H * W, (H // 2) * (W // 2)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def cp_half(mode, shape, inter_channels=None):
    B, C, H, W = shape
    Cp = inter_channels or C / 2
    N, M = H * W, (H // 2) * (W // 2)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def pool_ceil(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    M = math.ceil(H / 2) * math.ceil(W / 2)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def quarter_floor(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    M = N // 4
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def ignores_inter_channels(mode, shape, inter_channels=None):
    return 2 * macs(mode, shape, None)


def ignores_mode(mode, shape, inter_channels=None):
    return 2 * macs("embedded_gaussian", shape, inter_channels)


def sum_at_width_c(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * C)


def macs_without_batch(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return _convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp


def scores_twice(mode, shape, inter_channels=None):
    """Counts the scores once for f and again for the normalisation's pass."""
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * B * (_convs(mode, N, C, Cp) + 2 * N * M * _pair_width(mode, C, Cp) + N * M * Cp)


def as_numpy_array(mode, shape, inter_channels=None):
    import numpy as np
    return np.array([2 * macs(mode, shape, inter_channels)])[:0]


def gaussian_cp_width(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    width = 2 * Cp if mode == "concatenation" else Cp
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * width + N * M * Cp)


def with_residual(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    return 2 * macs(mode, shape, inter_channels) + 2 * B * N * C      # "z = W y + x"


def pool_round(mode, shape, inter_channels=None):
    B, C, H, W, Cp, N, M = _sizes(shape, inter_channels)
    M = round(H / 2) * round(W / 2)
    return 2 * B * (_convs(mode, N, C, Cp) + N * M * _pair_width(mode, C, Cp) + N * M * Cp)


WRONG = [
    ("multiply-adds", macs, {"multiply-adds, not FLOPs"}),
    ("batch forgotten", no_batch, {"the batch forgotten"}),
    ("no pooling", no_pool, {"no sub-sampling"}),
    ("N / 4", quarter, {"N / 4 instead of pooling each axis"}),
    ("W's conv forgotten", no_w, {"W's convolution forgotten"}),
    ("pairwise only", pairwise_only, {"the convolutions forgotten"}),
    ("convolutions only", convs_only, {"the pairwise step forgotten"}),
    ("Gaussian with theta and phi", gaussian_with_theta, {"theta and phi counted in Gaussian "
                                                          "mode"}),
    ("scores at width C", width_c, {"the scores at the wrong width"}),
    ("no weighted sum", no_weighted_sum, {"the weighted sum forgotten"}),
    ("concatenation like dot", concat_like_dot, {"the concatenation counted like the dot "
                                                 "product"}),
    ("C' = C by default", cp_as_c, {"C' taken as C"}),
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("a string", as_string, {fbk.WRONG_TYPE}),
    ("a tuple", as_tuple, {fbk.WRONG_TYPE}),
    ("inter_channels None unhandled", cp_none_crash, {fbk.EXCEPTION}),
    ("pooled by 4", pooled_twice, {"pooled twice"}),
    ("H // 2 * W // 2", precedence, {"H // 2 * W // 2 without brackets"}),
    ("(C + 1) // 2", cp_rounded_up, {"C' rounded up"}),
    ("C / 2", cp_half, {"C' as C / 2, not C // 2"}),
    ("ceil pooling", pool_ceil, {"the pooled size rounded up"}),
    ("N // 4", quarter_floor, {"N // 4 instead of pooling each axis"}),
    ("inter_channels ignored", ignores_inter_channels, {"inter_channels ignored"}),
    ("mode ignored", ignores_mode, {"the mode ignored"}),
    ("weighted sum at width C", sum_at_width_c, {"the weighted sum at width C"}),
    ("multiply-adds and no batch", macs_without_batch, {"multiply-adds, not FLOPs",
                                                        "the batch forgotten"}),
    ("scores counted twice", scores_twice, {"the scores counted 2 times"}),
    ("an empty array", as_numpy_array, {fbk.EMPTY}),
    ("Gaussian scores at C'", gaussian_cp_width, {"the Gaussian's scores at width C'"}),
    ("the residual as multiply-adds", with_residual, {"the residual counted as multiply-adds"}),
    ("round(H / 2)", pool_round, {"the pooled size from round(H / 2)"}),
]


def right_float(mode, shape, inter_channels=None):
    return float(2 * macs(mode, shape, inter_channels))


def right_tensor(mode, shape, inter_channels=None):
    return torch.tensor(2 * macs(mode, shape, inter_channels))


def right_by_terms(mode, shape, inter_channels=None):
    B, C, H, W = shape
    Cp = C // 2 if inter_channels is None else inter_channels
    N = H * W
    M = len(range(0, H - 1, 2)) * len(range(0, W - 1, 2))
    terms = {"g": N * C * Cp, "W": N * Cp * C}
    if mode != "gaussian":
        terms.update(theta=N * C * Cp, phi=N * C * Cp)
    terms["scores"] = N * M * {"gaussian": C, "concatenation": 2 * Cp}.get(mode, Cp)
    terms["sum"] = N * M * Cp
    return 2 * B * sum(terms.values())


RIGHT = [("float", right_float), ("a 0-d tensor", right_tensor), ("term by term", right_by_terms)]
