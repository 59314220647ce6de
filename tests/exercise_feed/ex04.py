"""Exercise 4: project(block, x) -> (theta, phi, g) and init_identity(block)."""

import torch
import torch.nn.functional as F
from torch import nn

from nlcourse import pitfalls
from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises.ex04_subsample_init import (CONV_ZERO_GAMMA_ONE, NOT_IDENTITY,
                                                    OTHER_PARAMS, VIEW, W_FROZEN, W_REPLACED,
                                                    W_ZERO)


def tokens(t):
    return t.flatten(2).transpose(1, 2)


# --- part 1: project ----------------------------------------------------------------------

def p_forgot_return(block, x):
    tokens(block.theta(x)), tokens(block.pool(block.phi(x))), tokens(block.pool(block.g(x)))


def p_theta_pooled(block, x):
    return (tokens(block.pool(block.theta(x))), tokens(block.pool(block.phi(x))),
            tokens(block.pool(block.g(x))))


def p_phi_not_pooled(block, x):
    return tokens(block.theta(x)), tokens(block.phi(x)), tokens(block.pool(block.g(x)))


def p_g_not_pooled(block, x):
    return tokens(block.theta(x)), tokens(block.pool(block.phi(x))), tokens(block.g(x))


def p_view(block, x):
    B, C = x.shape[0], block.inter_channels
    return (block.theta(x).view(B, -1, C), block.pool(block.phi(x)).view(B, -1, C),
            block.pool(block.g(x)).view(B, -1, C))


def p_view_fixed(block, x):
    return (block.theta(x).view(2, 48, 4).contiguous(), tokens(block.pool(block.phi(x))),
            tokens(block.pool(block.g(x))))


def p_channels_first(block, x):
    return (block.theta(x).flatten(2), block.pool(block.phi(x)).flatten(2),
            block.pool(block.g(x)).flatten(2))


def p_pool_input(block, x):
    small = block.pool(x)
    return tokens(block.theta(x)), tokens(block.phi(small)), tokens(block.g(small))


def p_avg_pool(block, x):
    pool = nn.AvgPool2d(2)
    return tokens(block.theta(x)), tokens(pool(block.phi(x))), tokens(pool(block.g(x)))


def p_no_grad(block, x):
    with torch.no_grad():
        return (tokens(block.theta(x)), tokens(block.pool(block.phi(x))),
                tokens(block.pool(block.g(x))))


def p_swapped(block, x):
    return tokens(block.phi(x)), tokens(block.pool(block.theta(x))), tokens(block.pool(block.g(x)))


def p_inplace_x(block, x):
    x.relu_()
    return (tokens(block.theta(x)), tokens(block.pool(block.phi(x))),
            tokens(block.pool(block.g(x))))


def p_two_items(block, x):
    return tokens(block.theta(x)), tokens(block.pool(block.phi(x)))


# --- part 2: init_identity ----------------------------------------------------------------

def i_conv_zero(block):
    pitfalls.init_conv_zero_bn_one(block)


def i_all_zero(block):
    for p in block.W.parameters():
        nn.init.zeros_(p)


def i_replace_identity(block):
    block.W = nn.Identity()


def i_replace_zero_conv(block):
    conv = nn.Conv2d(block.inter_channels, block.in_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    block.W = conv


def i_frozen(block):
    nn.init.zeros_(block.W[1].weight)
    nn.init.zeros_(block.W[1].bias)
    for p in block.W.parameters():
        p.requires_grad = False


def i_gamma_only(block):
    nn.init.zeros_(block.W[1].weight)


def i_beta_only(block):
    nn.init.zeros_(block.W[1].bias)


def i_forgot_nothing_changed(block):
    block.W[1].weight * 0  # computes, but never writes


def i_zero_g(block):
    nn.init.zeros_(block.g.weight)
    nn.init.zeros_(block.g.bias)


def i_small_gamma(block):
    with torch.no_grad():
        block.W[1].weight.fill_(1e-3)
        block.W[1].bias.zero_()


WRONG = [
    ("project: forgot return", p_forgot_return, {fbk.NO_RETURN}),
    ("project: theta pooled", p_theta_pooled, {"theta pooled"}),
    ("project: phi not pooled", p_phi_not_pooled, {"phi not pooled"}),
    ("project: g not pooled", p_g_not_pooled, {"g not pooled"}),
    ("project: .view", p_view, {VIEW}),
    ("project: view(2, 48, 4)", p_view_fixed, {fbk.HARDCODED}),
    ("project: channels first", p_channels_first, {"channels first (B, C', positions)"}),
    ("project: x pooled first", p_pool_input, {"the input pooled instead of the embeddings"}),
    ("project: average pool", p_avg_pool, {"average pooling instead of max pooling"}),
    ("project: no_grad", p_no_grad, {fbk.DETACHED}),
    ("project: theta and phi swapped", p_swapped, {"theta and phi swapped"}),
    ("project: x modified in place", p_inplace_x, {fbk.INPLACE_INPUT}),
    ("project: two outputs", p_two_items, {fbk.WRONG_TYPE}),
    ("init: conv zero, gamma one", i_conv_zero, {CONV_ZERO_GAMMA_ONE}),
    ("init: all of W zero", i_all_zero, {W_ZERO}),
    ("init: W replaced by Identity", i_replace_identity, {W_REPLACED}),
    ("init: W replaced by a zero conv", i_replace_zero_conv, {W_REPLACED}),
    ("init: W frozen", i_frozen, {W_FROZEN}),
    ("init: gamma only", i_gamma_only, {NOT_IDENTITY}),
    ("init: beta only", i_beta_only, {NOT_IDENTITY}),
    ("init: nothing written", i_forgot_nothing_changed, {NOT_IDENTITY}),
    ("init: g zeroed", i_zero_g, {OTHER_PARAMS}),
    ("init: small gamma", i_small_gamma, {NOT_IDENTITY}),
]


def right_project_permute(block, x):
    B, _, H, W = x.shape

    def tok(t):
        return t.reshape(t.shape[0], t.shape[1], -1).permute(0, 2, 1)
    return tok(block.theta(x)), tok(block.pool(block.phi(x))), tok(block.pool(block.g(x)))


def right_project_float32(block, x):
    return tuple(t.float() for t in block.project(x))


def right_project_functional(block, x):
    def pool(t):
        return F.max_pool2d(t, 2)
    return (block.theta(x).flatten(2).mT, pool(block.phi(x)).flatten(2).mT,
            pool(block.g(x)).flatten(2).mT)


def right_init_data(block):
    block.W[1].weight.data.zero_()
    block.W[1].bias.data.zero_()


def right_init_no_grad(block):
    with torch.no_grad():
        block.W[1].weight.fill_(0.0)
        block.W[1].bias.fill_(0.0)


def right_init_constant(block):
    nn.init.constant_(block.W[1].weight, 0)
    nn.init.constant_(block.W[1].bias, 0)


RIGHT = [("project: permute", right_project_permute),
         ("project: float32", right_project_float32),
         ("project: F.max_pool2d and .mT", right_project_functional),
         ("init: .data.zero_()", right_init_data),
         ("init: fill_ under no_grad", right_init_no_grad),
         ("init: constant_", right_init_constant)]
