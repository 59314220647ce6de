"""The generic training loop and checkpoints, on tiny stand-in data (no MNIST needed)."""

from __future__ import annotations

import pytest
import torch

from nlcourse import MNISTNet
from nlcourse.budget import Budget
from nlcourse.data import SAMPLE, MNISTData
from nlcourse.labs import mnist
from nlcourse.train import evaluate, fit, load_checkpoint, save_checkpoint, set_seed

SMOKE = mnist.BUDGETS["smoke"]


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


def test_fit_learns_and_reports_every_epoch():
    set_seed(0)
    net = MNISTNet(None)
    budget = Budget("smoke", epochs=3, batch_size=32)
    history = fit(net, tiny_data(), budget, device="cpu", progress=False, log=None)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "train_loss", "test_loss", "test_accuracy", "seconds"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_fit_wants_a_resolved_budget():
    with pytest.raises(TypeError, match="budget must be a resolved nlcourse.budget.Budget"):
        fit(MNISTNet(None), tiny_data(), "smoke", progress=False, log=None)


def test_same_seed_same_result():
    runs = []
    for _ in range(2):
        set_seed(5)
        runs.append(fit(MNISTNet(None), tiny_data(), SMOKE, seed=5, progress=False, log=None))
    assert runs[0][-1]["train_loss"] == runs[1][-1]["train_loss"]


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    net = MNISTNet("dot_product").eval()
    save_checkpoint(tmp_path / "m.pt", net, lab="mnist", model="dot_product")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)   # plain tensors and strings
    assert raw["lab"] == "mnist" and raw["model"] == "dot_product"
    again = MNISTNet("dot_product")
    again.load_state_dict(load_checkpoint(tmp_path / "m.pt")["state_dict"])
    data = tiny_data()
    assert evaluate(again, data.test_images, data.test_labels) == evaluate(
        net, data.test_images, data.test_labels)


def test_missing_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*python -m nlcourse train"):
        load_checkpoint(tmp_path / "model.pt")
