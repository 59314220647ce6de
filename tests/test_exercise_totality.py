"""A check never fails because of itself: fed outputs that are zero everywhere, NaN (all of it or
one row), infinite, empty, integer tensors or Python numbers, every check answers in one named
line, never with "your function raised while the check ran it" (the check's own error blamed on
the learner). Checks of one number accept an integer tensor or a NumPy integer that holds the
right value."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises import (check_block_cost, check_concatenation, check_dot_product,
                                check_embedded_gaussian, check_identity_init, check_insert_block,
                                check_map_reading, check_multi_head, check_path_length,
                                check_projection, check_softmax_backward, check_topk, map_facts)

from .exercise_feed import ex01, ex02, ex03, ex04, ex06, ex07, ex08, ex09, ex10, ex11
from .test_exercise_feed import _map_case

# tensor checks: (check, a right answer, how the check is called)
TENSOR_CHECKS = {
    "ex01": lambda fn: check_embedded_gaussian(fn),
    "ex02": lambda fn: check_dot_product(fn),
    "ex02 linear": lambda fn: check_dot_product(ex02.dot, fn),
    "ex03": lambda fn: check_concatenation(fn),
    "ex04a": lambda fn: check_projection(fn),
    "ex07": lambda fn: check_softmax_backward(fn),
    "ex09": lambda fn: check_multi_head(fn),
    "ex10": lambda fn: check_topk(fn),
}
RIGHT = {"ex01": ex01.RIGHT[1][1], "ex02": ex02.RIGHT[1][1][0], "ex02 linear": ex02.linear,
         "ex03": ex03.RIGHT[1][1], "ex04a": ex04.RIGHT[0][1], "ex07": ex07.RIGHT[0][1],
         "ex09": ex09.RIGHT[1][1], "ex10": ex10.RIGHT[0][1]}


def _nan_row(t):
    t = t.detach().clone().contiguous()
    t.view(-1, t.shape[-1])[0] = float("nan")
    return t


BROKEN = {  # what the learner's function returns instead of each output: the name it must get
    "zeros": (lambda t: torch.zeros_like(t), fbk.ALL_ZERO),
    "NaN": (lambda t: torch.full_like(t, float("nan")), fbk.NOT_FINITE),
    "a NaN row": (_nan_row, fbk.NOT_FINITE),
    "infinity": (lambda t: torch.full_like(t, float("inf")), fbk.NOT_FINITE),
    "-infinity": (lambda t: torch.full_like(t, float("-inf")), fbk.NOT_FINITE),
    "an empty tensor": (lambda t: t.new_empty(0), fbk.EMPTY),
    "an empty batch": (lambda t: t[:0], fbk.EMPTY),
    "int64": (lambda t: t.detach().round().long(), fbk.INTEGER),
    "bool": (lambda t: t.detach() > 0, fbk.INTEGER),
    "a Python float": (lambda t: 0.5, fbk.NUMBER),
    "a Python int": (lambda t: 3, fbk.NUMBER),
    "True": (lambda t: True, fbk.NUMBER),
}


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def assert_named(fb, name):
    text = str(fb)
    assert not fb.ok, text
    assert "while the check ran it" not in text, text
    assert name in fb.mistakes, (name, text)


def broken(right, change, which):
    """The right answer with output ``which`` (or every output) replaced by ``change(output)``."""
    def answer(*args):
        out = right(*args)
        if isinstance(out, tuple):
            last = len(out) - 1
            return tuple(change(o) if which is None or k == which % len(out) or k == last and
                         which == -1 else o for k, o in enumerate(out))
        return change(out)
    return answer


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("exercise", sorted(TENSOR_CHECKS))
def test_tensor_checks_name_broken_outputs(exercise, kind):
    change, name = BROKEN[kind]
    fbk.seed(0)
    fb = quiet(TENSOR_CHECKS[exercise], broken(RIGHT[exercise], change, None))
    assert_named(fb, name)


@pytest.mark.parametrize("exercise", ["ex01", "ex07", "ex10"])
def test_one_broken_output_among_right_ones(exercise):
    """Only the last output broken: the others compare right, the broken one is named."""
    for kind in ("zeros", "NaN", "an empty tensor", "int64"):
        change, name = BROKEN[kind]
        fbk.seed(1)
        fb = quiet(TENSOR_CHECKS[exercise], broken(RIGHT[exercise], change, -1 if exercise
                                                    != "ex07" else None))
        assert_named(fb, name)


def test_close_and_ratio_survive_non_finite_values():
    """The comparison helpers themselves: NaN in the reference or a known mistake, zero
    answers, empty tensors. None of them raises."""
    a = torch.tensor([[1.0, 2.0], [float("nan"), 4.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    assert not fbk.close(b, a) and not fbk.close(a, b) and fbk.close(a, a.clone())
    assert not fbk.close(torch.zeros(0), torch.zeros(0, 2))
    assert fbk._ratio(torch.zeros(3), torch.ones(3))[0] == 0.0
    assert fbk._ratio(torch.ones(3), torch.zeros(3)) == (None, float("inf"))


# --- checks of one number, a dict of numbers, an initialisation, a model --------------------

NUMBERS = {  # value, name (None: accepted when it holds the right value)
    "zero": (lambda right: 0, None),
    "NaN": (lambda right: float("nan"), fbk.NOT_FINITE),
    "infinity": (lambda right: float("inf"), fbk.NOT_FINITE),
    "an empty tensor": (lambda right: torch.zeros(0), fbk.EMPTY),
    "an empty array": (lambda right: np.zeros(0), fbk.EMPTY),
    "an int64 tensor": (lambda right: torch.tensor(int(right)), "right"),
    "a NumPy int": (lambda right: np.int64(int(right)), "right"),
    "a float tensor": (lambda right: torch.tensor(float(right), dtype=torch.float64), "right"),
    "True": (lambda right: True, fbk.WRONG_TYPE),
    "a string": (lambda right: "12 FLOPs", fbk.WRONG_TYPE),
    "a 2-vector": (lambda right: torch.tensor([1.0, 2.0]), fbk.WRONG_TYPE),
}


def number_verdict(fb, name):
    """Accepted where the value is right in another type; else named, or at least refused in
    words (a zero count is simply wrong)."""
    if name == "right":
        assert fb.ok, str(fb)
    elif name is not None:
        assert_named(fb, name)
    else:
        assert not fb.ok and "while the check ran it" not in str(fb), str(fb)


@pytest.mark.parametrize("kind", sorted(NUMBERS))
def test_block_cost_names_what_it_got(kind):
    make, name = NUMBERS[kind]
    fbk.seed(0)
    number_verdict(quiet(check_block_cost, lambda *args: make(ex08.right_float(*args))), name)


@pytest.mark.parametrize("kind", sorted(NUMBERS))
def test_path_length_names_what_it_got(kind):
    make, name = NUMBERS[kind]

    def answer(layers, x, src, dst):
        right = ex11.right(layers, x, src, dst)
        return None if right is None else make(right)
    fbk.seed(0)
    number_verdict(quiet(check_path_length, answer), name)


@pytest.mark.parametrize("kind", sorted(NUMBERS))
def test_map_reading_names_what_it_got(kind):
    make, name = NUMBERS[kind]
    weights, geometry, query = _map_case()
    truth = map_facts(weights, geometry, query)
    for key in ("distance_px", "entropy"):
        answers = dict(truth, **{key: make(truth[key])})
        fb = quiet(check_map_reading, answers, weights, geometry, query)
        if name == "right" and float(truth[key]) == int(truth[key]):
            assert fb.ok, str(fb)
        elif name in (None, "right"):
            assert "while the check ran it" not in str(fb), str(fb)
        else:
            assert_named(fb, name)
    row, col = truth["strongest_key"]
    for key in ((torch.tensor(row), torch.tensor(col)), np.array([row, col]),
                (np.int64(row), np.int64(col)), torch.tensor([row, col])):
        assert quiet(check_map_reading, dict(truth, strongest_key=key), weights, geometry, query)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_identity_init_survives_non_finite_or_zero_parameters(value):
    def init(block):
        with torch.no_grad():
            for p in block.W.parameters():
                p.fill_(value)
    fb = quiet(check_identity_init, init)
    assert not fb.ok and "while the check ran it" not in str(fb), str(fb)


@pytest.mark.parametrize("kind", ["zeros", "NaN", "infinity", "an empty tensor", "int64",
                                  "a Python float"])
def test_insert_block_names_a_model_with_broken_logits(kind):
    change, _ = BROKEN[kind]

    class Broken(ex06.Right):
        def forward(self, x):
            return change(super().forward(x))
    fb = quiet(check_insert_block, Broken, ex06.BASE)
    assert not fb.ok and "while the check ran it" not in str(fb), str(fb)


def test_a_module_that_is_not_a_tensor_function_is_named():
    fb = quiet(check_embedded_gaussian, nn.Linear(3, 3))
    assert not fb.ok and "while the check ran it" not in str(fb)
