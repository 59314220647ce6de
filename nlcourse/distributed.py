"""Data-parallel training on PyTorch's own engine: ``torchrun`` starts the processes, this module
joins them into a process group and does the few collective steps the training loop needs.

One process per GPU with ``nccl``, or several CPU processes with ``gloo``. Outside ``torchrun``
(``WORLD_SIZE`` unset or 1) nothing here changes the single-process loop.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["Context", "init_from_env", "current", "shutdown", "all_reduce_sum",
           "broadcast_buffers", "parameter_digest", "gather_objects"]


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` and the backend joining them."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer (torchrun sets it), "
                         f"got {value!r}") from None


def init_from_env(device: str | torch.device | None = None) -> tuple[Context, torch.device]:
    """Join the process group ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and pick this process's
    device: ``cuda:LOCAL_RANK`` with ``nccl`` when GPUs are there (unless ``device`` says CPU),
    the CPU with ``gloo`` otherwise. Without ``torchrun``: a one-process context, no group."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device is not None:
        device = torch.device(device)
    if world_size <= 1:
        return Context(), device
    use_cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank} but this machine has "
                               f"{torch.cuda.device_count()} GPU(s): start at most that many "
                               f"processes per node (torchrun --nproc_per_node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Context(rank, world_size, local_rank, backend), device


def current() -> Context:
    """The context of an initialised process group, else the one-process context."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    return Context(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0),
                   dist.get_backend())


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (loss sums, counts); unchanged in one process."""
    if not current().distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them at the start of each forward, but each rank then updates its copy with its
    own batch, so after the last step they differ; evaluation and the checkpoint use rank 0's."""
    if not current().distributed:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in order, as raw bytes: equal only when the models
    are bit-for-bit equal."""
    h = hashlib.sha256()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order (a one-element list in one process)."""
    ctx = current()
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def shard(indices: Tensor, ctx: Context) -> Tensor:
    """This rank's share of ``indices`` (every ``world_size``-th one), for evaluation: no padding,
    so the sums over ranks count every example exactly once."""
    return indices[ctx.rank::ctx.world_size]
