"""A feed of realistic answers to every exercise, right and wrong (tests/exercise_feed/, at least
15 wrong and 3 right per exercise): the checks must reject every wrong one, name the mistake in
at least 90% of those rejections, never crash, and accept every right one, at each seed of the
random sizes. `make test` runs two seeds; `make feed` (NLCOURSE_FEED_SEEDS=10) runs ten. The
measured rates are printed (-s), and summed over every exercise and seed at the end."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nlcourse.exercises import (_feedback, check_concatenation, check_dot_product,
                                check_embedded_gaussian, check_identity_init, check_insert_block,
                                check_block_cost, check_map_reading, check_multi_head,
                                check_path_length, check_projection, check_softmax_backward,
                                check_topk, map_facts)
from nlcourse.viz import map_geometry

from .exercise_feed import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10, ex11

SEEDS = tuple(range(int(os.environ.get("NLCOURSE_FEED_SEEDS", "2"))))
MIN_WRONG, MIN_RIGHT = 15, 3
REJECTED, NAMED = 1.0, 0.9     # shares required of the wrong answers, and of their rejections
TOTALS = {"wrong": 0, "rejected": 0, "named": 0, "right": 0, "accepted": 0}


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
    if exercise == "ex10":
        return check_topk(answer)
    return check_path_length(answer)


FEEDS = {"ex01": ex01, "ex02": ex02, "ex03": ex03, "ex04": ex04, "ex05": ex05, "ex06": ex06,
         "ex07": ex07, "ex08": ex08, "ex09": ex09, "ex10": ex10, "ex11": ex11}


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
    for key in ("wrong", "rejected", "named", "right"):
        TOTALS[key] += r[key]
    TOTALS["accepted"] += r["right"] - len(r["refused"])
    with capsys.disabled():
        print(f"\n{exercise} seed {seed}: {r['rejected']}/{r['wrong']} wrong answers rejected, "
              f"{r['named']}/{r['rejected']} named, {len(r['crashed'])} crashes, "
              f"{r['right'] - len(r['refused'])}/{r['right']} right answers accepted")
    assert r["wrong"] >= MIN_WRONG and r["right"] >= MIN_RIGHT
    assert not r["crashed"], r["crashed"]
    assert not r["refused"], "\n".join(r["refused"])
    assert r["rejected"] >= REJECTED * r["wrong"], f"accepted: {r['missed']}"
    assert r["named"] >= NAMED * r["rejected"], "\n".join(r["unnamed"])


def test_feed_totals(capsys):
    """The rates over every exercise and seed (runs after the feed: printed for the record)."""
    if not TOTALS["wrong"]:
        pytest.skip("run with the feed tests")
    with capsys.disabled():
        print(f"\nfeed over {len(FEEDS)} exercises x {len(SEEDS)} seeds: "
              f"{TOTALS['rejected']}/{TOTALS['wrong']} wrong answers rejected "
              f"({TOTALS['rejected'] / TOTALS['wrong']:.2%}), {TOTALS['named']}/"
              f"{TOTALS['rejected']} named ({TOTALS['named'] / TOTALS['rejected']:.2%}), "
              f"{TOTALS['accepted']}/{TOTALS['right']} right answers accepted")
    assert TOTALS["rejected"] == TOTALS["wrong"] and TOTALS["accepted"] == TOTALS["right"]
