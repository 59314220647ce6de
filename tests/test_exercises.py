"""The exercise checks: right answers pass, and every known mistake is recognised by name."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nlcourse import NonLocalBlock, pairwise, pitfalls, reference
from nlcourse.exercises import (check_concatenation, check_dot_product, check_embedded_gaussian,
                                check_identity_init, check_insert_block, check_map_reading,
                                check_projection, map_facts)
from nlcourse.viz import map_geometry


def eg_right(t, p, g):
    attention = torch.softmax(t @ p.transpose(1, 2), dim=-1)
    return attention @ g, attention


def dot_right(t, p, g):
    return reference.nonlocal_op("dot_product", t, p, g)


def dot_linear(t, p, g):
    return t @ (p.transpose(1, 2) @ g) / p.shape[1]


def cat_right(t, p, g, w):
    return pairwise.concatenation(t, p, g, w, need_map=True)


def tokens(t):
    return t.flatten(2).transpose(1, 2)


def zero_gamma(block):
    nn.init.zeros_(block.W[1].weight)
    nn.init.zeros_(block.W[1].bias)


# --- right answers pass -----------------------------------------------------------------------

def test_right_answers_pass(capsys):
    assert check_embedded_gaussian(eg_right)
    assert check_dot_product(dot_right, dot_linear)
    assert check_concatenation(cat_right)
    assert check_projection(lambda block, x: block.project(x))
    assert check_identity_init(zero_gamma)
    assert "all checks passed" in capsys.readouterr().out


def test_stub_is_reported_in_words():
    def stub(*args):
        raise NotImplementedError()
    fb = check_embedded_gaussian(stub)
    assert not fb and "still raises NotImplementedError" in str(fb)


# --- each listed mistake, fed exactly, is named ---------------------------------------------

def _mistake(fb, name):
    assert not fb.ok, str(fb)
    assert name in fb.mistakes, (name, str(fb))
    assert name in str(fb)


def test_softmax_over_the_wrong_dimension():
    _mistake(check_embedded_gaussian(pitfalls.softmax_over_queries),
             "a softmax over the wrong dimension")


def test_missing_normalisation():
    _mistake(check_embedded_gaussian(pitfalls.embedded_gaussian_unnormalised),
             "a missing normalisation")

    def dot_no_norm(t, p, g):
        f = t @ p.transpose(1, 2)
        return f @ g, f
    _mistake(check_dot_product(dot_no_norm), "a missing normalisation")


def test_dividing_by_n_where_m_was_meant():
    _mistake(check_dot_product(pitfalls.dot_product_divided_by_n),
             "dividing by N where M was meant")

    def cat_over_n(t, p, g, w):
        y, a = cat_right(t, p, g, w)
        scale = p.shape[1] / t.shape[1]
        return y * scale, a * scale
    _mistake(check_concatenation(cat_over_n), "dividing by N where M was meant")


def test_forgotten_relu():
    _mistake(check_concatenation(pitfalls.concatenation_without_relu), "a forgotten ReLU")


def test_transposed_map():
    _mistake(check_embedded_gaussian(pitfalls.transposed_map), "a transposed map")

    def dot_transposed(t, p, g):
        y, a = dot_right(t, p, g)
        return y, a.transpose(1, 2)
    _mistake(check_dot_product(dot_transposed), "a transposed map")


def test_theta_pooled():
    def project(block, x):
        return (tokens(block.pool(block.theta(x))), tokens(block.pool(block.phi(x))),
                tokens(block.pool(block.g(x))))
    _mistake(check_projection(project), "theta pooled")


def test_phi_not_pooled():
    def project(block, x):
        return tokens(block.theta(x)), tokens(block.phi(x)), tokens(block.pool(block.g(x)))
    _mistake(check_projection(project), "phi not pooled")


def test_view_that_mixes_channels():
    def project(block, x):
        return (pitfalls.tokens_by_view(block.theta(x)),
                pitfalls.tokens_by_view(block.pool(block.phi(x))),
                pitfalls.tokens_by_view(block.pool(block.g(x))))
    _mistake(check_projection(project), "a .view that mixes channels")


def test_w_zeroed_with_bn_gamma_left_at_one():
    _mistake(check_identity_init(pitfalls.init_conv_zero_bn_one), "W zeroed with BN gamma left at 1")


# --- further mistakes the checks know -------------------------------------------------------

def test_other_recognised_mistakes():
    def dot_softmax(t, p, g):
        a = torch.softmax(t @ p.transpose(1, 2), dim=-1)
        return a @ g, a
    _mistake(check_dot_product(dot_softmax), "a softmax where C(x) = M was meant")
    _mistake(check_dot_product(dot_right, lambda t, p, g: (t @ p.transpose(1, 2)) @ g / p.shape[1]),
             "the N x M matrix built")
    _mistake(check_concatenation(lambda t, p, g, w: reference.nonlocal_op(
        "concatenation", t, p, g, w_concat=w)), "the concatenation tensor built")

    def frozen(block):
        for p in block.W.parameters():
            nn.init.zeros_(p)
    _mistake(check_identity_init(frozen), "W frozen at zero")


def test_map_reading():
    geometry = map_geometry(196, 49)
    rng = np.random.default_rng(0)
    weights = rng.random(49)
    weights /= weights.sum()
    query = 3 * 14 + 5
    truth = map_facts(weights, geometry, query)
    assert check_map_reading(truth, weights, geometry, query)
    row, col = truth["strongest_key"]
    if row != col:
        swapped = dict(truth, strongest_key=(col, row))
        _mistake(check_map_reading(swapped, weights, geometry, query), "row and column swapped")
    _mistake(check_map_reading(dict(truth, distance_px=truth["distance_px"] / 4), weights,
                               geometry, query), "distance in cells, not pixels")
    _mistake(check_map_reading(dict(truth, entropy=truth["entropy"] / np.log(2)), weights,
                               geometry, query), "entropy in bits")


def test_insert_block():
    class Net(nn.Module):
        def __init__(self, with_block=True, bad_init=False):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.block = NonLocalBlock(8) if with_block else nn.Identity()
            if bad_init:
                pitfalls.init_conv_zero_bn_one(self.block)
                nn.init.normal_(self.block.W[0].weight)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 14 * 14, 10))

        def forward(self, x):
            return self.head(self.block(self.conv(x)))

    assert check_insert_block(Net)
    fb = check_insert_block(lambda: Net(with_block=False))
    assert not fb and "holds no nlcourse.NonLocalBlock" in str(fb)
    fb = check_insert_block(lambda: Net(bad_init=True))
    assert not fb and "not the identity at initialisation" in str(fb)


def test_map_reading_feedback_does_not_print_the_answers(capsys):
    """The solved exercise is published: its check's output must not give the answers away."""
    import numpy as np

    from nlcourse import viz
    from nlcourse.exercises import check_map_reading, map_facts

    weights = np.random.default_rng(0).dirichlet(np.ones(49))
    geometry, query = viz.map_geometry(196, 49), 6 * 14 + 4
    truth = map_facts(weights, geometry, query)
    assert check_map_reading(truth, weights, geometry, query)
    out = capsys.readouterr().out
    assert str(truth["strongest_key"]) not in out
    assert f"{truth['distance_px']:.2f}" not in out and f"{truth['entropy']:.3f}" not in out


