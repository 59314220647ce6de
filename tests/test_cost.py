"""nlcourse.cost: the FLOP formulas against the counter, and operations counted as dispatched."""

from __future__ import annotations

import time

import pytest
import torch

from nlcourse import MODES, MNISTNet, NonLocalBlock
from nlcourse.cost import block_flops, measured_flops, parameters

SHAPES = [(2, 64, 14, 14), (1, 32, 8, 32, 32), (2, 16, 50), (1, 64, 7, 7), (1, 16, 64, 96)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sub_sample", [True, False])
def test_formula_matches_the_counted_flops_within_5_percent(mode, shape, sub_sample):
    block = NonLocalBlock(shape[1], mode=mode, dimension=len(shape) - 2,
                          sub_sample=sub_sample).eval()
    counted = measured_flops(block, torch.randn(shape))
    formula = block_flops(mode, shape, sub_sample=sub_sample)
    assert abs(formula - counted) <= 0.05 * counted, (formula, counted)


def test_network_flops_are_the_sum_of_its_parts():
    net, x = MNISTNet("embedded_gaussian").eval(), torch.randn(4, 1, 28, 28)
    without = measured_flops(MNISTNet(None).eval(), x)
    blocks = (block_flops("embedded_gaussian", (4, 32, 14, 14))
              + block_flops("embedded_gaussian", (4, 64, 7, 7)))
    assert measured_flops(net, x) == without + blocks
    assert parameters(net) == 401_530 and parameters(MNISTNet(None)) == 390_858


def test_backward_costs_about_twice_the_forward():
    block, x = NonLocalBlock(32, mode="embedded_gaussian"), torch.randn(2, 32, 16, 16)
    forward = measured_flops(block, x)
    both = measured_flops(block, x.requires_grad_(), backward=True)
    assert 2.5 * forward <= both <= 3.5 * forward


def test_count_operations_counts_each_dispatched_call():
    import torch

    from nlcourse import MNISTNet
    from nlcourse.cost import count_operations

    a, b = torch.rand(3), torch.rand(3)
    assert count_operations(lambda: (a + b) * b) == 2
    x = torch.rand(2, 1, 28, 28)
    with_blocks = count_operations(lambda: MNISTNet("embedded_gaussian")(x).sum().backward())
    without = count_operations(lambda: MNISTNet(None)(x).sum().backward())
    assert with_blocks > 2 * without > 0   # two blocks add more operations than the whole CNN


def test_timing_in_turns_charges_no_one_the_warm_up_and_compares_round_by_round():
    from nlcourse.cost import ratios_to, time_in_turns

    calls = []

    def slow_first(name, base):
        def fn():
            calls.append(name)
            # the first call of each is slow (an allocation), the rest take `base` seconds
            time.sleep(0.05 if calls.count(name) == 1 else base)
        return fn

    times = time_in_turns({"a": slow_first("a", 0.002), "b": slow_first("b", 0.004)},
                          rounds=5, warmup=1)
    assert calls[:2] == ["a", "b"] and calls[2:] == ["a", "b"] * 5     # warm-up, then turns
    assert all(len(t) == 5 and max(t) < 0.04 for t in times.values())  # no warm-up charged
    ratios = ratios_to(times, "a")
    assert ratios["a"] == 1 and 1.3 < ratios["b"] < 3
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        time_in_turns({"a": lambda: None}, rounds=0)
