"""Training and evaluation for the labs: devices, seeds, mixed precision, progress, metrics files.

The data stays in memory as tensors (MNIST is 47 MB) and is batched by index, which is faster on
2 CPU cores than a DataLoader with per-image transforms. ``train_mnist`` is what the command line
``python -m nlcourse train`` runs; ``fit`` and ``evaluate`` are the pieces the notebooks reuse.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .budget import Budget, get_budget
from .data import MNISTData, load_mnist
from .models import MNISTNet

__all__ = ["set_seed", "pick_device", "evaluate", "fit", "train_mnist", "load_checkpoint",
           "load_or_train", "count_parameters"]


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str | torch.device | None = None, verbose: bool = False) -> torch.device:
    """``device`` if given, else CUDA when present, else the CPU (with a note when verbose)."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        chosen = torch.device("cuda")
        if verbose:
            print(f"Using CUDA: {torch.cuda.get_device_name(chosen)}")
        return chosen
    if verbose:
        print("No GPU found: running on the CPU. The smoke and quick budgets are sized for this; "
              "the full budget is meant for a GPU (for example Colab: Runtime > Change runtime type).")
    return torch.device("cpu")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA where supported, fp16 otherwise; nothing on the CPU."""
    if not enabled or device.type != "cuda":
        return nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


@torch.no_grad()
def evaluate(model: nn.Module, images: Tensor, labels: Tensor, device: torch.device | None = None,
             batch_size: int = 500) -> dict:
    """Mean cross-entropy and accuracy (a fraction in [0, 1]) over the given images.

    Works for one label per image (``labels`` (n,)) and for dense labels (``labels`` (n, h, w),
    one per output cell), where accuracy is the fraction of cells right.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for idx in _batches(len(labels), batch_size, None):
        x, y = images[idx].to(device), labels[idx].to(device)
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return {"loss": loss_sum / labels.numel(), "accuracy": correct / labels.numel()}


def _optimizer(model: nn.Module, budget: Budget, steps: int):
    if budget.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    if budget.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=budget.lr, total_steps=steps)
    else:
        sched = None
    return opt, sched


def fit(model: nn.Module, data: MNISTData, budget: Budget | str | None = None,
        device: torch.device | str | None = None, seed: int = 0, progress: bool = True,
        amp: bool = True, log=print) -> list[dict]:
    """Train ``model`` on ``data`` under ``budget``; evaluate on the test split after each epoch.

    Returns the history, one dict per epoch: ``epoch``, ``train_loss``, ``test_loss``,
    ``test_accuracy``, ``seconds`` (training time of that epoch, evaluation excluded).
    """
    from tqdm.auto import tqdm

    budget = get_budget(budget)
    device = pick_device(device)
    set_seed(seed)
    model.to(device).train()
    n = len(data.train_labels)
    steps = budget.epochs * -(-n // budget.batch_size)
    opt, sched = _optimizer(model, budget, steps)
    autocast, scaler = _autocast(device, amp)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, budget.epochs + 1):
        start, loss_sum = time.perf_counter(), 0.0
        bar = tqdm(_batches(n, budget.batch_size, generator), total=-(-n // budget.batch_size),
                   desc=f"epoch {epoch}/{budget.epochs}", disable=not progress, leave=False)
        for idx in bar:
            x = data.train_images[idx].to(device, non_blocking=True)
            y = data.train_labels[idx].to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            if sched is not None:
                sched.step()
            loss_sum += loss.item() * len(idx)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        test = evaluate(model, data.test_images, data.test_labels, device)
        history.append({"epoch": epoch, "train_loss": loss_sum / n, "test_loss": test["loss"],
                        "test_accuracy": test["accuracy"], "seconds": seconds})
        if log:
            log(f"epoch {epoch}/{budget.epochs}: train loss {loss_sum / n:.4f}, "
                f"test accuracy {test['accuracy']:.4f} ({seconds:.1f} s)")
    return history


def git_commit() -> str | None:
    """HEAD of the repository this package lives in, with "-dirty" if the package has uncommitted
    changes; None outside a git checkout (an installed copy)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=here, timeout=5).stdout.strip()
        if len(head) != 40:  # not a checkout, or no commit yet
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(here)],
                               capture_output=True, text=True, cwd=here, timeout=5).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def train_mnist(mode: str | None = "embedded_gaussian", budget: Budget | str | None = None,
                seed: int = 0, out: str | Path | None = None,
                device: torch.device | str | None = None, data: MNISTData | None = None,
                progress: bool = True, log=print, command: str | None = None) -> dict:
    """Train :class:`~nlcourse.MNISTNet` and return its metrics; with ``out``, also write
    ``out/model.pt`` and ``out/metrics.json``.

    The metrics record where every number came from: budget, data source and sizes, device,
    torch version, seed and git commit.
    """
    budget = get_budget(budget)
    device = pick_device(device)
    data = data if data is not None else load_mnist()
    data = data.subset(budget.train_size, budget.test_size, seed=0)
    if log:
        log(f"budget {budget.name}: {budget.description}")
        log(f"data: {data.describe()}")
        log(f"device: {device}")
    set_seed(seed)
    model = MNISTNet(mode)
    history = fit(model, data, budget, device=device, seed=seed, progress=progress, log=log)
    metrics = {
        "mode": mode if mode is not None else "none",
        "test_accuracy": history[-1]["test_accuracy"],
        "epochs": budget.epochs,
        "train_seconds": sum(h["seconds"] for h in history),
        "params": count_parameters(model),
        "budget": budget.name,
        "budget_settings": budget.as_dict(),
        "data_source": data.source,
        "data_description": data.describe(),
        "n_train": len(data.train_labels),
        "n_test": len(data.test_labels),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": seed,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "history": history,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"mode": metrics["mode"], "state_dict": model.state_dict()}, out / "model.pt")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> MNISTNet:
    """Rebuild the :class:`~nlcourse.MNISTNet` saved by :func:`train_mnist` (``weights_only`` load)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train one first, for example "
                                f"'python -m nlcourse train --out {path.parent}'")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    mode = checkpoint["mode"]
    model = MNISTNet(None if mode == "none" else mode)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def load_or_train(mode: str | None = "embedded_gaussian", budget: Budget | str | None = None,
                  seed: int = 0, runs_dir: str | Path = "runs", device=None, data=None,
                  progress: bool = True) -> tuple[MNISTNet, dict]:
    """The model trained with these settings: loaded from ``runs_dir`` when an earlier run (another
    lab, say) saved it, trained and saved otherwise. Returns (model in eval mode, metrics)."""
    budget = get_budget(budget)
    out = Path(runs_dir) / f"{mode or 'none'}-{budget.name}-seed{seed}"
    if (out / "model.pt").exists() and (out / "metrics.json").exists():
        print(f"loading the model trained earlier from {out}")
        return load_checkpoint(out), json.loads((out / "metrics.json").read_text())
    metrics = train_mnist(mode, budget=budget, seed=seed, out=out, device=device, data=data,
                          progress=progress)
    return load_checkpoint(out), metrics
