"""Every lab through the one interface: run, sweep, results, the command line built from the
list of labs, and the budget resolved once."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlcourse.budget import Budget
from nlcourse.data import SAMPLE
from nlcourse.labs import LABS, mnist
from nlcourse.provenance import RUN_RECORD_FIELDS, missing_fields

from .test_train import tiny_data

SMOKE = mnist.BUDGETS["smoke"]
RESULTS = {"test_accuracy", "epochs", "train_seconds", "params", "history"}


def test_the_precision_switch_is_in_the_record(tmp_path):
    _, record = mnist.run("none", SMOKE, seed=0, data=tiny_data(), progress=False, log=None,
                          precision="bf16")
    assert record["precision"] == "bf16 autocast" and record["compile"] is False


def test_every_lab_has_the_interface():
    for name, lab in LABS.items():
        assert lab.name == name and lab.default_model in lab.models
        assert list(lab.budgets) == ["smoke", "quick", "full"]
        assert all(isinstance(b, Budget) and b.name == k for k, b in lab.budgets.items())


def test_run_writes_the_run_record_and_a_loadable_checkpoint(tmp_path):
    net, record = mnist.run("concatenation", SMOKE, seed=3, out=tmp_path, data=tiny_data(),
                            progress=False, log=None, command="a test")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert missing_fields(saved) == [] and RESULTS <= saved.keys()
    assert saved["lab"] == "mnist" and saved["model"] == saved["mode"] == "concatenation"
    assert saved["seed"] == 3 and saved["budget"] == "smoke" and saved["command"] == "a test"
    assert saved["data_source"] == SAMPLE and saved["params"] == 401_626
    assert saved["n_train"] == 256 and saved["n_test"] == 128 and saved["world_size"] == 1
    assert saved["precision"] == "float32"   # the CPU trains without autocast
    assert saved["compile"] is False
    assert saved["epochs"] == len(saved["history"]) and saved["torch_version"] == torch.__version__
    loaded = mnist.load(tmp_path)
    x = tiny_data().test_images[:8]
    assert torch.equal(loaded(x), net(x))


def test_run_wants_a_known_model_and_a_resolved_budget():
    with pytest.raises(ValueError, match="model must be one of 'none', 'gaussian'.*; got 'softmax'"):
        mnist.run("softmax", SMOKE)
    with pytest.raises(TypeError, match=r"budget must be resolved first, with mnist.budget\(name\)"):
        mnist.run("none", "smoke")


def test_loading_another_labs_checkpoint_is_refused(tmp_path):
    from nlcourse.labs import long_range
    from nlcourse.train import save_checkpoint

    save_checkpoint(tmp_path / "model.pt", long_range.build("none"), lab="long_range",
                    model="none")
    with pytest.raises(ValueError, match="a model of the long_range lab, not of the mnist lab"):
        mnist.load(tmp_path)


def test_sweep_writes_one_file_per_run_and_resumes(tmp_path):
    lab = dataclasses.replace(mnist.LAB, load_data=lambda budget: tiny_data())
    results = lab.sweep(("none", "dot_product"), (0,), SMOKE, tmp_path, progress=False, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dot_product_seed0.json",
                                                          "none_seed0.json"]
    assert [r["model"] for r in results] == ["none", "dot_product"]
    assert results[0]["command"] == (f"python -m nlcourse sweep mnist --models none --seeds 0 "
                                     f"--budget smoke --out {tmp_path}")
    assert all(missing_fields(r) == [] for r in results)
    lab = dataclasses.replace(lab, load_data=lambda budget: pytest.fail("retrained"))
    assert lab.sweep(("none", "dot_product"), (0,), SMOKE, tmp_path, progress=False,
                     log=None) == results
    assert lab.results(tmp_path) == results


def test_setup_describes_the_labs_own_budget(capsys, monkeypatch):
    from nlcourse.labs import resnet

    monkeypatch.delenv("NLCOURSE_BUDGET", raising=False)
    budget, device = resnet.setup("smoke", seed=3, device="cpu")
    out = capsys.readouterr().out
    assert budget is resnet.BUDGETS["smoke"] and device.type == "cpu"
    assert f"budget: smoke ({resnet.BUDGETS['smoke'].description}); seed 3" in out
    mnist.setup("smoke", device="cpu")
    assert "4,096 MNIST training images" in capsys.readouterr().out


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "nlcourse", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_command_line_lists_the_labs():
    proc = _cli("train", "--help")
    assert proc.returncode == 0
    for name in LABS:
        assert name in proc.stdout
    assert _cli("sweep", "spacetime", "--help").stdout.count("none,space,time,spacetime") >= 1


def test_command_line_rejects_bad_input():
    proc = _cli("train", "mnist", "--model", "softmax")
    assert proc.returncode == 2
    assert "invalid choice: 'softmax'" in proc.stderr and "embedded_gaussian" in proc.stderr
    proc = _cli("train", "cifar")
    assert proc.returncode == 2 and "invalid choice: 'cifar'" in proc.stderr
    proc = _cli("sweep", "mnist", "--budget", "huge")
    assert proc.returncode == 2 and "invalid choice: 'huge'" in proc.stderr
    proc = _cli("train", "mnist", "--precision", "fp64")
    assert proc.returncode == 2 and "invalid choice: 'fp64'" in proc.stderr and "bf16" in proc.stderr


DATA = os.environ.get("NLCOURSE_DATA")


@pytest.mark.skipif(not DATA or not Path(DATA, "MNIST", "raw").is_dir(),
                    reason="full MNIST not available: set NLCOURSE_DATA to a folder with MNIST/raw/")
def test_command_line_smoke_run(tmp_path):
    out = tmp_path / "eg"
    proc = _cli("train", "mnist", "--model", "embedded_gaussian", "--budget", "smoke", "--out",
                str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "metrics.json").read_text())
    assert missing_fields(record) == []
    assert record["data_source"] == "mnist-subset"   # smoke never claims full MNIST
    assert record["n_train"] == 4096 and record["test_accuracy"] > 0.5
    assert "test accuracy" in proc.stdout and "a subset of MNIST" in proc.stdout
    assert record["command"].startswith("python -m nlcourse train mnist")
    assert record["precision"] == "float32" and record["compile"] is False   # the CPU defaults
    assert "$NLCOURSE_DATA/MNIST/raw" in record["data_description"]   # no path of this machine
    assert str(Path(DATA).resolve()) not in json.dumps(record)


def test_run_record_fields_are_the_documented_ones():
    assert RUN_RECORD_FIELDS[:3] == ("lab", "model", "command")
    assert len(set(RUN_RECORD_FIELDS)) == len(RUN_RECORD_FIELDS) == 17


def test_every_lab_module_offers_the_same_calls():
    import importlib

    calls = ("setup", "run", "sweep", "results", "committed", "trained", "load", "budget")
    for name, lab in LABS.items():
        module = importlib.import_module(f"nlcourse.labs.{name}")
        assert module.LAB is lab and all(c in module.__all__ for c in calls), name
        for call in calls:
            assert getattr(module, call) == getattr(lab, call), (name, call)
        assert module.budget("smoke") is lab.budgets["smoke"]


def test_trained_reuses_a_saved_model_only_for_the_same_settings(tmp_path, capsys):
    data = tiny_data()
    net, _ = mnist.trained("none", SMOKE, 0, runs=tmp_path, data=data, progress=False, log=None)
    again, record = mnist.trained("none", SMOKE, 0, runs=tmp_path, data=data, progress=False,
                                  log=None)
    assert "loading the model trained earlier" in capsys.readouterr().out
    assert record["from_committed"] is False     # the reader's own earlier run, not the course's
    x = data.test_images[:4]
    assert torch.equal(net.eval()(x), again(x))
    other = dataclasses.replace(SMOKE, epochs=2)
    mnist.trained("none", other, 0, runs=tmp_path, data=data, progress=False, log=None)
    assert "trained on other settings or data: not used" in capsys.readouterr().out


def test_read_back_tells_committed_runs_from_a_new_one():
    """A sweep at the committed budget reads the files back; a page must not call them "your run"."""
    from nlcourse.labs import read_back
    committed = [{"model": m, "seed": s, "date": "2026-11-22T02:52:49+0000"}
                 for m in ("none", "res3") for s in (0, 1)]
    assert read_back(committed[:3], committed)
    assert not read_back(committed[:3] + [dict(committed[3], date="2026-12-01T03:00:00+0000")],
                         committed)
    assert not read_back([], committed) and not read_back(committed, [])
