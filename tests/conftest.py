"""Shared fixtures: small random blocks whose parameters are all non-trivial."""

from __future__ import annotations

import pytest
import torch

from nlcourse import NonLocalBlock

# One small input shape per spatial dimension; odd sizes so that pooling has to floor.
SHAPES = {1: (2, 6, 9), 2: (2, 6, 5, 7), 3: (2, 6, 3, 4, 5)}


def randomised_block(mode: str, dimension: int, dtype=torch.float64, seed: int = 0, **kwargs):
    """A block in eval mode whose every parameter (BN gamma and W included) is random.

    At initialisation W outputs exactly zero, so z == x whatever the pairwise step computes:
    comparing outputs of fresh blocks would be a test that cannot fail.
    """
    torch.manual_seed(seed)
    block = NonLocalBlock(SHAPES[dimension][1], mode=mode, dimension=dimension, **kwargs)
    block = block.to(dtype)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.5)
        for m in block.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return block.eval()


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
