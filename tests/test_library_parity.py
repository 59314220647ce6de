"""The block against mmcv's NonLocal2d (and its 1-D and 3-D kin), weights copied across by
``nlcourse.bench.mmcv_twin`` (the peer benchmark's), for every mode the two share. mmcv-lite is a
test requirement; without it the test skips and says why."""

from __future__ import annotations

import pytest
import torch

from nlcourse import MODES, NonLocalBlock
from nlcourse.bench import mmcv_missing, mmcv_twin

WHY = mmcv_missing()
MMCV = WHY is None

SHAPES = {1: (2, 8, 10), 2: (2, 8, 6, 4), 3: (2, 8, 3, 4, 6)}


@pytest.mark.skipif(not MMCV, reason=f"mmcv (pip install mmcv-lite) cannot be imported: {WHY}")
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
    twin = mmcv_twin(block)   # the peer benchmark's twin (nlcourse.bench): the same weights
    x = torch.randn(SHAPES[dim], dtype=torch.float64)
    z = block(x)
    assert (z - x).abs().max() > 1e-2       # the blocks add something: a real comparison
    torch.testing.assert_close(twin(x), z, rtol=0, atol=1e-10)
