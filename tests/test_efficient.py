"""Cheaper non-local blocks against the full block: exact where exact, bounded where approximate."""

from __future__ import annotations

import pytest
import torch

from nlcourse import MODES, MNISTNet, NonLocalBlock
from nlcourse.efficient import (chunked, forward_with, low_rank, low_rank_error_bound,
                                progressive, top_k)
from nlcourse.labs import mnist
from nlcourse.train import fit

from .conftest import randomised_block
from .test_train import tiny_data


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_chunked_equals_the_full_block(mode, chunk):
    block = randomised_block(mode, 2)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(forward_with(block, x, chunked(block, chunk)), block(x),
                               rtol=0, atol=1e-10)


def test_chunked_bounds_the_largest_matrix():
    block = NonLocalBlock(8, mode="embedded_gaussian", sub_sample=False).eval()
    x, sizes = torch.randn(1, 8, 16, 16), []

    def spy(op):
        def wrapped(theta, phi, g):
            real = torch.Tensor.__matmul__

            def watch(a, b):
                out = real(a, b)
                sizes.append(out.numel())
                return out
            torch.Tensor.__matmul__ = watch
            try:
                return op(theta, phi, g)
            finally:
                torch.Tensor.__matmul__ = real
        return wrapped

    forward_with(block, x, spy(chunked(block, 32)))
    assert max(sizes) == 32 * 256            # a chunk of queries x all keys, never 256 x 256


@pytest.mark.parametrize("mode", ["gaussian", "embedded_gaussian"])
def test_top_k_with_every_key_is_the_full_block(mode):
    block = randomised_block(mode, 2)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(forward_with(block, x, top_k(block, 10_000)), block(x),
                               rtol=0, atol=1e-10)


def test_top_k_gives_zero_weight_to_dropped_keys_and_zero_filling_does_not():
    block = randomised_block("embedded_gaussian", 1)
    theta = torch.randn(1, 3, 4, dtype=torch.float64)
    phi = torch.randn(1, 6, 4, dtype=torch.float64)
    g = torch.eye(6, dtype=torch.float64).unsqueeze(0)       # y = the weights themselves
    weights = top_k(block, 2)(theta, phi, g)
    scores = theta @ phi.transpose(1, 2)
    for i in range(3):
        kept = torch.topk(scores[0, i], 2).indices
        expected = torch.zeros(6, dtype=torch.float64)
        expected[kept] = torch.softmax(scores[0, i, kept], dim=0)
        torch.testing.assert_close(weights[0, i], expected)
    wrong = top_k(block, 2, zero_fill=True)(theta, phi, g)
    assert (wrong[0] > 0).all(), "zero-filled scores still get exp(0) of weight"


def test_top_k_approximation_error_shrinks_with_k():
    block = randomised_block("embedded_gaussian", 2)
    x = torch.randn(1, 6, 8, 8, dtype=torch.float64)
    full = block(x)
    errors = [(forward_with(block, x, top_k(block, k)) - full).abs().max().item()
              for k in (1, 4, 8, 16)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-12


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product"])
@pytest.mark.parametrize("sub_sample", [True, False])
def test_low_rank_at_full_rank_is_exact_and_below_within_its_bound(mode, sub_sample):
    block = randomised_block(mode, 2, sub_sample=sub_sample)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(low_rank(block, 3)(x), block(x), rtol=0, atol=1e-10)  # C' = 3
    t_full, p_full, _ = block.project(x)
    for rank in (1, 2):
        small = low_rank(block, rank)
        assert small.theta.out_channels == rank and small.P.shape == (3, rank)
        t_small, p_small, _ = small.project(x)
        error = (t_small @ p_small.transpose(1, 2) - t_full @ p_full.transpose(1, 2)).abs()
        assert (error <= low_rank_error_bound(small, x) + 1e-12).all()
        assert error.max() > 1e-6                                      # it is an approximation


def test_progressive_keeps_blocks_the_identity_during_warm_up():
    torch.manual_seed(0)
    net = MNISTNet("embedded_gaussian")
    before = [p.clone() for p in net.blocks.parameters()]
    schedule = progressive(net, warmup_epochs=1)
    seen = []

    def hook(epoch):
        schedule(epoch)
        seen.append([torch.equal(a, b) for a, b in zip(before, net.blocks.parameters())])
    fit(net, tiny_data(), mnist.BUDGETS["smoke"], progress=False, log=None, epoch_hook=hook)
    assert seen == [[True] * len(before)]            # smoke has one epoch: all of it warm-up
    assert all(torch.equal(a, b) for a, b in zip(before, net.blocks.parameters()))
    schedule(2)
    assert all(p.requires_grad for p in net.blocks.parameters())


def test_variant_errors_name_the_argument():
    with pytest.raises(ValueError, match="top_k keeps the largest scores of a softmax"):
        top_k(NonLocalBlock(4, mode="dot_product"), 3)
    with pytest.raises(ValueError, match="k must be a positive number of keys"):
        top_k(NonLocalBlock(4), 0)
    with pytest.raises(ValueError, match="chunk must be a positive number of queries"):
        chunked(NonLocalBlock(4), 0)
    with pytest.raises(ValueError, match="low_rank factorises theta . phi"):
        low_rank(NonLocalBlock(4, mode="gaussian"), 1)
    with pytest.raises(ValueError, match="no non-local block"):
        progressive(MNISTNet(None), 1)


@pytest.mark.parametrize("variant,options", [("chunked", {"chunk": 5}), ("top_k", {"k": 3}),
                                             ("low_rank", {"rank": 2})])
def test_swapped_blocks_train_and_match_their_definition(variant, options):
    from nlcourse.efficient import make_variant, swap_blocks

    torch.manual_seed(0)
    net = MNISTNet("embedded_gaussian").double()
    for block in net.blocks:
        with torch.no_grad():
            for p in block.parameters():
                p.normal_(0, 0.2)
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    originals = [b for b in net.blocks]
    expected = net.eval()(x)
    swap_blocks(net, lambda b: make_variant(b, variant, **options))
    assert all(type(b).__name__ != "NonLocalBlock2d" for b in net.blocks)
    z = net(x)
    if variant == "chunked":
        torch.testing.assert_close(z, expected, rtol=0, atol=1e-10)
    else:
        assert not torch.allclose(z, expected)  # an approximation, so it differs
    h = net.stage1(x)
    step = {"top_k": top_k}.get(variant)
    if step is not None:  # the module is the op through the block, at every call
        torch.testing.assert_close(net.blocks[0](h), forward_with(originals[0], h,
                                                                  step(originals[0], **options)))
    net.train()
    net(x).sum().backward()  # and it trains: twice, so no graph is kept from one call to the next
    net(x).sum().backward()
    trained = [n for n, p in net.named_parameters() if n.startswith("blocks.0") and p.grad is None]
    assert trained == [], f"no gradient reached {trained}"


def test_low_rank_keeps_no_dead_weights():
    block = randomised_block("embedded_gaussian", 2)
    small = low_rank(block, 2)
    names = [n for n, _ in small.named_parameters()]
    assert "block.theta.weight" not in names and "theta.weight" in names
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in block.parameters())


