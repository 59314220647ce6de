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


# The loop's switches: precision, compile, and one sync per epoch.

def test_precision_switch_is_checked_and_recorded():
    from nlcourse.train import pick_precision, precision

    assert pick_precision("cpu") == "fp32" and precision("cpu") == "float32"
    assert precision("cpu", "bf16") == "bf16 autocast"
    assert precision("cpu", "fp16") == "fp16 autocast, GradScaler"
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16', 'fp16'.*'fp64'"):
        pick_precision("cpu", "fp64")


# fp16 on a CPU is emulated (45 s here): make test runs it, make check does not.
@pytest.mark.parametrize("choice", ["bf16", pytest.param("fp16", marks=pytest.mark.slow)])
def test_fit_trains_under_autocast(choice):
    """bf16 and fp16 (with its gradient scaler) train on the CPU too, and learn."""
    set_seed(0)
    budget = Budget("smoke", epochs=2, batch_size=32)
    history = fit(MNISTNet("embedded_gaussian"), tiny_data(), budget, device="cpu",
                  progress=False, log=None, precision=choice)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_fit_reads_the_loss_once_per_epoch(monkeypatch):
    """The host waits for the device once an epoch, not once a step: Tensor.item is called once
    per epoch (the epoch's summed loss), whatever the number of steps."""
    calls = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: calls.append(1) or item(self))
    budget = Budget("smoke", epochs=2, batch_size=16)   # 16 steps an epoch
    fit(MNISTNet(None), tiny_data(), budget, device="cpu", progress=False, log=None)
    assert len(calls) == 2


def test_fit_draws_the_same_batches_as_before():
    """On the CPU the permutation is the one earlier versions drew (the CPU generator's stream),
    so a committed quick run's batch order is what this loop would draw."""
    from nlcourse.train import _batches

    gen = torch.Generator().manual_seed(3)
    order = torch.cat(list(_batches(100, 32, gen)))
    assert torch.equal(order, torch.randperm(100, generator=torch.Generator().manual_seed(3)))


def test_compile_is_checked():
    with pytest.raises(TypeError, match="compile must be True, False or a torch.compile mode"):
        fit(MNISTNet(None), tiny_data(), SMOKE, progress=False, log=None, compile=1)


@pytest.mark.slow
def test_fit_trains_through_torch_compile():
    """compile=True trains through torch.compile (on the CPU that needs a C++ compiler). Dropout
    draws other random numbers when compiled, so the runs are compared by what they learn."""
    from nlcourse.bench import compiler_missing

    if compiler_missing("cpu"):
        pytest.skip(f"torch.compile cannot run here: {compiler_missing('cpu')}")
    budget = Budget("smoke", epochs=2, batch_size=64)
    set_seed(0)
    net = MNISTNet(None)
    history = fit(net, tiny_data(), budget, device="cpu", progress=False, log=None, compile=True)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    x = tiny_data().test_images[:16]
    with torch.no_grad():   # the weights it trained are the model's own
        torch.testing.assert_close(torch.compile(net.eval())(x), net.eval()(x),
                                   rtol=1e-4, atol=1e-5)


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_epoch():
    from nlcourse.train import TrainingDiverged

    data = tiny_data(64, 32)
    data.train_images[5, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"training diverged in epoch 1 of 1: the training "
                                               r"loss became nan .*try a lower learning rate"):
        fit(MNISTNet("embedded_gaussian"), data, SMOKE, device="cpu", progress=False, log=None)


@pytest.mark.parametrize("seed, error, message", [
    (-1, ValueError, "seed must be from 0 to 2\\*\\*32 - 1"),
    (2 ** 32, ValueError, "seed must be from 0 to 2\\*\\*32 - 1"),
    (1.5, TypeError, "seed must be an int"),
    ("3", TypeError, "seed must be an int"),
    (True, TypeError, "seed must be an int"),
])
def test_seeds_outside_numpys_range_are_refused_by_name(seed, error, message):
    with pytest.raises(error, match=message):
        set_seed(seed)


@pytest.mark.parametrize("device, message", [
    ("quantum", "device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got 'quantum'"),
    ("meta", "device must be 'cpu'"),
    ("cuda:99", "cuda:99"),
])
def test_devices_this_machine_lacks_are_refused_by_name(device, message):
    from nlcourse.train import pick_device

    with pytest.raises(ValueError, match=message):
        pick_device(device)
    assert pick_device("cpu") == torch.device("cpu")


def test_lab_2s_loop_written_out_gives_fits_weights():
    """The training loop lab 2 writes out (its cell tagged training-loop) is fit's: the same
    seed gives the same weights, step for step."""
    import jupytext
    from pathlib import Path

    from nlcourse.train import make_optimizer

    lab = Path(__file__).resolve().parents[1] / "notebooks" / "02_train_mnist.md"
    (cell,) = [c for c in jupytext.read(lab).cells if "training-loop" in c.metadata.get("tags", [])]
    import math
    import time

    import torch.nn.functional as F

    namespace = {"math": math, "time": time, "torch": torch, "F": F,
                 "make_optimizer": make_optimizer, "set_seed": set_seed}
    exec(cell.source, namespace)
    budget = Budget("smoke", epochs=2, batch_size=32)
    nets = []
    for trainer in (lambda net, data: namespace["train"](net, data, budget, seed=4),
                    lambda net, data: fit(net, data, budget, seed=4, progress=False, log=None)):
        set_seed(4)
        net = MNISTNet("embedded_gaussian")
        history = trainer(net, tiny_data(96, 64))
        nets.append((net, history))
    (loop, loop_history), (fitted, fit_history) = nets
    for (name, a), b in zip(loop.state_dict().items(), fitted.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    assert [h["test_accuracy"] for h in loop_history] == [h["test_accuracy"] for h in fit_history]


def test_ignored_targets_count_in_neither_loss_nor_accuracy():
    from nlcourse.train import IGNORE

    class Cells(torch.nn.Module):   # predicts class 1 at every cell of a 2 x 2 grid
        def forward(self, x):
            return torch.stack([torch.zeros(len(x), 2, 2), torch.ones(len(x), 2, 2)], 1)

    labels = torch.tensor([[[1, IGNORE], [0, IGNORE]]])
    scores = evaluate(Cells(), torch.zeros(1, 1, 4, 4), labels, device=torch.device("cpu"))
    assert scores["accuracy"] == 0.5                       # one right of the two with a target
    assert abs(scores["loss"] - (0.3133 + 1.3133) / 2) < 1e-3


def test_fit_denoises_with_the_mean_squared_error_and_reports_psnr():
    from nlcourse.data import NoisyImages

    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(64, 1, 8, 8, generator=gen)
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=gen)
    data = NoisyImages(noisy[:48], clean[:48], noisy[48:], clean[48:], source="test",
                       digits="random", sigma=0.2, size=8)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    history = fit(net, data, Budget("smoke", epochs=2, batch_size=16), device="cpu",
                  progress=False, log=None, objective="denoise")
    assert set(history[0]) == {"epoch", "train_loss", "test_loss", "test_psnr", "seconds"}
    mse = torch.nn.functional.mse_loss(net(noisy[48:]), clean[48:], reduction="none")
    expected = (10 * torch.log10(1 / mse.flatten(1).mean(1))).mean().item()
    assert abs(history[-1]["test_psnr"] - expected) < 1e-4
    with pytest.raises(ValueError, match="objective must be one of 'classify', 'denoise'"):
        fit(net, data, SMOKE, progress=False, log=None, objective="regress")
