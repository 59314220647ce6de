"""MNISTNet: the public network's layer sizes, its maps, and its input check."""

from __future__ import annotations

import pytest
import torch

from nlcourse import MODES, MNISTNet


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_public_network():
    assert n_params(MNISTNet(None)) == 390_858
    assert n_params(MNISTNet("embedded_gaussian")) == 401_530


@pytest.mark.parametrize("mode", [None, *MODES])
def test_forward_and_maps(mode):
    net = MNISTNet(mode).eval()
    x = torch.rand(3, 1, 28, 28)
    logits = net(x)
    assert logits.shape == (3, 10)
    logits2, maps = net(x, return_nl_maps=True)
    torch.testing.assert_close(logits2, logits)
    if mode is None:
        assert maps == []
    else:
        assert [tuple(m.shape) for m in maps] == [(3, 196, 49), (3, 49, 9)]


def test_blocks_start_as_identity_inside_the_network():
    """With identity blocks the network computes exactly what the baseline computes."""
    torch.manual_seed(0)
    base = MNISTNet(None).eval()
    torch.manual_seed(0)
    net = MNISTNet("dot_product").eval()
    net.load_state_dict(base.state_dict(), strict=False)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(net(x), base(x))
    h = net.stage1(x)
    assert net.blocks[0](h).stride() == h.stride()  # same memory layout as the input


def test_bad_mode_and_bad_input():
    with pytest.raises(ValueError, match="mode must be one of .* or None; got 'relu'"):
        MNISTNet("relu")
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        MNISTNet(None)(torch.rand(2, 3, 28, 28))


def test_long_range_net_dilated_and_global_context():
    from nlcourse import GlobalContextBlock
    from nlcourse.models import CANVAS_DILATIONS, LongRangeNet, receptive_field

    dilated = LongRangeNet(None, dilations=CANVAS_DILATIONS)
    assert receptive_field(dilated.features) == (130, 4) >= (2 * 64, 4)   # the whole canvas
    assert receptive_field(LongRangeNet(None).features) == (18, 4)
    x = torch.rand(2, 1, 64, 64)
    assert dilated(x).shape == (2, 10, 16, 16) and dilated(x, return_nl_maps=True)[1] == []
    gc = LongRangeNet(None, global_context=True)
    assert isinstance(gc.block, GlobalContextBlock)
    _, (nl_map,) = gc(x, return_nl_maps=True)
    assert nl_map.shape == (2, 256, 256)
    with pytest.raises(ValueError, match="give mode=None with it"):
        LongRangeNet("gaussian", global_context=True)
    with pytest.raises(ValueError, match="dilations must be whole numbers"):
        LongRangeNet(None, dilations=(2, 0))
