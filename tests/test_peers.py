"""The peer benchmark (``python -m nlcourse bench peers``): its textbook formula computes the
block's function, its mmcv twin holds the block's weights, the command writes its file, and the
committed file (results/bench/cpu/peers.json) meets nlcourse.bench.PEER_TARGETS (a median of at
least 1 and a lower quartile of at least 0.95 against each peer, over at least 30 rounds); the
check of that file is itself tested on copies that miss them."""

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
from nlcourse.bench import (PEER_TARGETS, PEERS, mmcv_missing, mmcv_twin, peer_verdicts,
                            textbook_forward)
from nlcourse.provenance import missing_fields, results_home

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


# The committed file against the targets

SIDES = (16, 32, 64, 128)
ALL_KEYS_UP_TO = 64


def failures(result) -> list[str]:
    """What keeps a peer benchmark from meeting PEER_TARGETS; empty if it meets them all.

    Every mode at every side of SIDES with keys sub-sampled, and without up to ALL_KEYS_UP_TO,
    must be there, C = 64 and C' = 32, on a CPU in float32. In each of those cells each peer
    either was timed over at least 30 rounds, and then the median of its time over the block's is
    at least 1.0 and its lower quartile at least 0.95; or it could not be: mmcv's concatenation,
    whose backward pass raises (its ReLU is in place), and both peers' concatenation of the
    largest map, whose (N, M, 2C') tensors need more memory than the benchmark allows. Nothing
    else may be missing, and mmcv's concatenation must have raised at least once."""
    problems = []
    machine = result["machine"]
    if machine["device_type"] != "cpu" or machine["dtype"] != "torch.float32":
        problems.append(f"measured on {machine['device_type']} in {machine['dtype']}")
    rows = {(r["mode"], r["shape"][2], r["sub_sample"]): r for r in result["rows"]
            if r["shape"][:2] == [1, 64] and r["shape"][2] == r["shape"][3]}
    wanted = {(m, side, sub) for m in MODES for side in SIDES for sub in (True, False)
              if sub or side <= ALL_KEYS_UP_TO}
    problems += [f"no row for {key}" for key in sorted(wanted - rows.keys())]
    for key in sorted(wanted & rows.keys()):
        row = rows[key]
        concat = pairwise_function(key[0]).form == "concat"
        if row["inter_channels"] != 32:
            problems.append(f"{key}: C' = {row['inter_channels']}")
        for peer in PEERS:
            cell = row.get(peer, {})
            if "ratio" in cell:
                low = cell["ratio_quartiles"][0]
                if row["rounds"] < PEER_TARGETS["rounds"]:
                    problems.append(f"{key} {peer}: {row['rounds']} rounds")
                if cell["ratio"] < 1.0 or low < 0.95:
                    problems.append(f"{key} {peer}: median {cell['ratio']:.3f}, lower quartile "
                                    f"{low:.3f}")
            elif peer == "mmcv" and concat and "error" in cell:
                if cell["raised_in"] != "backward" or "inplace operation" not in cell["error"]:
                    problems.append(f"{key} mmcv: an unexpected failure ({cell})")
            elif concat and key[1:] == (max(SIDES), True) and "skipped" in cell:
                pass     # the (N, M, 2C') tensors of the largest map: more than the machine has
            else:
                problems.append(f"{key} {peer}: not compared ({cell})")
    if not any("error" in r["mmcv"] for r in rows.values()):
        problems.append("mmcv's concatenation never ran into its error")
    return problems


def _committed():
    return json.loads((results_home() / "bench" / "cpu" / "peers.json").read_text())


def test_committed_peers_meet_the_targets():
    result = _committed()
    assert missing_fields(result) == [] and result["lab"] == "bench" and result["model"] == "peers"
    assert failures(result) == []
    # the verdicts the file carries are the ones its rows give
    assert result["targets"] == peer_verdicts(result["rows"])
    assert all(v["met"] for v in result["targets"])


def _doctored(change):
    result = _committed()
    change(result)
    return result


def _cell(result, mode, side, sub_sample=True):
    return next(r for r in result["rows"] if r["mode"] == mode and r["shape"][2] == side and
                r["sub_sample"] == sub_sample)


def _set(result, mode, side, peer, **values):
    _cell(result, mode, side)[peer].update(values)


@pytest.mark.parametrize("change", [
    lambda r: _set(r, "gaussian", 16, "mmcv", ratio=0.99),
    lambda r: _set(r, "gaussian", 32, "formula", ratio_quartiles=[0.94, 1.2]),
    lambda r: _cell(r, "dot_product", 64).update(rounds=29),
    lambda r: r["rows"].remove(_cell(r, "embedded_gaussian", 128)),
    lambda r: r["rows"].remove(_cell(r, "dot_product", 64, sub_sample=False)),
    lambda r: _cell(r, "concatenation", 32).update(mmcv={"skipped": "too large"}),
    lambda r: _cell(r, "concatenation", 64).update(formula={"skipped": "too large"}),
    lambda r: _cell(r, "embedded_gaussian", 16).pop("formula"),
    lambda r: _cell(r, "gaussian", 16).update(inter_channels=64),
    lambda r: r["machine"].update(device_type="cuda"),
], ids=["mmcv-median", "formula-quartile", "rounds", "missing-row", "missing-all-keys-row",
        "mmcv-skipped", "formula-skipped", "peer-missing", "other-C'", "gpu"])
def test_the_check_fails_a_file_that_misses_the_targets(change):
    """The check above can fail: on a copy of the committed file changed in one place."""
    assert failures(_committed()) == []
    assert failures(_doctored(change)) != []
