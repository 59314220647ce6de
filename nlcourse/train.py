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

from . import distributed
from .budget import Budget, get_budget
from .data import MNISTData, load_mnist
from .models import MNISTNet

__all__ = ["set_seed", "pick_device", "precision", "evaluate", "fit", "batch_plan", "train_mnist",
           "load_checkpoint", "load_or_train", "count_parameters"]


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


def precision(device: torch.device, amp: bool = True) -> str:
    """The arithmetic :func:`fit` trains in, as recorded in the metrics: float32 on the CPU,
    autocast to bf16 (or fp16 with a gradient scaler) on CUDA unless ``amp`` is off."""
    if not amp or device.type != "cuda":
        return "float32"
    return "bf16 autocast" if torch.cuda.is_bf16_supported() else "fp16 autocast, GradScaler"


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _sampled_batches(sampler, epoch: int, batch_size: int):
    """This rank's batches for one epoch: the DistributedSampler reshuffles with the epoch number,
    and pads so that every rank takes the same number of steps (DDP needs that)."""
    sampler.set_epoch(epoch)
    order = torch.tensor(list(sampler))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def batch_plan(budget: Budget, world_size: int = 1, scale_batch: bool = False) -> dict:
    """Batch sizes and learning rate for ``world_size`` processes.

    By default the budget's batch is the *global* batch, split across the processes, so K
    processes follow the same optimisation as one (BatchNorm statistics aside, which each process
    takes over its own share). With ``scale_batch`` each process keeps the budget's batch, the
    global batch grows K times and the learning rate with it (the linear scaling rule of Goyal et
    al., 2017): fewer steps per epoch, the usual choice when K GPUs should finish K times sooner.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if scale_batch:
        per_process, lr = budget.batch_size, budget.lr * world_size
    else:
        if budget.batch_size % world_size:
            raise ValueError(f"the {budget.name} budget's batch of {budget.batch_size} cannot be "
                             f"split evenly over {world_size} processes; use a number of processes "
                             f"that divides it, or scale_batch=True (--scale-batch)")
        per_process, lr = budget.batch_size // world_size, budget.lr
    return {"world_size": world_size, "per_process_batch_size": per_process,
            "global_batch_size": per_process * world_size, "lr": lr, "scale_batch": scale_batch}


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
    # Under torchrun each rank takes every world_size-th example and the sums are added up.
    mine = distributed.shard(torch.arange(len(labels)), distributed.current())
    for start in range(0, len(mine), batch_size):
        idx = mine[start:start + batch_size]
        x, y = images[idx].to(device), labels[idx].to(device)
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    loss_sum, correct = distributed.all_reduce_sum([loss_sum, correct], device)
    return {"loss": loss_sum / labels.numel(), "accuracy": correct / labels.numel()}


def _optimizer(model: nn.Module, budget: Budget, steps: int, lr: float):
    if budget.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=budget.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=budget.weight_decay)
    if budget.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    else:
        sched = None
    return opt, sched


def fit(model: nn.Module, data: MNISTData, budget: Budget | str | None = None,
        device: torch.device | str | None = None, seed: int = 0, progress: bool = True,
        amp: bool = True, log=print, scale_batch: bool = False, epoch_hook=None) -> list[dict]:
    """Train ``model`` on ``data`` under ``budget``; evaluate on the test split after each epoch.

    Returns the history, one dict per epoch: ``epoch``, ``train_loss``, ``test_loss``,
    ``test_accuracy``, ``seconds`` (training time of that epoch, evaluation excluded).

    Under ``torchrun`` (a process group initialised by :mod:`nlcourse.distributed`) the model is
    wrapped in DistributedDataParallel, a DistributedSampler gives each process its share of every
    epoch, losses and accuracies are summed over the processes, and only rank 0 logs and shows
    progress. ``scale_batch``: see :func:`batch_plan`. ``epoch_hook(epoch)``, if given, is called at
    the start of every epoch (1-based), for example :class:`nlcourse.efficient.progressive`.
    """
    from tqdm.auto import tqdm

    budget = get_budget(budget)
    device = pick_device(device)
    ctx = distributed.current()
    plan = batch_plan(budget, ctx.world_size, scale_batch)
    batch_size = plan["per_process_batch_size"]
    # One process: the same stream as always. Several: the same initial weights (the model was
    # built before this call, and DDP broadcasts rank 0's anyway), but each rank its own dropout.
    set_seed(seed + ctx.rank)
    model.to(device).train()
    n = len(data.train_labels)
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data import DistributedSampler

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                      else None)
        sampler = DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank,
                                     shuffle=True, seed=seed)
        steps_per_epoch = -(-len(sampler) // batch_size)
    else:
        net, sampler = model, None
        steps_per_epoch = -(-n // batch_size)
    progress, log = progress and ctx.is_main, log if ctx.is_main else None
    opt, sched = _optimizer(model, budget, budget.epochs * steps_per_epoch, plan["lr"])
    autocast, scaler = _autocast(device, amp)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, budget.epochs + 1):
        if epoch_hook is not None:
            epoch_hook(epoch)
        start, loss_sum, seen = time.perf_counter(), 0.0, 0
        batches = (_batches(n, batch_size, generator) if sampler is None
                   else _sampled_batches(sampler, epoch, batch_size))
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{budget.epochs}",
                   disable=not progress, leave=False)
        for idx in bar:
            x = data.train_images[idx].to(device, non_blocking=True)
            y = data.train_labels[idx].to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(net(x), y)
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
            seen += len(idx)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        loss_sum, seen = distributed.all_reduce_sum([loss_sum, seen], device)
        distributed.broadcast_buffers(model)  # every rank evaluates rank 0's model
        test = evaluate(model, data.test_images, data.test_labels, device)
        history.append({"epoch": epoch, "train_loss": loss_sum / seen, "test_loss": test["loss"],
                        "test_accuracy": test["accuracy"], "seconds": seconds})
        if log:
            log(f"epoch {epoch}/{budget.epochs}: train loss {loss_sum / seen:.4f}, "
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
                progress: bool = True, log=print, command: str | None = None,
                scale_batch: bool = False, model: nn.Module | None = None,
                epoch_hook=None) -> dict:
    """Train :class:`~nlcourse.MNISTNet` and return its metrics; with ``out``, also write
    ``out/model.pt`` and ``out/metrics.json``.

    ``model``: a network to train instead of ``MNISTNet(mode)`` (built by the caller, after
    seeding; ``mode`` then only labels the metrics), for example one whose blocks were swapped for
    a cheaper variant; ``epoch_hook`` is passed to :func:`fit`.

    The metrics record where every number came from: budget, data source and sizes, device,
    torch version, seed, git commit, and the number of processes. Under ``torchrun`` every rank
    trains and only rank 0 writes; ``rank_parameter_digests`` holds each rank's final weights'
    SHA-256, which must all be equal.
    """
    budget = get_budget(budget)
    device = pick_device(device)
    ctx = distributed.current()
    log = log if ctx.is_main else None
    if data is None:
        if ctx.distributed and not ctx.is_main:
            torch.distributed.barrier()  # rank 0 downloads, if anything is missing, alone
        data = load_mnist()
        if ctx.distributed and ctx.is_main:
            torch.distributed.barrier()
    data = data.subset(budget.train_size, budget.test_size, seed=0)
    plan = batch_plan(budget, ctx.world_size, scale_batch)
    if log:
        log(f"budget {budget.name}: {budget.description}")
        log(f"data: {data.describe()}")
        log(f"device: {device}" + (f", {ctx.world_size} processes ({ctx.backend}), global batch "
                                   f"{plan['global_batch_size']}, learning rate {plan['lr']:g}"
                                   if ctx.distributed else ""))
    if model is None:
        set_seed(seed)
        model = MNISTNet(mode)
    history = fit(model, data, budget, device=device, seed=seed, progress=progress, log=log,
                  scale_batch=scale_batch, epoch_hook=epoch_hook)
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
        "precision": precision(device),
        "seed": seed,
        "world_size": ctx.world_size,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "history": history,
    }
    if ctx.distributed:
        metrics.update(plan, backend=ctx.backend,
                       rank_parameter_digests=distributed.gather_objects(
                           distributed.parameter_digest(model)))
    if out is not None and ctx.is_main:
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
