"""The ResNet experiment: a small torchvision-style ResNet on Fashion-MNIST without a block and with
one non-local block in each stage in turn (the paper's Table 2b at small scale), one results file
per (model, seed), resumable like the MNIST sweep (``nlcourse.experiments``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .budget import FASHION, Budget, get_budget

__all__ = ["RESNET_MODELS", "build_resnet", "fashion_data", "train_resnet", "run_resnet_sweep"]

# "none": the ResNet without a block; "resK": one block in stage K, before its last residual block.
RESNET_MODELS = ("none", "res2", "res3", "res4", "res5")


def build_resnet(model: str = "none", mode: str = "embedded_gaussian", width: int = 8,
                 depth: int = 2, **block_kwargs):
    """:class:`~nlcourse.backbones.SmallResNet` with one block right before the last residual
    block of stage K for ``model="resK"`` (as the paper adds its single block, Sec. 5), or none."""
    from .backbones import SmallResNet, add_nonlocal

    if model not in RESNET_MODELS:
        raise ValueError(f"model must be one of {', '.join(map(repr, RESNET_MODELS))}; "
                         f"got {model!r}")
    net = SmallResNet(width=width, depth=depth)
    if model != "none":
        add_nonlocal(net, stages=(int(model[3:]),), blocks=depth - 1 if depth > 1 else 1,
                     mode=mode, **block_kwargs)
    return net


def fashion_data(budget: Budget | str | None = None, data=None):
    """The budget's Fashion-MNIST split: a seeded subset of the training images (always the same
    one for a budget) and the budget's test images."""
    from .data import load_fashion_mnist

    settings = FASHION[get_budget(budget).name]
    data = data if data is not None else load_fashion_mnist()
    return data.subset(settings.train_size, settings.test_size, seed=0)


def train_resnet(model: str = "none", budget: Budget | str | None = None, seed: int = 0,
                 data=None, device=None, progress: bool = True, log=print,
                 mode: str = "embedded_gaussian", command: str | None = None):
    """Train :func:`build_resnet` (``model``) under the budget's Fashion-MNIST settings.
    Returns (model in eval mode, metrics with provenance)."""
    from .bench import count_flops
    from .train import count_parameters, fit, git_commit, pick_device, set_seed

    budget = get_budget(budget)
    settings = FASHION[budget.name]
    device = pick_device(device)
    data = fashion_data(budget, data)
    set_seed(seed)
    net = build_resnet(model, mode=mode)
    history = fit(net, data, settings, device=device, seed=seed, progress=progress, log=log)
    net.eval()
    with torch.no_grad():
        flops = count_flops(lambda: net(data.test_images[:1].to(device)))
    metrics = {
        "model": model,
        "mode": mode,
        "test_accuracy": history[-1]["test_accuracy"],
        "epochs": settings.epochs,
        "train_seconds": sum(h["seconds"] for h in history),
        "params": count_parameters(net),
        "flops_per_image": flops,
        "budget": budget.name,
        "budget_settings": settings.as_dict(),
        "data_source": data.source,
        "data_description": data.describe(),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": seed,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "history": history,
    }
    return net, metrics


def run_resnet_sweep(models=RESNET_MODELS, seeds=(0, 1, 2), budget: str | None = None,
                     out_dir: str | Path = "notebooks/results/resnet/quick", device=None,
                     progress: bool = True, log=print) -> list[dict]:
    """Train every (model, seed) whose results file is missing; return all results in the folder."""
    from .data import load_fashion_mnist
    from .experiments import resumable_sweep

    budget = get_budget(budget)

    def train_one(model, seed, data, command):
        return train_resnet(model, budget=budget, seed=seed, data=data, device=device,
                            progress=progress, log=None, command=command)[1]
    return resumable_sweep(models, seeds, budget, out_dir, "resnet-sweep",
                           lambda: fashion_data(budget, load_fashion_mnist()), train_one, log,
                           key="model", order=RESNET_MODELS)