# --- checks no answer can crash or fool --------------------------------------------------------

def test_feedback_that_compared_nothing_is_not_a_pass():
    from nlcourse.exercises import Feedback

    assert not Feedback("empty")
    fb = Feedback("a note only")
    fb.note("float32")
    assert not fb


def test_a_forgotten_return_fails_every_check():
    def nothing(*args):
        return None
    for check in (check_embedded_gaussian, check_dot_product, check_concatenation,
                  check_projection):
        fb = check(nothing)
        assert not fb and "a forgotten return" in fb.mistakes, str(fb)
    assert "a forgotten return" in check_insert_block(lambda: None).mistakes


def test_float32_answers_pass_with_a_note(capsys):
    def eg32(t, p, g):
        return eg_right(t.float(), p.float(), g.float())
    fb = check_embedded_gaussian(eg32)
    assert fb, str(fb)
    assert "torch.float32" in str(fb) and "accepted" in str(fb)


def test_an_input_changed_in_place_is_reported():
    def centred(t, p, g):
        t -= t.mean()
        return eg_right(t, p, g)
    _mistake(check_embedded_gaussian(centred), "an input modified in place")


def test_no_grad_and_numpy_answers_are_detached():
    def no_grad(t, p, g):
        with torch.no_grad():
            return eg_right(t, p, g)

    def via_numpy(t, p, g):
        y, a = eg_right(t, p, g)
        return torch.from_numpy(y.detach().numpy()), torch.from_numpy(a.detach().numpy())
    _mistake(check_embedded_gaussian(no_grad), "a detached output")
    _mistake(check_embedded_gaussian(via_numpy), "a detached output")


