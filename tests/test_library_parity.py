"""The block against mmcv's NonLocal2d (and its 1-D and 3-D kin), weights copied across, for every
mode the two share. mmcv-lite is a test requirement; without it the test skips and says why."""

from __future__ import annotations

import pytest
import torch

from nlcourse import MODES, NonLocalBlock

try:
    from mmcv.cnn.bricks.non_local import NonLocal1d, NonLocal2d, NonLocal3d
    MMCV = {1: NonLocal1d, 2: NonLocal2d, 3: NonLocal3d}
    WHY = None
except Exception as error:  # noqa: BLE001 (any failure to import mmcv is a reason to skip)
    MMCV, WHY = None, f"mmcv (pip install mmcv-lite) cannot be imported: {error!r}"

SHAPES = {1: (2, 8, 10), 2: (2, 8, 6, 4), 3: (2, 8, 3, 4, 6)}
BN = {1: "BN1d", 2: "BN", 3: "BN3d"}   # mmcv's norm_cfg names


def _mmcv_twin(block: NonLocalBlock, norm: bool):
    """An mmcv block of the same configuration holding ``block``'s weights."""
    twin = MMCV[block.dimension](block.in_channels, sub_sample=block.sub_sample, mode=block.mode,
                                 use_scale=block.use_scale,
                                 norm_cfg=dict(type=BN[block.dimension]) if norm else None)
    twin = twin.double()
    mine = dict(block.state_dict())
    keyed = {}
    for name in ("theta", "phi", "g"):
        if getattr(block, name) is None:
            continue
        # with sub-sampling mmcv wraps phi and g as Sequential(ConvModule, pool)
        prefix = f"{name}.0.conv" if block.sub_sample and name != "theta" else f"{name}.conv"
        keyed[f"{prefix}.weight"] = mine[f"{name}.weight"]
        keyed[f"{prefix}.bias"] = mine[f"{name}.bias"]
    if norm:
        keyed["conv_out.conv.weight"] = mine["W.0.weight"]   # mmcv: no bias before a norm
        for key, value in mine.items():
            if key.startswith("W.1."):
                keyed[f"conv_out.{twin.conv_out.norm_name}.{key[4:]}"] = value
    else:
        keyed["conv_out.conv.weight"], keyed["conv_out.conv.bias"] = mine["W.weight"], mine["W.bias"]
    if block.mode == "concatenation":
        keyed["concat_project.conv.weight"] = mine["concat_project.0.weight"]
    twin.load_state_dict(keyed, strict=True)   # every key of each side used
    return twin.eval()


@pytest.mark.skipif(MMCV is None, reason=WHY or "")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("norm", [True, False], ids=["bn", "no-norm"])
@pytest.mark.parametrize("sub_sample", [True, False], ids=["pool", "nopool"])
def test_mmcv_nonlocal_gives_the_same_output(mode, dim, norm, sub_sample):
    torch.manual_seed(0)
    block = NonLocalBlock(8, mode=mode, dimension=dim, sub_sample=sub_sample,
                          norm="batch" if norm else None,
                          use_scale=(mode == "embedded_gaussian"))
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.5)
        if norm:
            block.W[0].bias.zero_()          # mmcv's convolution before a norm has no bias
            block.W[1].running_mean.normal_(0, 0.5)
            block.W[1].running_var.uniform_(0.5, 2.0)
    block = block.double().eval()
    twin = _mmcv_twin(block, norm)
    x = torch.randn(SHAPES[dim], dtype=torch.float64)
    z = block(x)
    assert (z - x).abs().max() > 1e-2       # the blocks add something: a real comparison
    torch.testing.assert_close(twin(x), z, rtol=0, atol=1e-10)
