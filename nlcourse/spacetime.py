"""The space-time experiment: the video network with no block and with each of the paper's three
block variants (Table 2d), trained on moving-digit clips under one budget, one results file per
(variant, seed), resumable like the MNIST sweep (``nlcourse.experiments``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .budget import SPACETIME, Budget, get_budget

__all__ = ["VIDEO_MODELS", "clip_data", "train_video", "run_video_sweep"]

VIDEO_MODELS = ("none", "space", "time", "spacetime")  # "none": the network without a block


def clip_data(budget: Budget | str | None = None, mnist=None, seed: int = 0):
    """The budget's clips (always the same ones for a budget: the data seed is fixed)."""
    from .clips import moving_digit_clips
    from .data import load_mnist

    settings = SPACETIME[get_budget(budget).name]
    mnist = mnist if mnist is not None else load_mnist()
    return moving_digit_clips(mnist, settings.train_size, settings.test_size, seed=seed)


def train_video(variant: str | None, budget: Budget | str | None = None, seed: int = 0,
                data=None, device=None, progress: bool = True, log=print,
                mode: str = "embedded_gaussian", command: str | None = None):
    """Train :class:`~nlcourse.models.VideoNet` with ``variant`` (``None``/"none": no block) under
    the budget's space-time settings. Returns (model in eval mode, metrics with provenance)."""
    from .bench import count_flops
    from .models import VideoNet
    from .train import count_parameters, fit, git_commit, pick_device, set_seed

    budget = get_budget(budget)
    settings = SPACETIME[budget.name]
    device = pick_device(device)
    variant = None if variant in (None, "none") else variant
    data = data if data is not None else clip_data(budget)
    set_seed(seed)
    model = VideoNet(variant, mode=mode)
    history = fit(model, data, settings, device=device, seed=seed, progress=progress, log=log)
    model.eval()
    clip = data.test_images[:1].to(device)
    with torch.no_grad():
        flops = count_flops(lambda: model(clip))
    metrics = {
        "model": variant or "none",
        "mode": mode,
        "test_accuracy": history[-1]["test_accuracy"],
        "epochs": settings.epochs,
        "train_seconds": sum(h["seconds"] for h in history),
        "params": count_parameters(model),
        "flops_per_clip": flops,
        "budget": budget.name,
        "budget_settings": settings.as_dict(),
        "data_source": data.data_source,
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
    return model, metrics


def run_video_sweep(models=VIDEO_MODELS, seeds=(0, 1, 2), budget: str | None = None,
                    out_dir: str | Path = "notebooks/results/spacetime/quick", device=None,
                    progress: bool = True, log=print) -> list[dict]:
    """Train every (model, seed) whose results file is missing; return all results in the folder."""
    from .experiments import resumable_sweep

    budget = get_budget(budget)

    def train_one(model, seed, data, command):
        return train_video(model, budget=budget, seed=seed, data=data, device=device,
                           progress=progress, log=None, command=command)[1]
    return resumable_sweep(models, seeds, budget, out_dir, "video-sweep",
                           lambda: clip_data(budget), train_one, log, key="model",
                           order=VIDEO_MODELS)
