"""Data-parallel training: two CPU processes with gloo under torchrun, on the smoke budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nlcourse.distributed import Context, parameter_digest, shard
from nlcourse.labs import mnist, runner
from nlcourse.train import batch_plan, evaluate


def test_batch_plan_splits_the_global_batch_or_scales_it():
    quick = mnist.BUDGETS["quick"]
    assert batch_plan(quick, 1) == {"world_size": 1, "per_process_batch_size": 128,
                                    "global_batch_size": 128, "lr": quick.lr, "scale_batch": False}
    assert batch_plan(quick, 4)["per_process_batch_size"] == 32
    scaled = batch_plan(quick, 4, scale_batch=True)
    assert (scaled["per_process_batch_size"], scaled["global_batch_size"]) == (128, 512)
    assert scaled["lr"] == pytest.approx(4 * quick.lr)
    with pytest.raises(ValueError, match="cannot be split evenly over 3 processes"):
        batch_plan(quick, 3)


def test_shards_cover_every_example_once():
    import torch

    idx = torch.arange(11)
    parts = [shard(idx, Context(rank=r, world_size=3)) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(11))


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "nlcourse", "train", "mnist", "--budget", "smoke", "--model", "embedded_gaussian",
           "--out", str(out), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out, run.stdout + run.stderr


def test_both_ranks_finish_and_only_rank_0_writes(two_process_run):
    out, log = two_process_run
    assert "rank 0 of 2 finished" in log and "rank 1 of 2 finished" in log
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.pt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"
    assert metrics["global_batch_size"] == 64 and metrics["per_process_batch_size"] == 32
    assert metrics["command"].startswith("torchrun --nproc_per_node=2 -m nlcourse train mnist")


def test_ranks_end_with_identical_weights_and_the_checkpoint_is_rank_0s(two_process_run):
    out, _ = two_process_run
    digests = json.loads((out / "metrics.json").read_text())["rank_parameter_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert parameter_digest(runner.load(mnist.LAB, out)) == digests[0]


def test_reduced_test_accuracy_equals_one_process_evaluating_the_checkpoint(two_process_run):
    out, _ = two_process_run
    metrics = json.loads((out / "metrics.json").read_text())
    data = mnist.load_data(mnist.BUDGETS["smoke"])
    alone = evaluate(runner.load(mnist.LAB, out), data.test_images, data.test_labels)
    assert metrics["n_test"] == len(data.test_labels)
    assert metrics["test_accuracy"] == alone["accuracy"]  # each test image counted exactly once
    assert metrics["history"][-1]["test_loss"] == pytest.approx(alone["loss"], rel=1e-5)
