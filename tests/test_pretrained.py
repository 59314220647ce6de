"""The shipped weights: every model loads offline, fast, checked by hash; a damaged file or an
unknown model is refused with a message that says what is wrong."""

import json
import shutil
import time

import pytest
import torch

from nlcourse import shipped as pre
from nlcourse.models import MNISTNet
from nlcourse.provenance import missing_fields


@pytest.mark.parametrize("model", pre.MODELS)
def test_every_model_loads_quickly_with_its_record(model):
    start = time.perf_counter()
    net = pre.pretrained(model)
    assert time.perf_counter() - start < 1.0
    assert isinstance(net, MNISTNet) and not net.training
    assert net.mode == (None if model == "none" else model)
    record = pre.pretrained_record(model)
    assert not missing_fields(record), missing_fields(record)
    assert record["model"] == model and record["lab"] == "mnist"
    assert record["n_train"] == 60000 and record["test_accuracy"] > 0.98
    with torch.no_grad():
        assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_the_shipped_weights_come_from_the_full_budget():
    """The pages call them the full recipe's networks; a quick or smoke run shipped by mistake
    would make every map sentence rest on another training."""
    for model in pre.MODELS:
        record = pre.pretrained_record(model)
        assert record["budget"] == "full" and record["budget_settings"]["name"] == "full", model
        assert record["data_source"] == "mnist" and record["n_test"] == 10_000, model
        assert not record["commit"].endswith("-dirty"), model


def test_none_is_the_network_without_blocks():
    assert len(pre.pretrained(None).blocks) == 0


def test_unknown_model_is_refused_by_name():
    with pytest.raises(ValueError, match="model must be one of none, gaussian"):
        pre.pretrained("embedded")


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(pre.WEIGHTS, tmp_path / "weights")
    monkeypatch.setattr(pre, "WEIGHTS", tmp_path / "weights")
    path = tmp_path / "weights" / "mnist_dot_product.pt"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="does not match its SHA-256"):
        pre.pretrained("dot_product")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        pre.pretrained("dot_product")


def test_ship_round_trip(tmp_path):
    """ship() writes what pretrained() reads, and refuses a run of another model."""
    from nlcourse.train import save_checkpoint
    torch.manual_seed(0)
    net = MNISTNet("gaussian")
    run = tmp_path / "run"
    save_checkpoint(run / "model.pt", net, lab="mnist", model="gaussian")
    record = dict(pre.pretrained_record("gaussian"), history={"loss": [1.0]})
    (run / "metrics.json").write_text(json.dumps(record))
    out = pre.ship({"gaussian": run}, out=tmp_path / "weights")
    manifest = json.loads((out / "manifest.json").read_text())
    assert "history" not in manifest["gaussian"]["record"]
    with pytest.raises(ValueError, match="not mnist 'dot_product'"):
        pre.ship({"dot_product": run}, out=tmp_path / "other")


def test_manifest_names_no_path_of_the_machine_that_trained():
    text = (pre.WEIGHTS / "manifest.json").read_text()
    for machine_path in ("/work/", "/tmp/", "/root/", "/home/"):
        assert machine_path not in text, machine_path


def test_the_shipped_digits_are_full_mnists_first_test_digits():
    digits = pre.shipped_digits()
    assert digits.images.shape == (300, 1, 28, 28) and digits.labels.shape == (300,)
    assert 0 <= digits.images.min() and digits.images.max() <= 1
    assert set(digits.labels.tolist()) == set(range(10))
    assert digits.labels[:4].tolist() == [7, 2, 1, 0]     # MNIST's first test digits
    import os
    from pathlib import Path

    from nlcourse.data import load_mnist

    shared = os.environ.get("NLCOURSE_DATA")
    if shared and Path(shared, "MNIST", "raw").is_dir():
        full = load_mnist(download=False)
        assert torch.equal(digits.images, full.test_images[:300])
        assert torch.equal(digits.labels, full.test_labels[:300])


def test_damaged_shipped_digits_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(pre.WEIGHTS, folder)
    (folder / "mnist_test_digits.npz").write_bytes(b"damaged")
    monkeypatch.setattr(pre, "WEIGHTS", folder)
    with pytest.raises(RuntimeError, match="does not match its SHA-256: reinstall nlcourse"):
        pre.shipped_digits()
