"""The generic training loop: devices, seeds, mixed precision, progress, checkpoints.

It knows no data set and no lab: :func:`fit` trains any network on any data object that holds
``train_images``/``train_labels``/``test_images``/``test_labels`` tensors, under a resolved
:class:`~nlcourse.budget.Budget`. The data stays in memory as tensors (MNIST is 47 MB) and is
batched by index, which is faster on 2 CPU cores than a DataLoader with per-image transforms.
The labs (``nlcourse.labs``) build the networks and the data, and write the results.
"""

from __future__ import annotations

import math
import pickle
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from . import distributed
from .budget import Budget

__all__ = ["set_seed", "check_seed", "pick_device", "PRECISIONS", "pick_precision", "precision",
           "OBJECTIVES", "IGNORE", "check_objective", "describe_score", "evaluate",
           "make_optimizer", "fit", "TrainingDiverged", "batch_plan", "CheckpointError",
           "save_checkpoint", "load_checkpoint", "load_weights"]

#: Seeds run from 0 to 2**32 - 1: NumPy's generator takes no other.
SEED_LIMIT = 2 ** 32


def check_seed(seed, argument: str = "seed") -> int:
    """``seed`` if it is a whole number NumPy, torch and Python can all be seeded with."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{argument} must be an int from 0 to 2**32 - 1, got "
                        f"{type(seed).__name__} {seed!r}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{argument} must be from 0 to 2**32 - 1 (NumPy's range), got {seed}")
    return int(seed)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str | torch.device | None = None, verbose: bool = False) -> torch.device:
    """``device`` if given (checked: a name PyTorch knows, on hardware this machine has), else
    CUDA when present, else the CPU (with a note when verbose)."""
    if device is not None:
        return _checked_device(device)
    if torch.cuda.is_available():
        chosen = torch.device("cuda")
        if verbose:
            print(f"Using CUDA: {torch.cuda.get_device_name(chosen)}")
        return chosen
    if verbose:
        print("No GPU found: running on the CPU. The smoke and quick budgets are sized for this; "
              "the full budget is meant for a GPU (for example Colab: Runtime > Change runtime type).")
    return torch.device("cpu")


def _checked_device(device) -> torch.device:
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        chosen = None
    if chosen is None or chosen.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(chosen)!r}: this machine has no CUDA GPU that PyTorch "
                             f"can use; use 'cpu' (or leave the device out)")
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"device {str(chosen)!r}: this machine has {count} CUDA GPU(s), "
                             f"cuda:0 to cuda:{count - 1}")
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps': this machine has no Apple GPU that PyTorch can use")
    return chosen


#: The arithmetic :func:`fit` can train in (``--precision``).
PRECISIONS = ("fp32", "bf16", "fp16")
_PRECISION_RECORD = {"fp32": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast, GradScaler"}


def pick_precision(device: torch.device | str, precision: str | None = None) -> str:
    """``precision`` checked against the device, or the default for it: float32 on the CPU (as
    every committed CPU run records), bf16 on a CUDA GPU that has it, fp16 (with a
    gradient scaler) on an older one."""
    device = torch.device(device)
    if precision is None:
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))} (or None "
                         f"for the device's default); got {precision!r}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision='bf16': {torch.cuda.get_device_name(device)} has no bfloat16; "
                         f"use 'fp16' or 'fp32'")
    return precision


def precision(device: torch.device | str, choice: str | None = None) -> str:
    """The arithmetic :func:`fit` trains in, as the run record writes it: ``float32``,
    ``bf16 autocast`` or ``fp16 autocast, GradScaler`` (see :func:`pick_precision`)."""
    return _PRECISION_RECORD[pick_precision(device, choice)]


def _autocast(device: torch.device, choice: str):
    """The autocast context and gradient scaler for a :func:`pick_precision` choice."""
    if choice == "fp32":
        return nullcontext(), None
    if choice == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16), None
    return torch.autocast(device.type, dtype=torch.float16), torch.amp.GradScaler(device.type)


def _on_device(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor`` moved to the device once, when it fits (a quarter of the free GPU memory at
    most: MNIST's 60,000 images are 188 MB); otherwise left on the host, pinned, so that each
    batch's copy can overlap the computation."""
    if tensor.device == device or device.type != "cuda":
        return tensor.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    if tensor.numel() * tensor.element_size() <= free // 4:
        return tensor.to(device)
    return tensor.pin_memory()


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """Index batches of one epoch from a permutation drawn on the generator's device (the CPU
    stream is the one the committed CPU runs drew, so they repeat)."""
    order = torch.randperm(n, generator=generator, device=generator.device)
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


