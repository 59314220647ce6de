"""The peer benchmark (``python -m nlcourse bench peers``): its textbook formula computes the
block's function, its mmcv twin holds the block's weights, the command writes its file, and the
committed file (results/bench/cpu/peers.json) meets the targets of issue 36; the check of that
file is itself tested on copies that miss them."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys

import pytest
import torch

from nlcourse import MODES, NonLocalBlock, reference
from nlcourse._modes import pairwise_function
from nlcourse.bench import mmcv_missing, mmcv_twin, textbook_forward
from nlcourse.provenance import missing_fields

from .conftest import randomised_block

WHY = mmcv_missing()
needs_mmcv = pytest.mark.skipif(WHY is not None, reason=f"mmcv cannot be imported: {WHY}")
TOL = dict(rtol=0, atol=1e-10)


# The textbook formula: the same function as the literal reference, in float64, with gradients

@pytest.mark.parametrize("mode,sub_sample,use_scale,training", [
    (mode, sub, scale, training)
    for mode, sub, training in itertools.product(MODES, (True, False), (False, True))
    for scale in ((False, True) if pairwise_function(mode).scalable else (False,))])
def test_textbook_formula_equals_reference(mode, sub_sample, use_scale, training):
    block = randomised_block(mode, 2, sub_sample=sub_sample, use_scale=use_scale).train(training)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3),
                    requires_grad=True)
    weight = torch.randn(x.shape, dtype=torch.float64)
    # training mode updates the running statistics: each path runs on its own copy
    twins = [copy.deepcopy(block) for _ in range(2)]
    z_text = textbook_forward(twins[0], x)
    z_ref = reference.block_forward(twins[1], x)[0]
    assert (z_ref - x).abs().max() > 1e-2      # the block adds something: a real comparison
    torch.testing.assert_close(z_text, z_ref, **TOL)
    for a, b in zip(torch.autograd.grad((z_text * weight).sum(), [x, *twins[0].parameters()],
                                        allow_unused=True),
                    torch.autograd.grad((z_ref * weight).sum(), [x, *twins[1].parameters()],
                                        allow_unused=True)):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, **TOL)
    # the running statistics move alike (the count of batches is the module's own bookkeeping)
    for (name, a), b in zip(twins[0].named_buffers(), twins[1].buffers()):
        if not name.endswith("num_batches_tracked"):
            torch.testing.assert_close(a, b, **TOL)


def test_textbook_formula_writes_the_image_block_only():
    for block in (NonLocalBlock(8, dimension=1), NonLocalBlock(8, pool="avg"),
                  NonLocalBlock(8, norm="group", norm_groups=2)):
        with pytest.raises(ValueError, match="image block"):
            textbook_forward(block, torch.randn(1, 8, *(4,) * block.dimension))


@needs_mmcv
@pytest.mark.parametrize("options,what", [
    (dict(norm="group", norm_groups=2), "norm other than BatchNorm"),
    (dict(mode="dot_product", use_scale=True), "scaled outside the embedded Gaussian"),
    (dict(pool="avg"), "average-pooled"),
    (dict(inter_channels=3), "C' is not C // reduction"),
    (dict(), "bias before the norm")])
def test_mmcv_twin_refuses_a_block_mmcv_cannot_be(options, what):
    block = NonLocalBlock(8, **options)
    with torch.no_grad():
        block.W[0].bias.fill_(0.1)
    with pytest.raises(ValueError, match=what):
        mmcv_twin(block)


# The command, on tiny sizes

@needs_mmcv
def test_peers_command_writes_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nlcourse", "bench", "peers", "--sizes", "1x8x8x8", "--repeats",
         "4", "--threads", "1", "--modes", "gaussian", "concatenation", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "peers.json").read_text())
    assert missing_fields(result) == [] and result["model"] == "peers"
    assert result["machine"]["threads"] == 1 and "--threads 1" in result["command"]
    assert result["settings"]["mmcv_version"] and result["settings"]["rounds"] == 4
    rows = {(r["mode"], r["sub_sample"]): r for r in result["rows"]}
    assert set(rows) == {(m, s) for m in ("gaussian", "concatenation") for s in (True, False)}
    for (mode, sub_sample), row in rows.items():
        assert row["keys"] == (16 if sub_sample else 64) and row["rounds"] == 4
        assert row["block"]["seconds"] > 0 and row["block"]["peak_bytes"] > 0
        # the three compute one function: the peers land within float32 rounding of the block
        assert row["formula"]["max_difference"] < 1e-5 and row["mmcv"]["max_difference"] < 1e-5
        assert row["formula"]["ratio_quartiles"][0] <= row["formula"]["ratio"]
    # mmcv's concatenation runs forward and fails backward: its ReLU is in place
    failed = rows[("concatenation", True)]["mmcv"]
    assert failed["raised_in"] == "backward" and "inplace operation" in failed["error"]
    assert "ratio" in rows[("gaussian", True)]["mmcv"]
    assert len(result["targets"]) == 2 * 2 + 2   # formula everywhere, mmcv in Gaussian mode