def test_a_softmax_without_the_max_subtracted_overflows():
    _mistake(check_embedded_gaussian(lambda t, p, g: reference.nonlocal_op(
        "embedded_gaussian", t, p, g)), "an exponential that overflows")


def test_hard_coded_sizes_are_named():
    def by_32(t, p, g):
        a = t @ p.transpose(1, 2) / 32
        return a @ g, a

    def fixed_view(t, p, g):
        y, a = eg_right(t, p, g)
        return y.view(2, 4, 48), a
    _mistake(check_dot_product(by_32), "a hard-coded size")
    _mistake(check_embedded_gaussian(fixed_view), "a hard-coded size")


def test_exceptions_come_back_with_the_last_traceback_line():
    def broken(t, p, g):
        return torch.softmax(t @ p, dim=-1)
    fb = check_embedded_gaussian(broken)
    assert not fb and "RuntimeError" in str(fb) and "your line" in str(fb)


def test_concatenation_memory_and_reduction():
    def broadcast_sum(t, p, g, w):
        Cp = t.shape[-1]
        a = torch.relu((t.unsqueeze(2) * w[:Cp] + p.unsqueeze(1) * w[Cp:]).sum(-1)) / p.shape[1]
        return a @ g, a

    def unreduced(t, p, g, w):
        Cp = t.shape[-1]
        a = torch.relu(t.unsqueeze(2) * w[:Cp] + p.unsqueeze(1) * w[Cp:]) / p.shape[1]
        return a.sum(-1) @ g, a
    _mistake(check_concatenation(broadcast_sum), "an O(N M C') broadcast-then-sum")
    _mistake(check_concatenation(unreduced), "an unreduced tensor")


def test_identity_init_survives_a_replaced_or_frozen_w():
    def replaced(block):
        block.W = nn.Identity()

    def frozen(block):
        zero_gamma(block)
        block.W.requires_grad_(False)
    _mistake(check_identity_init(replaced), "block.W replaced")
    _mistake(check_identity_init(frozen), "W frozen")


def test_map_reading_survives_none_and_tuples():
    geometry = map_geometry(196, 49)
    weights = np.random.default_rng(0).dirichlet(np.ones(49))
    truth = map_facts(weights, geometry, 40)
    assert "a forgotten return" in check_map_reading(None, weights, geometry, 40).mistakes
    assert "a wrong return type" in check_map_reading(tuple(truth.values()), weights, geometry,
                                                      40).mistakes


def test_insert_block_sees_a_double_residual_and_conv_zero_gamma_one():
    from tests.exercise_feed import ex06

    _mistake(check_insert_block(ex06.DoubleResidual, base=ex06.SmallCNN), "a double residual")
    _mistake(check_insert_block(ex06.ConvZeroGammaOne, base=ex06.SmallCNN),
             "W zeroed with BN gamma left at 1")
    assert check_insert_block(ex06.Right, base=ex06.SmallCNN)


def test_the_learners_random_state_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_identity_init(zero_gamma)
    check_projection(lambda block, x: block.project(x))
    assert torch.equal(torch.rand(3), expected)


# --- the claims behind exercise 4's hidden-test messages -----------------------------------