#: What :func:`fit` can train for, and the score :func:`evaluate` reports for it: ``classify``
#: (targets are classes; cross-entropy; ``accuracy``, the share of targets right) or ``denoise``
#: (targets are the clean images; mean squared error; ``psnr``, the mean over the images of
#: 10 log10(1 / their mean squared error), in dB, for images in [0, 1]).
OBJECTIVES = {"classify": "accuracy", "denoise": "psnr"}
#: The class target that counts in neither the loss nor the accuracy, PyTorch's ignore_index, as
#: the cells of a dense task that have nothing to report carry it.
IGNORE = -100


def check_objective(objective) -> str:
    """``objective`` if it is one of :data:`OBJECTIVES`, else a ValueError that lists them."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(map(repr, OBJECTIVES))}; got "
                         f"{objective!r}")
    return objective


def _loss(objective: str, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    if objective == "denoise":
        return F.mse_loss(output, target, reduction=reduction)
    return F.cross_entropy(output, target, ignore_index=IGNORE, reduction=reduction)


@torch.no_grad()
def evaluate(model: nn.Module, images: Tensor, labels: Tensor, device: torch.device | None = None,
             batch_size: int = 500, objective: str = "classify") -> dict:
    """The mean loss over the given images, and the objective's score (:data:`OBJECTIVES`):
    ``accuracy`` (a fraction in [0, 1]) or ``psnr`` (dB).

    Classifying, it works for one label per image (``labels`` (n,)) and for dense labels
    (``labels`` (n, h, w), one per output cell), where accuracy is the fraction of cells right;
    cells labelled :data:`IGNORE` count in neither. Denoising, ``labels`` are the clean images.
    """
    check_objective(objective)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Summed on the device and read once at the end: one host-device sync, not two per batch.
    # [loss, score, count]: per target (classify) or per image (denoise).
    sums = torch.zeros(3, dtype=torch.float32 if device.type == "mps" else torch.float64,
                       device=device)
    # Under torchrun each rank takes every world_size-th example and the sums are added up.
    mine = distributed.shard(torch.arange(len(labels), device=labels.device),
                             distributed.current())
    for start in range(0, len(mine), batch_size):
        idx = mine[start:start + batch_size]
        x, y = images[idx].to(device), labels[idx].to(device)
        output = model(x).float()
        if objective == "denoise":
            mse = _loss(objective, output, y.float(), reduction="none").flatten(1).mean(1)
            sums[0] += mse.sum()
            sums[1] += (10 * torch.log10(1 / mse)).sum()
            sums[2] += len(idx)
        else:
            sums[0] += _loss(objective, output, y, reduction="sum")
            sums[1] += (output.argmax(1) == y).sum()
            sums[2] += (y != IGNORE).sum()
    model.train(was_training)
    loss_sum, score, count = distributed.all_reduce_sum(sums.tolist(), device)
    return {"loss": loss_sum / count, OBJECTIVES[objective]: score / count}


def make_optimizer(model: nn.Module, budget: Budget, steps: int, lr: float):
    """The budget's optimizer for ``model``, fused (one kernel for every parameter's update) where
    this PyTorch has it for the device, else its default multi-tensor form; and its schedule over
    ``steps`` steps (None for a constant rate). Returns ``(optimizer, schedule)``: what
    :func:`fit` trains with, for a benchmark or a loop of one's own."""
    kind = torch.optim.Adam if budget.optimizer == "adam" else torch.optim.AdamW
    try:
        opt = kind(model.parameters(), lr=lr, weight_decay=budget.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # older PyTorch: fused on CUDA only
        opt = kind(model.parameters(), lr=lr, weight_decay=budget.weight_decay)
    if budget.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    else:
        sched = None
    return opt, sched


def describe_score(metric: str, value: float) -> str:
    """"test accuracy 0.9812" or "test PSNR 19.32 dB": a score of :data:`OBJECTIVES` in words."""
    return f"test PSNR {value:.2f} dB" if metric == "psnr" else f"test accuracy {value:.4f}"


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the run stopped rather than train on."""


def fit(model: nn.Module, data, budget: Budget,
        device: torch.device | str | None = None, seed: int = 0, progress: bool = True,
        precision: str | None = None, compile: bool | str = False, log=print,
        scale_batch: bool = False, epoch_hook=None, objective: str = "classify") -> list[dict]:
    """Train ``model`` on ``data`` under ``budget`` (resolved: a :class:`~nlcourse.budget.Budget`);
    evaluate on the test split after each epoch.

    Returns the history, one dict per epoch: ``epoch``, ``train_loss``, ``test_loss``,
    ``test_accuracy`` (``test_psnr`` for the objective ``"denoise"``), ``seconds`` (training
    time of that epoch, evaluation excluded).

    ``objective``: ``"classify"`` (cross-entropy; targets labelled :data:`IGNORE` are left out)
    or ``"denoise"`` (mean squared error against the clean images), see :data:`OBJECTIVES`.

    ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 with a gradient scaler),
    or None for the device's default (:func:`pick_precision`). ``compile``: wrap the model in
    ``torch.compile`` for training (True, or one of its modes such as ``"reduce-overhead"``,
    which captures CUDA graphs on a GPU); the first steps then pay the compilation.

    The data goes to the device once when it fits, and each epoch's batches are drawn by a
    permutation on the device; losses are summed there and read once per epoch, so the host
    never waits for the device inside an epoch. The progress bar counts steps without reading
    the loss. A loss that became NaN or infinite is seen at that read: the run stops there with
    :class:`TrainingDiverged`, naming the epoch.

    Under ``torchrun`` (a process group initialised by :mod:`nlcourse.distributed`) the model is
    wrapped in DistributedDataParallel, a DistributedSampler gives each process its share of every
    epoch, losses and accuracies are summed over the processes, and only rank 0 logs and shows
    progress. ``scale_batch``: see :func:`batch_plan`. ``epoch_hook(epoch)``, if given, is called at
    the start of every epoch (1-based), for example :class:`nlcourse.efficient.progressive`.
    """
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a resolved nlcourse.budget.Budget (a lab's BUDGETS[name], "
                        f"or the first result of its setup(...)); got {budget!r}")
    if not isinstance(compile, (bool, str)):
        raise TypeError(f"compile must be True, False or a torch.compile mode such as "
                        f"'reduce-overhead'; got {compile!r}")
    check_objective(objective)
    metric = OBJECTIVES[objective]
    device = pick_device(device)
    choice = pick_precision(device, precision)
    ctx = distributed.current()
    plan = batch_plan(budget, ctx.world_size, scale_batch)
    batch_size = plan["per_process_batch_size"]
    # One process: the seed's stream. Several: the same initial weights (the model was
    # built before this call, and DDP broadcasts rank 0's anyway), but each rank its own dropout.
    set_seed(seed + ctx.rank)
    model.to(device).train()
    images, labels = _on_device(data.train_images, device), _on_device(data.train_labels, device)
    test_images, test_labels = (_on_device(data.test_images, device),
                                _on_device(data.test_labels, device))
    n = len(labels)
    if ctx.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                      else None)
        sampler = DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank,
                                     shuffle=True, seed=seed)
        steps_per_epoch = -(-len(sampler) // batch_size)
    else:
        net, sampler = model, None
        steps_per_epoch = -(-n // batch_size)
    if compile:
        net = torch.compile(net) if compile is True else torch.compile(net, mode=compile)
    progress, log = progress and ctx.is_main, log if ctx.is_main else None
    opt, sched = make_optimizer(model, budget, budget.epochs * steps_per_epoch, plan["lr"])
    autocast, scaler = _autocast(device, choice)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    update_every = max(1, steps_per_epoch // 4)  # the bar moves four times an epoch
    history = []
    for epoch in range(1, budget.epochs + 1):
        if epoch_hook is not None:
            epoch_hook(epoch)
        start = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        seen = 0
        batches = (_batches(n, batch_size, generator) if sampler is None
                   else _sampled_batches(sampler, epoch, batch_size))
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{budget.epochs}",
                   disable=not progress, leave=False)
        for step, idx in enumerate(batches, 1):
            idx = idx.to(images.device, non_blocking=True)
            x = images[idx].to(device, non_blocking=True)
            y = labels[idx].to(device, non_blocking=True)
            with autocast:
                loss = _loss(objective, net(x), y)
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
            loss_sum += loss.detach().float() * len(idx)
            seen += len(idx)
            if step % update_every == 0 or step == steps_per_epoch:
                bar.update(step - bar.n)
        bar.close()
        epoch_loss = loss_sum.item()  # the epoch's one sync with the device
        seconds = time.perf_counter() - start
        if not math.isfinite(epoch_loss):
            raise TrainingDiverged(
                f"training diverged in epoch {epoch} of {budget.epochs}: the training loss became "
                f"{epoch_loss} (precision {choice}, learning rate {plan['lr']:g}); try a lower "
                f"learning rate" + (" or precision='fp32'" if choice != "fp32" else "")
                + ", and check the inputs for NaN or infinite values")
        epoch_loss, seen = distributed.all_reduce_sum([epoch_loss, seen], device)
        distributed.broadcast_buffers(model)  # every rank evaluates rank 0's model
        test = evaluate(model, test_images, test_labels, device, objective=objective)
        history.append({"epoch": epoch, "train_loss": epoch_loss / seen,
                        "test_loss": test["loss"], f"test_{metric}": test[metric],
                        "seconds": seconds})
        if log:
            log(f"epoch {epoch}/{budget.epochs}: train loss {epoch_loss / seen:.4f}, "
                f"{describe_score(metric, test[metric])} ({seconds:.1f} s)")
    return history


class CheckpointError(ValueError):
    """A file that is not a checkpoint the course can load, or one of another network."""


def save_checkpoint(path: str | Path, net: nn.Module, **meta) -> Path:
    """Save ``net``'s weights with ``meta`` (what is needed to rebuild it: plain values only,
    so that :func:`load_checkpoint` can read it with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**meta, "state_dict": net.state_dict()}, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The dict :func:`save_checkpoint` wrote (``state_dict`` and the meta), read safely
    (``weights_only=True``: no code in the file runs). Anything else raises
    :class:`CheckpointError` (or ``FileNotFoundError``) with one line that names the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train one first with "
                                f"'python -m nlcourse train LAB --out {path.parent}'")
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {path} is a folder, not a file (a run's folder holds "
                              f"model.pt)")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # PyTorch's own message here suggests loading with weights_only=False, which would run
        # whatever code the file holds: never repeat it.
        if "weights only" in str(err).lower() or "weights_only" in str(err):
            raise CheckpointError(
                f"checkpoint: {path} holds Python objects other than tensors and plain values, "
                f"so it was not written by nlcourse; it is not loaded, because loading such a "
                f"file can run code") from None
        raise CheckpointError(f"checkpoint: {path} is not a PyTorch checkpoint (it cannot be "
                              f"unpickled); expected a model.pt written by nlcourse") from None
    except Exception:  # a damaged file fails anywhere in the unpickler, in any way
        raise CheckpointError(f"checkpoint: {path} cannot be read as a PyTorch checkpoint (it is "
                              f"cut short, damaged, or another kind of file); expected a model.pt "
                              f"written by nlcourse") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint: {path} holds no 'state_dict' (expected a model.pt "
                              f"written by nlcourse.train.save_checkpoint or 'python -m nlcourse "
                              f"train')")
    return saved


def load_weights(net: nn.Module, saved: dict, path, what: str) -> nn.Module:
    """``net`` with the weights of ``saved`` (a :func:`load_checkpoint` dict); a checkpoint of
    another architecture raises :class:`CheckpointError` naming what it holds and ``what`` was
    expected, in one line (PyTorch's own message lists every key)."""
    state = saved["state_dict"]
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not isinstance(state[k], torch.Tensor) or expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        held = (f"lab {saved.get('lab')!r}, model {saved.get('model')!r}" if "lab" in saved
                else "no record of what it holds")

        def some(keys):
            return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

        details = "; ".join(part for part in (
            f"missing {some(missing)}" if missing else "",
            f"unexpected {some(unexpected)}" if unexpected else "",
            f"other shapes for {some(wrong)}" if wrong else "") if part)
        raise CheckpointError(f"checkpoint: {path} is not {what} ({held}): {details}")
    net.load_state_dict(state)
    return net
