"""A feed of realistic answers to every exercise, right and wrong (tests/exercise_feed/): the
checks must reject at least 95% of the wrong ones, name the mistake in at least 80% of those
rejections, never crash, and accept every right one. The measured rates are printed (-s)."""

from __future__ import annotations

import numpy as np
import pytest

from nlcourse.exercises import (_feedback, check_concatenation, check_dot_product,
                                check_embedded_gaussian, check_identity_init, check_insert_block,
                                check_block_cost, check_map_reading, check_multi_head,
                                check_projection, check_softmax_backward, check_topk, map_facts)
from nlcourse.viz import map_geometry

from .exercise_feed import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10

SEEDS = (0, 1)


def _map_case():
    """A peaked map over the 7 x 7 keys whose strongest key is off the diagonal (so that a
    (column, row) answer differs from (row, column)), far from the query."""
    geometry = map_geometry(196, 49)
    weights = np.random.default_rng(3).dirichlet(np.ones(49))
    weights[5 * 7 + 1] = weights.max() * 2
    weights /= weights.sum()
    return weights, geometry, 2 * 14 + 11


def run(exercise: str, answer):
    """The check's verdict on one answer, as the learner would call it."""
    if exercise == "ex01":
        return check_embedded_gaussian(answer)
    if exercise == "ex02":
        return check_dot_product(*answer)
    if exercise == "ex03":
        return check_concatenation(answer)
    if exercise == "ex04":
        init = answer.__name__.startswith(("i_", "right_init"))
        return check_identity_init(answer) if init else check_projection(answer)
    if exercise == "ex05":
        weights, geometry, query = _map_case()
        assert map_facts(weights, geometry, query)["strongest_key"] == (5, 1)
        return check_map_reading(answer(weights, geometry, query), weights, geometry, query)
    if exercise == "ex06":
        return check_insert_block(answer, base=ex06.BASE)
    if exercise == "ex07":
        return check_softmax_backward(answer)
    if exercise == "ex08":
        return check_block_cost(answer)
    if exercise == "ex09":
        return check_multi_head(answer)
    return check_topk(answer)


FEEDS = {"ex01": ex01, "ex02": ex02, "ex03": ex03, "ex04": ex04, "ex05": ex05, "ex06": ex06,
         "ex07": ex07, "ex08": ex08, "ex09": ex09, "ex10": ex10}


def measure(exercise: str, seed: int):
    feed = FEEDS[exercise]
    rejected, named, crashed, missed, unnamed = 0, 0, [], [], []
    for label, answer, names in feed.WRONG:
        _feedback.seed(seed)
        try:
            fb = run(exercise, answer)
        except Exception as err:  # a check that crashes is the worst answer it can give
            crashed.append(f"{label}: {type(err).__name__}: {err}")
            continue
        if fb.ok:
            missed.append(label)
            continue
        rejected += 1
        if set(fb.mistakes) & names:
            named += 1
        else:
            unnamed.append(f"{label}: {fb.mistakes} {str(fb).splitlines()[-1][:160]}")
    refused = []
    for label, answer in feed.RIGHT:
        _feedback.seed(seed)
        try:
            fb = run(exercise, answer)
        except Exception as err:
            crashed.append(f"right {label}: {type(err).__name__}: {err}")
            continue
        if not fb.ok:
            refused.append(f"{label}: {str(fb)}")
    return dict(wrong=len(feed.WRONG), rejected=rejected, named=named, crashed=crashed,
                missed=missed, unnamed=unnamed, right=len(feed.RIGHT), refused=refused)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("exercise", sorted(FEEDS))
def test_feed(exercise, seed, capsys):
    r = measure(exercise, seed)
    with capsys.disabled():
        print(f"\n{exercise} seed {seed}: {r['rejected']}/{r['wrong']} wrong answers rejected, "
              f"{r['named']}/{r['rejected']} named, {len(r['crashed'])} crashes, "
              f"{r['right'] - len(r['refused'])}/{r['right']} right answers accepted")
    assert r["wrong"] >= 15
    assert not r["crashed"], r["crashed"]
    assert not r["refused"], "\n".join(r["refused"])
    assert r["rejected"] >= 0.95 * r["wrong"], f"accepted: {r['missed']}"
    assert r["named"] >= 0.8 * r["rejected"], "\n".join(r["unnamed"])