def _w_gradients(conv_zero: bool, gamma: float, seed: int = 0):
    """(gradient of W's conv, of BN's gamma, W's input y, the upstream gradient) after one
    backward pass of a block in train mode."""
    torch.manual_seed(seed)
    block = NonLocalBlock(8, inter_channels=4).double()
    with torch.no_grad():
        if conv_zero:
            block.W[0].weight.zero_()
            block.W[0].bias.zero_()
        block.W[1].weight.fill_(gamma)
        block.W[1].bias.zero_()
    seen = {}
    block.W.register_forward_hook(lambda module, inputs, output: seen.update(y=inputs[0]))
    x = torch.randn(3, 8, 6, 6, dtype=torch.float64)
    upstream = torch.randn(3, 8, 6, 6, dtype=torch.float64)
    (block.train()(x) * upstream).sum().backward()
    return (block.W[0].weight.grad.clone(), block.W[1].weight.grad.clone(), seen["y"].detach(),
            upstream, block.W[1].eps)


def test_a_zeroed_conv_under_gamma_one_gets_a_gradient_of_gamma_over_sqrt_eps():
    """Exercise 4's hidden test says so: with the conv zeroed and gamma = 1, BN divides its
    all-zero input by sqrt(eps), so the conv's gradient is gamma / sqrt(eps) times what it would
    be with BN replaced by centring, u -> u - mean(u) (its variance term vanishes at u = 0)."""
    grad_conv, _, y, upstream, eps = _w_gradients(conv_zero=True, gamma=1.0)
    conv = torch.nn.Conv2d(4, 8, 1).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
    u = conv(y)
    ((u - u.mean(dim=(0, 2, 3), keepdim=True)) * upstream).sum().backward()
    assert grad_conv.abs().max() > 0
    assert torch.allclose(grad_conv, conv.weight.grad / eps ** 0.5, rtol=1e-6, atol=1e-12)


def test_with_the_conv_and_gamma_both_zero_neither_receives_a_gradient():
    grad_conv, grad_gamma, _, _, _ = _w_gradients(conv_zero=True, gamma=0.0)
    assert not grad_conv.any() and not grad_gamma.any()
    grad_conv, grad_gamma, _, _, _ = _w_gradients(conv_zero=False, gamma=0.0)
    assert not grad_conv.any() and grad_gamma.abs().max() > 0      # the right initialisation


# --- cells that need an answer, and what the checks refuse ----------------------------------

def test_require_stops_a_cell_in_one_line():
    from nlcourse.exercises import NotReady, require

    answers = {"strongest_key": (0, 0)}
    require("answers")                                       # defined: nothing happens
    try:
        require("answers", "SmallCNNWithBlock")
    except NotReady as err:
        assert err._render_traceback_() == [f"NotReady: {err}"]
        assert "`SmallCNNWithBlock` is not defined yet" in str(err) and "answers" not in str(err)
    else:
        raise AssertionError("require let an undefined name through")
    feedback = check_embedded_gaussian(lambda *a: None)
    for checked, expected in (("missing", "run the check cell above first"),
                              ("feedback", "its check above has not passed yet")):
        try:
            require(checked=checked)
        except NotReady as err:
            assert expected in str(err), str(err)
        else:
            raise AssertionError(checked)
    assert answers and not feedback


def test_the_checks_restore_the_thread_count():
    threads = torch.get_num_threads()
    check_embedded_gaussian(eg_right)
    assert torch.get_num_threads() == threads


def test_a_guard_sees_autograd_and_forbidden_calls_but_not_plain_tensor_code():
    from nlcourse.exercises._feedback import AUTOGRAD, Guard

    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad(), Guard(autograd=True) as guard:
        torch.softmax(x @ x.T, -1) @ x
    assert guard.found is None
    with torch.no_grad(), Guard(autograd=True) as guard:
        with torch.enable_grad():
            leaf = x.clone().requires_grad_()
            (leaf * leaf).sum().backward()
    assert guard.found[0] == AUTOGRAD
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    with Guard(calls={"mha": (mha, "called", "why")}) as guard:
        mha(x[None].float(), x[None].float(), x[None].float())
    assert guard.found == ("called", "why") and "forward" not in mha.__dict__
