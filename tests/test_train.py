"""Training loop, metrics file, checkpoint and command line, on the smoke budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlcourse.data import SAMPLE, MNISTData
from nlcourse.train import evaluate, load_checkpoint, train_mnist

REQUIRED = {"test_accuracy", "epochs", "train_seconds", "params", "mode", "budget", "data_source",
            "device", "torch_version", "seed"}


def tiny_data(n_train=256, n_test=128, source=SAMPLE):
    """Learnable stand-in data: the label is the quadrant (and brightness) of a bright square."""
    gen = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=gen)
        x = torch.rand(n, 1, 28, 28, generator=gen) * 0.1
        for i, label in enumerate(y.tolist()):
            r, c = (label % 4) // 2 * 14, (label % 2) * 14
            x[i, 0, r + 3:r + 11, c + 3:c + 11] = 0.3 + 0.07 * label
        return x, y

    return MNISTData(*make(n_train), *make(n_test), source=source)


def test_train_writes_metrics_and_a_loadable_checkpoint(tmp_path):
    metrics = train_mnist("concatenation", budget="smoke", seed=3, out=tmp_path,
                          data=tiny_data(), progress=False, log=None)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert REQUIRED <= saved.keys()
    assert saved["mode"] == "concatenation" and saved["seed"] == 3 and saved["budget"] == "smoke"
    assert saved["data_source"] == SAMPLE and saved["params"] == 401_626
    assert 0.0 <= saved["test_accuracy"] <= 1.0 and saved["epochs"] == len(saved["history"])
    assert saved["torch_version"] == torch.__version__
    assert saved["precision"] == "float32"  # the CPU trains without autocast
    # The checkpoint is plain tensors and strings: it loads with weights_only=True.
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert raw["mode"] == "concatenation"
    model = load_checkpoint(tmp_path)
    data = tiny_data()
    again = evaluate(model, data.test_images, data.test_labels)
    assert again["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_same_seed_same_result():
    a = train_mnist(None, budget="smoke", seed=5, data=tiny_data(), progress=False, log=None)
    b = train_mnist(None, budget="smoke", seed=5, data=tiny_data(), progress=False, log=None)
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]
    assert a["mode"] == "none" and a["params"] == 390_858


def test_missing_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*python -m nlcourse train"):
        load_checkpoint(tmp_path)


DATA = os.environ.get("NLCOURSE_DATA")


@pytest.mark.skipif(not DATA or not Path(DATA, "MNIST", "raw").is_dir(),
                    reason="full MNIST not available: set NLCOURSE_DATA to a folder with MNIST/raw/")
def test_command_line_smoke_run(tmp_path):
    out = tmp_path / "eg"
    proc = subprocess.run(
        [sys.executable, "-m", "nlcourse", "train", "--mode", "embedded_gaussian", "--budget",
         "smoke", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert REQUIRED <= metrics.keys()
    assert metrics["data_source"] == "mnist-subset"   # smoke never claims full MNIST
    assert metrics["n_train"] == 4096 and metrics["test_accuracy"] > 0.5
    assert "test accuracy" in proc.stdout and "a subset of MNIST" in proc.stdout


def test_command_line_rejects_bad_mode():
    proc = subprocess.run([sys.executable, "-m", "nlcourse", "train", "--mode", "softmax"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice: 'softmax'" in proc.stderr and "embedded_gaussian" in proc.stderr


def test_sweep_writes_one_file_per_run_and_resumes(tmp_path, monkeypatch):
    import nlcourse.data
    from nlcourse.experiments import run_sweep

    monkeypatch.setattr(nlcourse.data, "load_mnist", lambda: tiny_data())
    results = run_sweep(("none", "dot_product"), seeds=(0,), budget="smoke", out_dir=tmp_path,
                        progress=False, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dot_product_seed0.json",
                                                          "none_seed0.json"]
    assert [r["mode"] for r in results] == ["none", "dot_product"]
    assert results[0]["command"] == (f"python -m nlcourse sweep --models none --seeds 0 "
                                     f"--budget smoke --out {tmp_path}")
    monkeypatch.setattr(nlcourse.data, "load_mnist", lambda: pytest.fail("retrained"))
    assert run_sweep(("none", "dot_product"), seeds=(0,), budget="smoke", out_dir=tmp_path,
                     progress=False, log=None) == results
