"""NonLocalBlock: structure, identity at initialisation, the map, and the argument errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from nlcourse import (MODES, NonLocalBlock, NonLocalBlock1d, NonLocalBlock2d, NonLocalBlock3d,
                      blocks)
from nlcourse._modes import pairwise_function

from .conftest import SHAPES, randomised_block


@pytest.mark.parametrize("mode,dim,sub_sample,bn_layer",
                         list(itertools.product(MODES, (1, 2, 3), (True, False), (True, False))))
def test_identity_at_initialisation(mode, dim, sub_sample, bn_layer):
    block = NonLocalBlock(6, mode=mode, dimension=dim, sub_sample=sub_sample, bn_layer=bn_layer)
    x = torch.randn(SHAPES[dim])
    for train in (True, False):
        block.train(train)
        assert torch.equal(block(x), x)
        z, nl_map = block(x, return_nl_map=True)
        assert torch.equal(z, x)


def test_identity_survives_only_while_w_is_zero():
    """The identity is an initialisation, not a constraint: one SGD step moves z away from x."""
    block = NonLocalBlock(8)
    x = torch.randn(4, 8, 6, 6)
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    (block(x) - torch.randn_like(x)).pow(2).mean().backward()
    opt.step()
    assert not torch.equal(block(x), x)


def test_submodules_follow_the_paper():
    eg = NonLocalBlock(32)
    assert eg.inter_channels == 16
    for name in ("theta", "phi", "g"):
        conv = getattr(eg, name)
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
        assert (conv.in_channels, conv.out_channels) == (32, 16)
    assert isinstance(eg.W, nn.Sequential) and isinstance(eg.W[1], nn.BatchNorm2d)
    assert eg.concat_project is None
    assert torch.equal(eg.W[1].weight, torch.zeros(32))

    gauss = NonLocalBlock(32, mode="gaussian")
    assert gauss.theta is None and gauss.phi is None and gauss.g is not None

    cat = NonLocalBlock(32, mode="concatenation", bn_layer=False)
    proj = cat.concat_project
    assert isinstance(proj[0], nn.Conv2d) and proj[0].bias is None
    assert proj[0].weight.shape == (1, 32, 1, 1)  # 2 * inter_channels -> one score
    assert isinstance(proj[1], nn.ReLU)
    assert isinstance(cat.W, nn.Conv2d)
    assert torch.equal(cat.W.weight, torch.zeros_like(cat.W.weight))
    assert torch.equal(cat.W.bias, torch.zeros_like(cat.W.bias))

    assert NonLocalBlock(1).inter_channels == 1
    assert NonLocalBlock(7, inter_channels=3).inter_channels == 3


@pytest.mark.parametrize("cls,dim,pool", [(NonLocalBlock1d, 1, nn.MaxPool1d),
                                          (NonLocalBlock2d, 2, nn.MaxPool2d),
                                          (NonLocalBlock3d, 3, nn.MaxPool3d)])
def test_dimension_classes_and_pooling(cls, dim, pool):
    block = cls(6)
    assert block.dimension == dim and isinstance(block.pool, pool)
    x = torch.randn(SHAPES[dim])
    _, nl_map = block(x, return_nl_map=True)
    spatial = SHAPES[dim][2:]
    n = torch.tensor(spatial).prod().item()
    pooled = [s // 2 for s in spatial] if dim < 3 else [spatial[0]] + [s // 2 for s in spatial[1:]]
    assert nl_map.shape == (SHAPES[dim][0], n, torch.tensor(pooled).prod().item())


def test_theta_is_not_pooled():
    """Every input position is a query: N is the full grid, only the keys shrink."""
    block = NonLocalBlock(4)
    _, nl_map = block(torch.randn(1, 4, 8, 6), return_nl_map=True)
    assert nl_map.shape == (1, 48, 12)


@pytest.mark.parametrize("mode", ["gaussian", "embedded_gaussian"])
def test_softmax_rows_sum_to_one(mode):
    block = randomised_block(mode, 2)
    _, nl_map = block(torch.randn(2, 6, 5, 7, dtype=torch.float64), return_nl_map=True)
    torch.testing.assert_close(nl_map.sum(-1), torch.ones(2, 35, dtype=torch.float64))
    assert (nl_map > 0).all()


def test_dot_product_map_divides_by_the_number_of_keys():
    block = randomised_block("dot_product", 2, sub_sample=False)
    x = torch.randn(1, 6, 3, 4, dtype=torch.float64)
    _, nl_map = block(x, return_nl_map=True)
    theta = block.theta(x).flatten(2).transpose(1, 2)
    phi = block.phi(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(nl_map, theta @ phi.transpose(1, 2) / 12)


def test_positions_flatten_row_major():
    """Map column j is the key at (j // W, j % W): a Gaussian query attends to its own copy."""
    x = torch.zeros(1, 3, 4, 5)
    x[0, :, 1, 3] = torch.tensor([9.0, -9.0, 9.0])   # a loud, distinctive pixel at (1, 3)
    block = NonLocalBlock(3, mode="gaussian", sub_sample=False)
    _, nl_map = block(x, return_nl_map=True)
    assert nl_map[0, 1 * 5 + 3].argmax().item() == 1 * 5 + 3


# --- bad input: each error names the argument and what was expected ---------------------------

@pytest.mark.parametrize("kwargs,error,words", [
    (dict(in_channels=8, mode="softmax"), ValueError,
     ["mode", "'gaussian'", "'embedded_gaussian'", "'dot_product'", "'concatenation'", "'softmax'"]),
    (dict(in_channels=8, dimension=4), ValueError, ["dimension", "1, 2 or 3", "4"]),
    (dict(in_channels=8, dimension=0), ValueError, ["dimension", "1, 2 or 3"]),
    (dict(in_channels=0), ValueError, ["in_channels", "at least 1", "0"]),
    (dict(in_channels=8.0), TypeError, ["in_channels", "int", "float"]),
    (dict(in_channels=8, inter_channels=0), ValueError, ["inter_channels", "at least 1"]),
    (dict(in_channels=8, inter_channels=-2), ValueError, ["inter_channels", "-2"]),
    (dict(in_channels=8, mode="concatenation", use_scale=True), ValueError,
     ["use_scale", "embedded_gaussian", "dot_product", "concatenation"]),
    (dict(in_channels=8, mode="gaussian", use_scale=True), ValueError, ["use_scale", "gaussian"]),
    (dict(in_channels=8, norm="layer"), ValueError, ["norm", "'batch'", "'group'", "'layer'"]),
    (dict(in_channels=8, norm=lambda c: 3), TypeError, ["norm", "nn.Module", "int"]),
    (dict(in_channels=6, norm="group"), ValueError, ["norm_groups=32", "in_channels=6", "divide"]),
    (dict(in_channels=8, bn_layer=True, norm=None), ValueError, ["bn_layer=True", "norm=None"]),
    (dict(in_channels=8, inter_channels=4, reduction=4), ValueError,
     ["inter_channels", "reduction", "not both"]),
    (dict(in_channels=8, reduction=0), ValueError, ["reduction", "at least 1"]),
    (dict(in_channels=8, init="xavier"), ValueError, ["init", "'zero'", "'normal'", "'xavier'"]),
    (dict(in_channels=8, init="zero_norm", norm=None), ValueError, ["zero_norm", "norm=None"]),
    (dict(in_channels=8, init_std=-1), ValueError, ["init_std", "positive", "-1"]),
    (dict(in_channels=8, pool="min"), ValueError, ["pool", "'max'", "'avg'", "'min'"]),
    (dict(in_channels=8, concat_path="fast"), ValueError, ["concat_path", "'sorted'", "'dense'"]),
])
def test_constructor_errors(kwargs, error, words):
    with pytest.raises(error) as info:
        NonLocalBlock(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("block_kwargs,x,error,words", [
    (dict(dimension=2), torch.randn(2, 8, 5), ValueError,
     ["x must have 4 dims", "(B, C, H, W)", "dimension=2", "(2, 8, 5)"]),
    (dict(dimension=1), torch.randn(2, 8, 5, 5), ValueError, ["3 dims", "(B, C, L)"]),
    (dict(dimension=3), torch.randn(2, 8, 5, 5), ValueError, ["5 dims", "(B, C, T, H, W)"]),
    (dict(dimension=2), torch.randn(2, 3, 5, 5), ValueError,
     ["3 channels", "in_channels=8"]),
    (dict(dimension=2), torch.randn(2, 8, 1, 6), ValueError,
     ["too small to sub-sample", "(1, 6)", "2x2", "sub_sample=False"]),
    (dict(dimension=3), torch.randn(1, 8, 4, 1, 1), ValueError, ["too small", "1x2x2"]),
    (dict(dimension=2), torch.zeros(2, 8, 4, 4, dtype=torch.long), TypeError, ["floating", "int64"]),
    (dict(dimension=2), [[1.0]], TypeError, ["torch.Tensor", "list"]),
])
def test_input_errors(block_kwargs, x, error, words):
    block = NonLocalBlock(8, **block_kwargs)
    with pytest.raises(error) as info:
        block(x)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_small_input_is_fine_without_sub_sampling():
    block = NonLocalBlock(8, sub_sample=False)
    assert block(torch.randn(2, 8, 1, 1)).shape == (2, 8, 1, 1)
    assert NonLocalBlock(8, dimension=3)(torch.randn(1, 8, 1, 2, 2)).shape == (1, 8, 1, 2, 2)


def test_use_scale_is_one_over_sqrt_inter_channels():
    """Pinned independently of block.scale: the map is softmax(theta . phi / sqrt(C')), which is
    exactly what scaled_dot_product_attention computes with its default scale."""
    block = randomised_block("embedded_gaussian", 2, use_scale=True, sub_sample=False)
    x = torch.randn(1, 6, 4, 5, dtype=torch.float64)
    _, nl_map = block(x, return_nl_map=True)
    theta = block.theta(x).flatten(2).transpose(1, 2)
    phi = block.phi(x).flatten(2).transpose(1, 2)
    expected = torch.softmax(theta @ phi.transpose(1, 2) / block.inter_channels ** 0.5, dim=-1)
    torch.testing.assert_close(nl_map, expected)
    g = block.g(x).flatten(2).transpose(1, 2)
    y_sdpa = torch.nn.functional.scaled_dot_product_attention(theta, phi, g)  # default 1/sqrt(d)
    torch.testing.assert_close(nl_map @ g, y_sdpa)
    unscaled = randomised_block("embedded_gaussian", 2, use_scale=False, sub_sample=False)
    _, plain = unscaled(x, return_nl_map=True)
    theta = unscaled.theta(x).flatten(2).transpose(1, 2)
    phi = unscaled.phi(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(plain, torch.softmax(theta @ phi.transpose(1, 2), dim=-1))


def test_dimension_classes_accept_their_own_dimension_only():
    assert NonLocalBlock2d(4, dimension=2).dimension == 2
    assert NonLocalBlock3d(4, mode="dot_product").mode == "dot_product"
    with pytest.raises(ValueError, match="NonLocalBlock2d has dimension=2; got dimension=3"):
        NonLocalBlock2d(4, dimension=3)


# The fast path's shape of work. Equality with the literal formula is in
# test_reference_equivalence.py; these check how the block gets there.

def _operations(block, x) -> list[str]:
    from torch.utils._python_dispatch import TorchDispatchMode

    names = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            names.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    with Record():
        block(x)
    return names


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product", "concatenation"])
@pytest.mark.parametrize("dimension,sub_sample,side", [(1, True, 6), (3, True, 6), (2, False, 16),
                                                       (2, True, 15)])
def test_one_convolution_and_one_pooling_for_theta_phi_g(mode, dimension, sub_sample, side):
    """Sequences, video, maps without sub-sampling and maps under 16 x 16: theta, phi and g come
    from one 1x1 convolution and the keys from one pooling (with W, two convolutions and at most
    one max-pool per forward)."""
    shape = {1: (2, 8, side), 2: (2, 8, side, side), 3: (2, 8, 2, side, side)}[dimension]
    block = NonLocalBlock(8, mode=mode, dimension=dimension, sub_sample=sub_sample)
    ops = _operations(block, torch.randn(shape))
    assert ops.count("convolution") == 2, ops
    assert sum(op.startswith("max_pool") for op in ops) == sub_sample, ops


@pytest.mark.parametrize("mode", MODES)
def test_a_pooled_image_on_the_cpu_goes_channels_last(mode):
    """An image with pooled keys, on the CPU, from 16 x 16: one copy of x into the channels-last
    layout, and theta, phi and g as separate convolutions of it (three, or the Gaussian's one for
    g), phi and g pooled in that layout; no other copy on the way to the products. Below, the
    stacked convolution (the test above)."""
    assert blocks.CHANNELS_LAST_MIN_POSITIONS == 16 * 16
    ops = _operations(NonLocalBlock(8, mode=mode), torch.randn(2, 8, 16, 16))
    embedded = pairwise_function(mode).embedded
    assert ops.count("convolution") == (4 if embedded else 2), ops
    assert sum(op.startswith("max_pool") for op in ops) == 2, ops
    assert ops.index("clone") < ops.index("convolution"), ops        # x, copied first
    assert ops.count("clone") == 1 + pairwise_function(mode).softmax, ops   # and y's transpose


def test_gaussian_pools_x_and_g():
    ops = _operations(NonLocalBlock(8, mode="gaussian", dimension=3), torch.randn(2, 8, 2, 6, 6))
    assert ops.count("convolution") == 2 and sum(op.startswith("max_pool") for op in ops) == 2


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product"])
@pytest.mark.parametrize("sub_sample", [True, False])
def test_the_scale_costs_no_pass(mode, sub_sample):
    """use_scale multiplies theta . phi inside the batched product that computes it (its alpha),
    not in a pass of its own over the queries or the scores."""
    for use_scale in (False, True):
        block = NonLocalBlock(8, mode=mode, use_scale=use_scale, sub_sample=sub_sample)
        ops = _operations(block, torch.randn(2, 8, 6, 6))
        assert "mul" not in ops and "div" not in ops and "baddbmm" in ops, ops


def test_state_dict_keeps_its_names():
    """Fusing theta, phi and g happens in the forward; the parameters stay three modules, so every
    checkpoint saved before still loads."""
    keys = set(NonLocalBlock(8, mode="concatenation").state_dict())
    assert {"theta.weight", "theta.bias", "phi.weight", "phi.bias", "g.weight", "g.bias",
            "concat_project.0.weight", "W.0.weight", "W.1.weight"} <= keys


@pytest.mark.parametrize("mode", MODES)
def test_gradients_arrive_contiguous(mode):
    """No gradient (of x, or of any parameter) is summed into a transposed buffer."""
    block = NonLocalBlock(8, mode=mode)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.1)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    z = block(x)
    assert z.is_contiguous()
    z.square().sum().backward()
    assert x.grad.is_contiguous()
    assert all(p.grad.is_contiguous() for p in block.parameters() if p.grad is not None)



# --- the library options ------------------------------------------------------------------
# Each is checked against a computation written out here, independent of the block's code.

def test_norm_names_and_callables_build_w():
    assert isinstance(NonLocalBlock(8).W[1], nn.BatchNorm2d)              # the default
    assert isinstance(NonLocalBlock(8, norm="bn", dimension=3).W[1], nn.BatchNorm3d)
    gn = NonLocalBlock(8, norm="gn", norm_groups=4).W[1]
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 4 and gn.num_channels == 8
    assert isinstance(NonLocalBlock(8, norm="syncbatch").W[1], nn.SyncBatchNorm)
    assert isinstance(NonLocalBlock(8, norm=None).W, nn.Conv2d)
    assert isinstance(NonLocalBlock(8, bn_layer=False).W, nn.Conv2d)     # the older switch
    custom = NonLocalBlock(8, norm=lambda c: nn.InstanceNorm2d(c, affine=True)).W[1]
    assert isinstance(custom, nn.InstanceNorm2d) and custom.num_features == 8
    with pytest.raises(ValueError, match="init='zero' zeroes the norm's scale.*no learnable"):
        NonLocalBlock(8, norm=lambda c: nn.InstanceNorm2d(c))    # affine=False: nothing to zero
    assert NonLocalBlock(8, norm=lambda c: nn.InstanceNorm2d(c), init="zero_w").W[0].weight.sum() == 0


@pytest.mark.parametrize("norm", [None, "batch", "group", "syncbatch"])
@pytest.mark.parametrize("init", ["zero", "zero_w"])
def test_every_zero_init_starts_as_the_identity(norm, init):
    block = NonLocalBlock(8, norm=norm, norm_groups=2, init=init).train()
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(block(x), x)


def test_zero_norm_zeroes_the_norm_and_zero_w_the_convolution():
    block = NonLocalBlock(8, init="zero_norm")
    assert block.W[1].weight.abs().sum() == 0 and block.W[1].bias.abs().sum() == 0
    assert block.W[0].weight.abs().sum() > 0
    block = NonLocalBlock(8, init="zero_w")
    assert block.W[0].weight.abs().sum() == 0 and torch.equal(block.W[1].weight, torch.ones(8))


def test_normal_init_draws_with_the_official_std():
    torch.manual_seed(0)
    block = NonLocalBlock(64, init="normal", init_std=0.01, norm=None)
    for conv in (block.theta, block.phi, block.g, block.W):
        assert abs(conv.weight.std().item() - 0.01) < 0.002 and conv.bias.abs().sum() == 0
    x = torch.randn(2, 64, 6, 6)
    assert not torch.equal(block(x), x)        # nothing zeroed: not the identity at the start
    bn = NonLocalBlock(64, init="normal")      # with a norm, its scale is the drawn layer
    assert abs(bn.W[1].weight.std().item() - 0.01) < 0.003 and bn.W[1].bias.abs().sum() == 0


def test_reduction_sets_inter_channels():
    assert NonLocalBlock(64).inter_channels == 32
    assert NonLocalBlock(64, reduction=4).inter_channels == 16
    assert NonLocalBlock(3, reduction=4).inter_channels == 1


def _literal_block(block, x, pool_keys, w_out):
    """z = W(y) + x written out for a 2-D embedded-Gaussian or dot-product block: 1x1 convs as
    einsums, pooling given, the scale C'^-1/2 when the block uses it."""
    def conv(c, t):
        return torch.einsum("oc,bchw->bohw", c.weight[:, :, 0, 0], t) + c.bias[None, :, None, None]

    theta = conv(block.theta, x).flatten(2)                      # (B, C', N)
    phi = pool_keys(conv(block.phi, x)).flatten(2)               # (B, C', M)
    g = pool_keys(conv(block.g, x)).flatten(2)
    scores = torch.einsum("bcn,bcm->bnm", theta, phi) * (block.inter_channels ** -0.5
                                                          if block.use_scale else 1.0)
    if block.mode == "embedded_gaussian":
        weights = scores.exp() / scores.exp().sum(-1, keepdim=True)
    else:
        weights = scores / phi.shape[-1]
    y = torch.einsum("bnm,bcm->bcn", weights, g).reshape(x.shape[0], -1, *x.shape[2:])
    return w_out(y) + x


def _random(block):
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.5)
    return block.double().eval()


def test_avg_pool_is_the_mean_of_each_2x2_window():
    block = _random(NonLocalBlock(6, pool="avg", norm=None, mode="dot_product"))
    x = torch.randn(2, 6, 4, 6, dtype=torch.float64)
    windows = lambda t: t.unflatten(2, (-1, 2)).unflatten(4, (-1, 2)).mean(dim=(3, 5))
    expected = _literal_block(block, x, windows, lambda y: torch.einsum(
        "oc,bchw->bohw", block.W.weight[:, :, 0, 0], y) + block.W.bias[None, :, None, None])
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product"])
def test_use_scale_divides_the_scores_by_sqrt_inter_channels(mode):
    block = _random(NonLocalBlock(6, mode=mode, use_scale=True, norm=None))
    x = torch.randn(2, 6, 4, 6, dtype=torch.float64)
    windows = lambda t: t.unflatten(2, (-1, 2)).unflatten(4, (-1, 2)).amax(dim=(3, 5))
    expected = _literal_block(block, x, windows, lambda y: torch.einsum(
        "oc,bchw->bohw", block.W.weight[:, :, 0, 0], y) + block.W.bias[None, :, None, None])
    for z in (block(x), block(x, return_nl_map=True)[0]):
        torch.testing.assert_close(z, expected, rtol=0, atol=1e-10)


def test_group_norm_in_w_is_the_literal_group_normalisation():
    block = _random(NonLocalBlock(6, norm="group", norm_groups=3, mode="dot_product"))
    x = torch.randn(2, 6, 4, 6, dtype=torch.float64)
    windows = lambda t: t.unflatten(2, (-1, 2)).unflatten(4, (-1, 2)).amax(dim=(3, 5))
    conv, gn = block.W

    def w_out(y):
        u = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], y) + conv.bias[None, :, None, None]
        groups = u.reshape(u.shape[0], 3, -1)                 # 2 channels x H x W per group
        mean = groups.mean(-1, keepdim=True)
        var = groups.var(-1, unbiased=False, keepdim=True)
        u = ((groups - mean) / torch.sqrt(var + gn.eps)).reshape(u.shape)
        return u * gn.weight[None, :, None, None] + gn.bias[None, :, None, None]

    torch.testing.assert_close(block(x), _literal_block(block, x, windows, w_out), rtol=0,
                               atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_one_non_finite_input_spreads_over_its_example_only(mode):
    """What the block's docstring says of NaN and infinite input, in eval mode."""
    block = randomised_block(mode, 2, dtype=torch.float32)
    for bad, least in ((float("nan"), 0.9), (float("inf"), 0.01)):
        x = torch.randn(SHAPES[2])
        x[0, 0, 0, 0] = bad
        with torch.no_grad():
            z = block(x)
        assert (~z[0].isfinite()).float().mean() >= least, (bad, mode)
        assert z[1].isfinite().all(), (bad, mode)


# -- GCNet's global-context block -------------------------------------------------------------------

def test_global_context_starts_as_the_identity_and_shares_one_map():
    from nlcourse import GlobalContextBlock
    from nlcourse.mapstats import row_similarity

    for dim in (1, 2, 3):
        block = GlobalContextBlock(8, dimension=dim)
        x = torch.randn(SHAPES[dim][0], 8, *SHAPES[dim][2:])
        assert torch.equal(block(x), x)
        z, nl_map = block(x, return_nl_map=True)
        n = x[0, 0].numel()
        assert torch.equal(z, x) and nl_map.shape == (x.shape[0], n, n)
        assert torch.allclose(nl_map.sum(-1), torch.ones(x.shape[0], n))
        assert torch.equal(nl_map[:, 0], nl_map[:, -1])           # every row the same
        assert torch.allclose(row_similarity(nl_map), torch.ones(x.shape[0]))


def test_global_context_is_a_non_local_block_with_identical_rows():
    """GC with T = W o g equals a non-local block whose map has alpha in every row
    (book/transformers.md derives it)."""
    from nlcourse import GlobalContextBlock

    torch.manual_seed(0)
    block = NonLocalBlock(6, sub_sample=False).double().eval()
    for p in block.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    gc = GlobalContextBlock(6, transform=nn.Sequential(block.g, block.W)).double().eval()
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    alpha = gc.shared_map(x)
    g = block.g(x).flatten(2)                                      # (B, C', N)
    y = torch.einsum("bn,bcn->bc", alpha, g)[:, :, None].expand_as(g).reshape(2, -1, 5, 4)
    assert (gc(x) - (block.W(y) + x)).abs().max() < 1e-12


def test_global_context_learns_and_checks_its_arguments():
    from nlcourse import GlobalContextBlock

    block = GlobalContextBlock(8)
    x = torch.randn(4, 8, 6, 6)
    opt = torch.optim.SGD(block.parameters(), lr=0.5)
    (block(x) - torch.randn_like(x)).pow(2).mean().backward()
    opt.step()
    assert not torch.equal(block(x), x)
    with pytest.raises(ValueError, match="x has 3 channels .* in_channels=8"):
        block(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor shaped \(B, C, H, W\)"):
        block(torch.randn(8, 4, 4))
    with pytest.raises(ValueError, match="dimension must be 1, 2 or 3"):
        GlobalContextBlock(8, dimension=4)
    with pytest.raises(TypeError, match="transform must be an nn.Module"):
        GlobalContextBlock(8, transform="bottleneck")
