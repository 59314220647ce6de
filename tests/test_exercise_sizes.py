"""Sizes that keep mistakes apart: every check draws sizes (new ones on each run) in which the
quantities a learner could confuse are all different (batch, N, M, M - 1, C, C', C_g, k, k + 1,
H, W, heads and their width), so that a mistake gets the same name whatever the draw. Fifty
draws per check; then the mistakes whose name depended on the draw, each fed at fifty seeds."""

from __future__ import annotations

import contextlib
import io
import random

import pytest

from nlcourse.exercises import _feedback as fbk
from nlcourse.exercises import (check_block_cost, check_dot_product, check_multi_head,
                                check_softmax_backward, check_topk)
from nlcourse.exercises import ex02_dot_product as ex02m
from nlcourse.exercises import ex03_concatenation as ex03m
from nlcourse.exercises import ex04_subsample_init as ex04m
from nlcourse.exercises import ex07_softmax_backward as ex07m
from nlcourse.exercises import ex08_block_cost as ex08m
from nlcourse.exercises import ex09_multi_head as ex09m
from nlcourse.exercises import ex10_topk as ex10m
from nlcourse.exercises import ex11_path_length as ex11m

from .exercise_feed import ex02, ex07, ex08, ex09, ex10

DRAWS = 50

SIZED = {  # check: () -> the list of size dicts one run draws
    "embedded Gaussian, dot product (token sizes)": fbk.token_sizes,
    "dot product's linear form": ex02m.draw_sizes,
    "concatenation": ex03m.draw_sizes,
    "projection": ex04m.draw_sizes,
    "identity initialisation": lambda rng: [ex04m.init_size(rng)],
    "backward pass": ex07m.draw_sizes,
    "multi-head attention": ex09m.draw_sizes,
    "top-k": ex10m.draw_sizes,
    "path length": lambda rng: [{k: v for k, v in ex11m.draw_sizes(rng).items()
                                 if k in ("B", "C", "H", "W")}],
}


@pytest.mark.parametrize("check", sorted(SIZED))
def test_confusable_quantities_differ_at_every_draw(check):
    rng = random.Random(2024)
    for _ in range(DRAWS):
        for size in SIZED[check](rng):
            quantities = fbk.confusable(size)
            values = list(quantities.values())
            assert len(set(values)) == len(values), (check, quantities)
            assert set(size[k] for k in ("B", "N", "M") if k in size).isdisjoint({1, 32, 64})


def test_block_cost_configurations_at_every_draw():
    rng = random.Random(2024)
    for _ in range(DRAWS):
        configs = ex08m.draw_configs(rng)
        for config in configs:
            quantities = ex08m.confusable(config)
            values = list(quantities.values())
            assert len(set(values)) == len(values), quantities
        shapes = [shape for _, shape, _ in configs]
        assert {(H % 2, W % 2) for _, _, H, W in shapes} == {(0, 0), (0, 1), (1, 0), (1, 1)}
        assert any(Cp is None and shape[1] % 2 for _, shape, Cp in configs)     # odd C, C' = C // 2
        assert any(Cp is not None for _, _, Cp in configs)
        # every mistake of the table changes the count somewhere, and no two mistakes agree
        # everywhere: a table mistake always gets its own name
        right = [ex08m._variant(*c) for c in configs]
        predictions = {name: [ex08m._variant(*c, **change) for c in configs]
                       for name, (change, _) in ex08m.MISTAKES.items()}
        for name, predicted in predictions.items():
            assert predicted != right, name
        seen = {}
        for name, predicted in predictions.items():
            assert tuple(predicted) not in seen, (name, seen.get(tuple(predicted)))
            seen[tuple(predicted)] = name


def run(check, answer):
    with contextlib.redirect_stdout(io.StringIO()):
        return check(answer)


# mistakes whose name once depended on the sizes drawn, and the name each must always get
STABLE = [
    ("dot product: divided by len(phi)", lambda a: check_dot_product(*a), ex02.q(ex02.by_len),
     "dividing by B where M was meant"),
    ("dot product: divided by M - 1", lambda a: check_dot_product(*a),
     ex02.q(ex02.by_m_minus_one), "dividing by M - 1 where M was meant"),
    ("top-k: the k-th score", check_topk, ex10.kth_score,
     "the k-th score instead of the (k+1)-th"),
    ("top-k: (M - k) forgotten", check_topk, ex10.no_count, "(M - k) forgotten"),
    ("cost: H // 2 * W // 2", check_block_cost, ex08.precedence,
     "H // 2 * W // 2 without brackets"),
    ("cost: (C + 1) // 2", check_block_cost, ex08.cp_rounded_up, "C' rounded up"),
    ("multi-head: heads merged in the wrong order", check_multi_head, ex09.merged_interleaved,
     "heads merged in the wrong order"),
    ("backward: 2 grad_S x", check_softmax_backward, ex07.symmetric,
     "the score gradient taken as symmetric"),
]


@pytest.mark.parametrize("label, check, answer, name", STABLE, ids=[s[0] for s in STABLE])
def test_a_mistake_gets_one_name_at_every_draw(label, check, answer, name):
    for seed in range(DRAWS):
        fbk.seed(seed)
        fb = run(check, answer)
        assert not fb.ok and name in fb.mistakes, (seed, str(fb))
