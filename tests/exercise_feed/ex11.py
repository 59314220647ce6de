"""Exercise 11, path length: fn(layers, x, src, dst) -> the first depth at which the output at
dst depends on the input at src, or None."""

import torch
from torch import nn

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex11_path_length import (FORMULA, FROM_ZERO, GRAPH_FREED, LAST_LAYER,
                                                 NO_GRAD, NO_NONE, ONE_TOO_MANY, SWAPPED,
                                                 THRESHOLD, WHOLE_MAP)


def _grad_at(layers, x, src, dst, depth):
    x = x.clone().requires_grad_()
    h = nn.Sequential(*layers[:depth])(x)
    grad, = torch.autograd.grad(h[:, :, dst[0], dst[1]].sum(), x)
    return grad


def _first(layers, x, src, dst, test, depths=None):
    for depth in depths or range(1, len(layers) + 1):
        grad = _grad_at(layers, x, src, dst, depth)
        if test(grad, grad[:, :, src[0], src[1]]):
            return depth
    return None


def right(layers, x, src, dst):
    return _first(layers, x, src, dst, lambda grad, g: bool((g != 0).any()))


def forgot_return(layers, x, src, dst):
    right(layers, x, src, dst)


def from_zero(layers, x, src, dst):
    for depth in range(len(layers)):
        grad = _grad_at(layers, x, src, dst, depth + 1)
        if (grad[:, :, src[0], src[1]] != 0).any():
            return depth
    return None


def whole_map(layers, x, src, dst):
    x = x.clone().requires_grad_()
    h = x
    for depth, layer in enumerate(layers, 1):
        h = layer(h)
        grad, = torch.autograd.grad(h.sum(), x, retain_graph=True)
        if (grad[:, :, src[0], src[1]] != 0).any():
            return depth
    return None


def swapped(layers, x, src, dst):
    return right(layers, x, (src[1], src[0]), (dst[1], dst[0]))


def relative_threshold(layers, x, src, dst):
    return _first(layers, x, src, dst,
                  lambda grad, g: bool((g.abs() > 1e-6 * grad.abs().max()).any()))


def absolute_threshold(layers, x, src, dst):
    return _first(layers, x, src, dst, lambda grad, g: bool((g.abs() > 1e-8).any()))


def rounded(layers, x, src, dst):
    """Rounds the gradient to 4 decimals before comparing ("to remove noise")."""
    return _first(layers, x, src, dst, lambda grad, g: bool((g.round(decimals=4) != 0).any()))


def last_never_tried(layers, x, src, dst):
    return _first(layers, x, src, dst, lambda grad, g: bool((g != 0).any()),
                  depths=range(1, len(layers)))


def depth_if_unreached(layers, x, src, dst):
    found = right(layers, x, src, dst)
    return len(layers) if found is None else found


def minus_one_if_unreached(layers, x, src, dst):
    found = right(layers, x, src, dst)
    return -1 if found is None else found


def formula(layers, x, src, dst):
    return max(abs(src[0] - dst[0]), abs(src[1] - dst[1]))


def no_requires_grad(layers, x, src, dst):
    h = x
    for depth, layer in enumerate(layers, 1):
        h = layer(h)
        grad, = torch.autograd.grad(h[:, :, dst[0], dst[1]].sum(), x)
        if (grad[:, :, src[0], src[1]] != 0).any():
            return depth
    return None


def graph_freed(layers, x, src, dst):
    x = x.clone().requires_grad_()
    h = x
    for depth, layer in enumerate(layers, 1):
        h = layer(h)
        h[:, :, dst[0], dst[1]].sum().backward()
        if (x.grad[:, :, src[0], src[1]] != 0).any():
            return depth
    return None


def as_bool(layers, x, src, dst):
    return right(layers, x, src, dst) is not None


def all_depths(layers, x, src, dst):
    return [d for d in range(1, len(layers) + 1)
            if (_grad_at(layers, x, src, dst, d)[:, :, src[0], src[1]] != 0).any()]


def one_too_many(layers, x, src, dst):
    x = x.clone().requires_grad_()
    h, reached = x, False
    for depth, layer in enumerate(layers, 1):
        if reached:
            return depth
        h = layer(h)
        grad, = torch.autograd.grad(h[:, :, dst[0], dst[1]].sum(), x, retain_graph=True)
        reached = bool((grad[:, :, src[0], src[1]] != 0).any())
    return len(layers) + 1 if reached else None


def inf_if_unreached(layers, x, src, dst):
    found = right(layers, x, src, dst)
    return float("inf") if found is None else found


WRONG = [
    ("forgot return", forgot_return, {fbk.NO_RETURN}),
    ("counted from 0", from_zero, {FROM_ZERO}),
    ("h.sum() over the whole map", whole_map, {WHOLE_MAP}),
    ("(col, row)", swapped, {SWAPPED}),
    ("relative threshold 1e-6", relative_threshold, {THRESHOLD}),
    ("absolute threshold 1e-8", absolute_threshold, {THRESHOLD}),
    ("gradient rounded to 4 decimals", rounded, {THRESHOLD}),
    ("range(1, len(layers))", last_never_tried, {LAST_LAYER}),
    ("len(layers) when out of reach", depth_if_unreached, {NO_NONE}),
    ("-1 when out of reach", minus_one_if_unreached, {NO_NONE}),
    ("max(|dr|, |dc|)", formula, {FORMULA}),
    ("x without requires_grad", no_requires_grad, {NO_GRAD}),
    (".backward() without retain_graph", graph_freed, {GRAPH_FREED}),
    ("a bool", as_bool, {fbk.WRONG_TYPE}),
    ("a list of depths", all_depths, {fbk.WRONG_TYPE}),
    ("inf when out of reach", inf_if_unreached, {fbk.NOT_FINITE, NO_NONE}),
    ("returns the next depth", one_too_many, {ONE_TOO_MANY}),
]


def right_one_pass(layers, x, src, dst):
    """One forward pass; retain_graph keeps it for every depth."""
    x = x.detach().clone().requires_grad_()
    h = x
    for depth, layer in enumerate(layers, 1):
        h = layer(h)
        grad, = torch.autograd.grad(h[0:, :, dst[0], dst[1]].sum(), x, retain_graph=True)
        if grad[:, :, src[0], src[1]].abs().sum() > 0:
            return depth
    return None


def right_backward_zeroed(layers, x, src, dst):
    for depth in range(1, len(layers) + 1):
        leaf = x.detach().clone().requires_grad_(True)
        out = leaf
        for layer in layers[:depth]:
            out = layer(out)
        out[:, :, dst[0], dst[1]].sum().backward()
        if torch.count_nonzero(leaf.grad[:, :, src[0], src[1]]):
            return torch.tensor(depth)                            # a 0-d tensor
    return None


def right_float32(layers, x, src, dst):
    """In float32, with layers copied to float32 (the gradient is tiny, but not zero)."""
    import copy
    layers = [copy.deepcopy(layer).float() for layer in layers]
    return _first(layers, x.float(), src, dst, lambda grad, g: bool(g.any()))


RIGHT = [("one forward pass, retain_graph", right_one_pass),
         ("backward, a fresh leaf per depth, a 0-d tensor", right_backward_zeroed),
         ("the helper, any()", lambda *a: _first(*a, lambda grad, g: bool(g.any()))),
         ("float32", right_float32)]
