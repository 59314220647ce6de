"""The run record: the one set of facts written beside every result, so that any number in the
book can be traced to the command, code, machine, data and budget that produced it.

Every writer of a result (a lab's ``run``, the benchmarks) builds its record with
:func:`run_record`; ``tests/test_results.py`` checks every committed results file for
:data:`RUN_RECORD_FIELDS`. The committed results live in one folder, :func:`results_home`.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import torch

__all__ = ["RUN_RECORD_FIELDS", "run_record", "missing_fields", "git_commit", "device_name",
           "results_home", "results_out"]

#: What a reader needs to trust (or redo) a result; every committed results file carries all of it.
RUN_RECORD_FIELDS = (
    "lab", "model", "command", "date", "device", "precision", "torch_version", "threads",
    "commit", "world_size", "data_source", "data_description", "n_train", "n_test", "budget",
    "budget_settings", "seed",
)

_PACKAGE = Path(__file__).resolve().parent


def git_commit() -> str | None:
    """HEAD of the repository this package lives in, with "-dirty" if the package has uncommitted
    changes; None outside a git checkout (an installed copy)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=_PACKAGE, timeout=5).stdout.strip()
        if len(head) != 40:  # not a checkout, or no commit yet
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(_PACKAGE)],
                               capture_output=True, text=True, cwd=_PACKAGE, timeout=5).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: torch.device) -> str:
    """The GPU's model name on CUDA (what decides its speed), else the device type."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return str(device) if device.type != "cpu" else "cpu"


def run_record(*, lab: str, model: str, budget, seed: int, data, device, precision: str,
               command: str | None, world_size: int = 1, commit: str | None = None) -> dict:
    """The record of one run: every field of :data:`RUN_RECORD_FIELDS`.

    ``budget`` is the :class:`~nlcourse.budget.Budget` the run trained under, ``data`` the data
    object it trained on (anything with ``source``, ``describe()`` and the four split tensors).
    A benchmark, which trains nothing on no data set, passes ``budget=None`` and ``data=None``:
    those fields are then recorded as null (present, and plainly not applicable).
    ``commit`` defaults to this checkout's; a sweep passes the commit it loaded at its start.
    """
    return {
        "lab": lab,
        "model": model,
        "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": device_name(device),
        "precision": precision,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": commit if commit is not None else git_commit(),
        "world_size": world_size,
        "data_source": data.source if data is not None else None,
        "data_description": data.describe() if data is not None else None,
        "n_train": len(data.train_labels) if data is not None else None,
        "n_test": len(data.test_labels) if data is not None else None,
        "budget": budget.name if budget is not None else None,
        "budget_settings": budget.as_dict() if budget is not None else None,
        "seed": seed,
    }


def missing_fields(record: dict) -> list[str]:
    """The fields of :data:`RUN_RECORD_FIELDS` that ``record`` lacks."""
    return [name for name in RUN_RECORD_FIELDS if name not in record]


def results_home() -> Path | None:
    """The folder of committed results, which the pages read: ``$NLCOURSE_RESULTS``, else
    ``results/`` of the repository this package lives in (a checkout), else the copy installed
    with the package (``pip install``, Colab: the same files, as package data); None if neither
    is there."""
    if os.environ.get("NLCOURSE_RESULTS"):
        return Path(os.environ["NLCOURSE_RESULTS"]).expanduser().resolve()
    for home in (_PACKAGE.parent / "results", _PACKAGE / "results"):
        if (home / "README.md").exists():
            return home
    return None


def results_out() -> Path:
    """Where new results are written by default (a sweep, a benchmark): ``$NLCOURSE_RESULTS``,
    else ``results/`` of the checkout, else ``results/`` in the working folder; never into an
    installed package."""
    home = results_home()
    if home is not None and home != _PACKAGE / "results":
        return home
    return Path("results")
