"""Shared fixtures: small random blocks whose parameters are all non-trivial, and a checkpoint
with code in it (what a malicious file would be)."""

from __future__ import annotations

import builtins

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


class _Exploit:
    """Pickles as a call that writes ``marker``: the code a malicious checkpoint would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",)


def malicious_checkpoint(path, marker, **meta):
    """A checkpoint file whose state_dict, once unpickled without ``weights_only``, writes
    ``marker``: no loader of the course may run it."""
    torch.save({**meta, "state_dict": _Exploit(marker)}, path)
    return path


def bad_checkpoints(root) -> dict:
    """What a user might hand a checkpoint loader, written into ``root``: a good checkpoint cut in
    half (``truncated``) and one with code in it (``malicious``, which would write ``marker``)."""
    from nlcourse import MNISTNet
    from nlcourse.train import save_checkpoint

    good = save_checkpoint(root / "good.pt", MNISTNet("embedded_gaussian"), lab="mnist",
                           model="embedded_gaussian")
    truncated = root / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    marker = root / "exploit-ran"
    malicious = malicious_checkpoint(root / "malicious.pt", marker, lab="mnist", model="none")
    return {"truncated": truncated, "malicious": malicious, "marker": marker, "root": root}
