"""The fast paths equal the literal formulas of nlcourse.reference, in float64, with gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from nlcourse import MODES, blocks, pairwise, reference

from .conftest import SHAPES, randomised_block

TOL = dict(rtol=0, atol=1e-10)

CASES = [
    (mode, dim, sub_sample, bn_layer, use_scale)
    for mode, dim, sub_sample, bn_layer in itertools.product(MODES, (1, 2, 3), (True, False),
                                                             (True, False))
    for use_scale in ((False, True) if mode in ("embedded_gaussian", "dot_product") else (False,))
]


def _ids(case):
    mode, dim, sub_sample, bn_layer, use_scale = case
    return f"{mode}-{dim}d-{'pool' if sub_sample else 'nopool'}-{'bn' if bn_layer else 'conv'}" + (
        "-scaled" if use_scale else "")


# The softmax modes dispatch between three kernels (pairwise.MATERIALISE_MAX_PAIRS and
# BLOCK_QUERIES_ABOVE_PAIRS): the matrix at once, the fused kernel, and the matrix in blocks of
# queries (here of a few queries each, the last block shorter): test all three.
SOFTMAX_KERNELS = ("materialised", "fused", "blocked")
KERNEL_CASES = [(case, kernel) for case in CASES
                for kernel in (SOFTMAX_KERNELS if case[0] in ("gaussian", "embedded_gaussian")
                               else ("materialised",))]


@pytest.fixture
def softmax_kernel(request, monkeypatch):
    kernel = getattr(request, "param", "materialised")
    if kernel == "fused":
        monkeypatch.setattr(pairwise, "MATERIALISE_MAX_PAIRS", 0)
    elif kernel == "blocked":
        monkeypatch.setattr(pairwise, "BLOCK_QUERIES_ABOVE_PAIRS", 0)
        monkeypatch.setattr(pairwise, "QUERY_BLOCK_PAIRS", 40)
    return kernel


# The fast path projects an image with pooled keys in one of two layouts (channels-last on the
# CPU from blocks.CHANNELS_LAST_MIN_POSITIONS, else the stacked convolution): the tests' small
# maps run both, the first by lowering that bound to 0.
PROJECTIONS = ("stacked", "channels_last")


@pytest.fixture(params=PROJECTIONS)
def projection(request, monkeypatch):
    if request.param == "channels_last":
        monkeypatch.setattr(blocks, "CHANNELS_LAST_MIN_POSITIONS", 0)
    return request.param


def _kernel_ids(case_kernel):
    case, kernel = case_kernel
    return f"{_ids(case)}-{kernel}"


EVERY_KERNEL_CASE = pytest.mark.parametrize(
    "case,softmax_kernel", [(c, k) for c, k in KERNEL_CASES],
    ids=[_kernel_ids(ck) for ck in KERNEL_CASES], indirect=["softmax_kernel"])


def _block_and_input(case, seed: int):
    """The case's randomised float64 block and a seeded input of its dimension."""
    mode, dim, sub_sample, bn_layer, use_scale = case
    block = randomised_block(mode, dim, sub_sample=sub_sample, bn_layer=bn_layer,
                             use_scale=use_scale)
    x = torch.randn(SHAPES[dim], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    return block, x


@EVERY_KERNEL_CASE
def test_fast_path_equals_reference(case, softmax_kernel, projection):
    block, x = _block_and_input(case, 7)
    z_ref, map_ref = reference.block_forward(block, x)
    z_fast = block(x)                                   # the map-free fast kernel
    z_mapped, nl_map = block(x, return_nl_map=True)     # the map-building form
    assert z_fast.shape == x.shape
    # W(y) is far from zero here, so a wrong y cannot hide behind the residual.
    assert (z_ref - x).abs().max() > 1e-2
    torch.testing.assert_close(z_fast, z_ref, **TOL)
    torch.testing.assert_close(z_mapped, z_ref, **TOL)
    torch.testing.assert_close(nl_map, map_ref, **TOL)


@EVERY_KERNEL_CASE
def test_fast_path_gradients_equal_reference(case, softmax_kernel, projection):
    block, x = _block_and_input(case, 8)
    weight = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))

    def grads(fn):
        xx = x.clone().requires_grad_(True)
        block.zero_grad(set_to_none=True)
        (fn(xx) * weight).sum().backward()
        return [xx.grad] + [p.grad if p.grad is not None else torch.zeros_like(p)
                            for p in block.parameters()]

    for fast, ref in zip(grads(block), grads(lambda t: reference.block_forward(block, t)[0])):
        torch.testing.assert_close(fast, ref, **TOL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("need_map", [False, True], ids=["fast", "map"])
@pytest.mark.parametrize("softmax_kernel", SOFTMAX_KERNELS, indirect=True)
def test_gradcheck(mode, need_map, softmax_kernel, projection):
    """torch.autograd.gradcheck of the block, input and all parameters, in float64."""
    block = randomised_block(mode, 2, use_scale=(mode == "embedded_gaussian"))
    x = torch.randn(1, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    params = list(block.parameters())
    names = [n for n, _ in block.named_parameters()]

    def fn(x, *ps):
        state = dict(zip(names, ps))
        out = torch.func.functional_call(block, state, (x,), {"return_nl_map": need_map})
        return out if not need_map else out[0]

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)


def _raw_tokens(seed):
    """theta (3, 11, 4), phi (3, 7, 4), g (3, 7, 5) and w (8,): odd N and M, values wider than
    the queries, float64."""
    gen = torch.Generator().manual_seed(seed)
    shapes = ((3, 11, 4), (3, 7, 4), (3, 7, 5), (8,))
    return [torch.randn(*shape, dtype=torch.float64, generator=gen) for shape in shapes]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softmax_kernel", SOFTMAX_KERNELS, indirect=True)
def test_kernels_match_reference_op(mode, softmax_kernel):
    """pairwise.nonlocal_op == reference.nonlocal_op on raw token tensors, odd N and M."""
    theta, phi, g, w = _raw_tokens(seed=3)
    y_ref, a_ref = reference.nonlocal_op(mode, theta, phi, g, w_concat=w, scale=0.7)
    for need_map in (False, True):
        y, a = pairwise.nonlocal_op(mode, theta, phi, g, w_concat=w, scale=0.7, need_map=need_map)
        torch.testing.assert_close(y, y_ref, **TOL)
        if need_map:
            torch.testing.assert_close(a, a_ref, **TOL)
        else:
            assert a is None


def test_concatenation_sorted_form_handles_all_and_no_active_keys():
    """Edge cases of the suffix-sum form: every ReLU on, every ReLU off."""
    theta = torch.ones(1, 3, 2, dtype=torch.float64)
    phi = torch.ones(1, 4, 2, dtype=torch.float64)
    g = torch.randn(1, 4, 3, dtype=torch.float64)
    for sign in (1.0, -1.0):
        w = sign * torch.ones(4, dtype=torch.float64)
        y_ref, _ = reference.nonlocal_op("concatenation", theta, phi, g, w_concat=w)
        y, _ = pairwise.nonlocal_op("concatenation", theta, phi, g, w_concat=w)
        torch.testing.assert_close(y, y_ref, **TOL)
    assert y.abs().max() == 0  # all scores negative: ReLU zeroes every weight


def test_float32_fast_path_close_to_reference():
    """The float32 kernels (what training uses) stay within float32 rounding of float64."""
    for mode in MODES:
        block = randomised_block(mode, 2, dtype=torch.float64)
        x = torch.randn(2, 6, 8, 8, dtype=torch.float64)
        z64 = reference.block_forward(block, x)[0]
        z32 = block.float()(x.float())
        torch.testing.assert_close(z32.double(), z64, rtol=1e-4, atol=1e-4)


def test_dispatch_picks_the_fused_kernel_for_large_maps(monkeypatch):
    """Above the threshold the fused kernel runs (no N x M matrix), below it the plain one."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(pairwise.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    q, k, v = torch.randn(1, 64, 4), torch.randn(1, 16, 4), torch.randn(1, 16, 4)
    pairwise.softmax_attention(q, k, v)
    assert calls == []
    monkeypatch.setattr(pairwise, "MATERIALISE_MAX_PAIRS", 64 * 16 - 1)
    pairwise.softmax_attention(q, k, v)
    assert calls == [1]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softmax_kernel", SOFTMAX_KERNELS, indirect=True)
def test_channel_first_kernels_match_reference_op(mode, softmax_kernel):
    """pairwise.nonlocal_op_channels (the block's map-free path) == reference.nonlocal_op, on the
    same numbers laid out (B, C, positions), odd N and M, values wider than the queries; and its
    gradients pass gradcheck."""
    theta, phi, g, w = _raw_tokens(seed=4)
    y_ref, _ = reference.nonlocal_op(mode, theta, phi, g, w_concat=w, scale=0.7)
    channels = [t.transpose(1, 2).contiguous() for t in (theta, phi, g)]
    y = pairwise.nonlocal_op_channels(mode, *channels, w_concat=w, scale=0.7)
    assert y.shape == (3, 5, 11) and y.is_contiguous()
    torch.testing.assert_close(y, y_ref.transpose(1, 2), **TOL)
    inputs = tuple(t.clone().requires_grad_(True) for t in (*channels, w))
    assert torch.autograd.gradcheck(
        lambda t, p, v, ww: pairwise.nonlocal_op_channels(mode, t, p, v, w_concat=ww, scale=0.7),
        inputs, eps=1e-6, atol=1e-6)



@pytest.mark.parametrize("softmax_kernel", ["blocked"], indirect=True)
def test_the_blocked_kernel_runs_in_blocks(softmax_kernel, monkeypatch):
    """The "blocked" cases above really take the path in blocks: 11 queries against 7 keys in
    blocks of 40 // (3 x 7) = 1 query, 11 score matrices."""
    calls = []
    real = pairwise._scores
    monkeypatch.setattr(pairwise, "_scores",
                        lambda q, k, scale: calls.append((q.shape[0], q.shape[2], k.shape[2]))
                        or real(q, k, scale))
    theta, phi, g, _ = _raw_tokens(seed=5)
    pairwise.nonlocal_op_channels("gaussian", *(t.transpose(1, 2) for t in (theta, phi, g)))
    assert calls == [(3, 1, 7)] * 11


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_fused_projection_equals_the_three_convolutions(case, projection):
    """project_channels (one stacked convolution and one pooling, or the channels-last copy's
    three) == project (theta, phi, g one by one, through the modules)."""
    block, x = _block_and_input(case, 5)
    for fused, separate in zip(block.project_channels(x), block.project(x)):
        torch.testing.assert_close(fused, separate.transpose(1, 2), **TOL)



OPTIONS = [dict(norm="group", norm_groups=3), dict(norm="syncbatch"), dict(pool="avg"),
           dict(reduction=3), dict(init="normal", init_std=0.01, norm=None),
           dict(concat_path="dense")]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_options_keep_fast_path_equal_to_reference(options, mode, dim, projection):
    """The library options change the block, not the equality of its two paths (outputs, maps
    and every gradient, float64)."""
    block = randomised_block(mode, dim, **options)
    x = torch.randn(SHAPES[dim], dtype=torch.float64, generator=torch.Generator().manual_seed(6),
                    requires_grad=True)
    z_ref, map_ref = reference.block_forward(block, x)
    z_fast = block(x)
    torch.testing.assert_close(z_fast, z_ref, **TOL)
    torch.testing.assert_close(block(x, return_nl_map=True)[1], map_ref, **TOL)
    weight = torch.randn_like(z_ref)
    fast = torch.autograd.grad((z_fast * weight).sum(), [x, *block.parameters()], allow_unused=True)
    ref = torch.autograd.grad((z_ref * weight).sum(), [x, *block.parameters()], allow_unused=True)
    for a, b in zip(fast, ref):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, **TOL)




def test_softmax_weights_are_kept_out_of_the_subnormal_range(monkeypatch):
    """Where the queries are the keys (the Gaussian without sub-sampling) and a row looked at
    spreads so wide that a weight may be subnormal (or zero) in float32, the CPU path raises the
    scores to at least the row's largest minus pairwise.SUBNORMAL_SPREAD (a subnormal weight
    costs the CPU tens of times more in every product that reads it). Narrow rows, and float64,
    are untouched; a raised block stays within float32 rounding of the float64 reference,
    gradients included; other queries and keys (the embedded Gaussian, pooled keys) are never
    looked at."""
    narrow = torch.randn(2, 5, 7)
    torch.testing.assert_close(pairwise._softmax_without_subnormals(narrow),
                               torch.softmax(narrow, -1), rtol=0, atol=0)
    wide = narrow.clone()
    wide[0, 0, 2] = -200.0  # e^-200: zero in float32, in a row looked at (one in SUBNORMAL_SAMPLE)
    floor = wide.amax(-1, keepdim=True) - pairwise.SUBNORMAL_SPREAD[torch.float32]
    raised = pairwise._softmax_without_subnormals(wide)
    assert raised.min() > 0 and torch.softmax(wide, -1).min() == 0
    torch.testing.assert_close(raised, torch.softmax(torch.maximum(wide, floor), -1),
                               rtol=0, atol=1e-7)
    torch.testing.assert_close(pairwise._softmax_without_subnormals(wide.double()),
                               torch.softmax(wide.double(), -1), rtol=0, atol=0)

    # The Gaussian without sub-sampling on a large input: each query meets itself among the keys,
    # and some of its weights would be subnormal (below e^-87.3 of the row's largest).
    raises = []
    real = pairwise._softmax_without_subnormals
    monkeypatch.setattr(pairwise, "_softmax_without_subnormals", lambda scores: (
        lambda out: raises.append(not torch.equal(out, torch.softmax(scores, -1))) or out)(
            real(scores)))
    block = randomised_block("gaussian", 2, sub_sample=False)            # float64
    x = 3 * torch.randn(SHAPES[2], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    scores = x.flatten(2).transpose(1, 2) @ x.flatten(2)
    assert (scores.amax(-1) - scores.amin(-1)).max() > 87.4
    weight = torch.randn(x.shape, dtype=torch.float64)
    x.requires_grad_(True)
    z_ref = reference.block_forward(block, x)[0]
    ref = torch.autograd.grad((z_ref * weight).sum(), [x, *block.parameters()])
    block = block.float()
    x32 = x.detach().float().requires_grad_(True)
    z = block(x32)
    assert raises == [True]
    grads = torch.autograd.grad((z * weight.float()).sum(), [x32, *block.parameters()])
    theta, phi, g, _ = _raw_tokens(seed=6)
    pairwise.nonlocal_op_channels("embedded_gaussian", *(50 * t.float().transpose(1, 2)
                                                          for t in (theta, phi, g)))
    randomised_block("gaussian", 2, dtype=torch.float32)(x32)            # keys pooled
    assert raises == [True]
    scale = (z_ref - x).abs().max().item()
    torch.testing.assert_close(z.double(), z_ref, rtol=0, atol=1e-5 * scale)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g.double(), r, rtol=0, atol=1e-5 * r.abs().max().item())