def test_make_variant_errors_name_the_argument():
    from nlcourse.efficient import make_variant, swap_blocks

    block = randomised_block("embedded_gaussian", 2)
    with pytest.raises(ValueError, match="variant must be one of 'chunked', 'top_k', 'low_rank'"):
        make_variant(block, "progressive", warmup_epochs=1)
    with pytest.raises(TypeError, match="takes exactly one option, k="):
        make_variant(block, "top_k", rank=3)
    with pytest.raises(ValueError, match="k must be a positive number of keys"):
        make_variant(block, "top_k", k=0)
    with pytest.raises(ValueError, match="returns no map"):
        make_variant(block, "top_k", k=2)(torch.randn(1, 6, 4, 4, dtype=torch.float64),
                                         return_nl_map=True)
    with pytest.raises(ValueError, match="has no non-local block"):
        swap_blocks(MNISTNet(None), lambda b: b)


def test_variants_sweep_records_the_variant_and_its_settings(tmp_path):
    import dataclasses

    from nlcourse.labs import runner, variants

    lab = dataclasses.replace(variants.LAB, load_data=lambda budget: tiny_data())
    results = runner.sweep(lab, ("top_k", "progressive"), (0,), variants.BUDGETS["smoke"],
                           tmp_path, progress=False, log=None)
    assert [(r["model"], r["variant"], r["variant_settings"]) for r in results] == [
        ("top_k", "top_k", {"k": 4}), ("progressive", "progressive", {"warmup_epochs": 0})]
    assert results[0]["command"] == (f"python -m nlcourse sweep variants --models top_k "
                                     f"--seeds 0 --budget smoke --out {tmp_path}")
    full = sum(p.numel() for p in MNISTNet("embedded_gaussian").parameters())
    assert results[1]["params"] == full > results[0]["params"] - 1  # top-k adds no weights


def test_variant_benchmark_measures_every_variant_against_the_full_block():
    from nlcourse.bench import compare_variants

    rows = compare_variants((1, 16, 32, 32), chunk=128, repeats=1, warmup=0)
    by = {r["variant"]: r for r in rows}
    assert list(by) == ["full", "full, literal", "chunked", "top_k", "low_rank"]
    assert by["top_k"]["settings"] == {"k": 16, "keys": 256}
    assert by["low_rank"]["settings"] == {"rank": 2, "inter_channels": 8}
    for exact in ("full", "full, literal", "chunked"):
        assert by[exact]["relative_error"] < 1e-5, by[exact]
    for approximate in ("top_k", "low_rank"):
        assert by[approximate]["relative_error"] > 1e-3, by[approximate]
    # 128 queries x 256 keys at a time instead of all 1,024 x 256: a smaller peak than the literal
    assert by["chunked"]["peak_bytes"] < by["full, literal"]["peak_bytes"]
    assert all(r["seconds"] > 0 and r["peak_bytes"] > 0 for r in rows)
    assert by["full"]["time_ratio"] == 1.0 and by["full"]["memory_ratio"] == 1.0


def test_chunked_survives_scores_that_overflow_the_literal_exp():
    block = NonLocalBlock(4, mode="embedded_gaussian", sub_sample=False).eval()
    with torch.no_grad():
        block.theta.weight.fill_(3.0)
        block.phi.weight.fill_(3.0)
        block.W[1].weight.fill_(1.0)
    x = torch.full((1, 4, 3, 3), 2.0)                  # scores 2 * 24 * 24 = 1152 > 88
    from nlcourse import reference

    theta, phi, _ = block.project(x)
    assert torch.isinf(reference.pairwise_f("embedded_gaussian", theta, phi)).all()
    z = forward_with(block, x, chunked(block, 2))
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z, block(x))
