"""Resumable sweeps over models and seeds, one results file per (model, seed), and their summary.

A full-budget run takes from several minutes to over an hour on 2 CPU cores (about a minute on
a GPU: see ``notebooks/results/full*/``), so a sweep writes each run's metrics to its
own JSON file as soon as it finishes and skips the files that already exist: the set can be
completed a few runs at a time, on different machines, and committed with its provenance (every
file records the command, date, device, torch version and commit that produced it).
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
from pathlib import Path

from ._modes import MODES

__all__ = ["MODELS", "EFFICIENT_MODELS", "EFFICIENT_SETTINGS", "result_path", "resumable_sweep",
           "run_sweep", "train_efficient", "run_efficient_sweep", "load_results", "summarise"]

MODELS = ("none", *MODES)  # "none": the baseline without blocks

# The cheaper blocks of nlcourse.efficient, trained in MNISTNet's two embedded-Gaussian blocks.
# Block 1 relates 196 queries to 49 keys, block 2 49 to 9: top-4 keeps 8% and 44% of the keys,
# rank 4 is a quarter and an eighth of C' (16 and 32), chunks of 64 split block 1's queries in 4.
EFFICIENT_MODELS = ("chunked", "top_k", "low_rank", "progressive")
EFFICIENT_SETTINGS = {"chunked": {"chunk": 64}, "top_k": {"k": 4}, "low_rank": {"rank": 4},
                      "progressive": {"warmup": "half the epochs, rounded down"}}


def result_path(out_dir: str | Path, model: str, seed: int) -> Path:
    return Path(out_dir) / f"{model}_seed{seed}.json"


def resumable_sweep(models, seeds, budget, out_dir: str | Path, subcommand: str, load_data,
                    train_one, log=print, key: str = "mode", order=MODELS) -> list[dict]:
    """The loop both sweeps share: for every (model, seed) without a results file, call
    ``train_one(model, seed, data, command) -> metrics`` and write the metrics with the commit
    this process loaded; then return every result in ``out_dir``. ``load_data()`` runs only when
    something is left to train."""
    from .train import git_commit

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [(m, s) for m in models for s in seeds if not result_path(out_dir, m, s).exists()]
    if log:
        log(f"{len(todo)} of {len(models) * len(seeds)} runs to do in {out_dir} "
            f"(budget {budget.name})")
    data = load_data() if todo else None
    commit = git_commit()  # the code this process loaded, even if the checkout moves on
    for model, seed in todo:
        command = (f"python -m nlcourse {subcommand} --models {model} --seeds {seed} "
                   f"--budget {budget.name} --out {shlex.quote(str(out_dir))}")
        metrics = train_one(model, seed, data, command)
        metrics["commit"] = commit
        result_path(out_dir, model, seed).write_text(json.dumps(metrics, indent=2) + "\n")
        if log:
            log(f"{model:>17} seed {seed}: test accuracy {metrics['test_accuracy']:.4f} "
                f"({metrics['train_seconds']:.0f} s)")
    return load_results(out_dir, key=key, order=order)


def run_sweep(models=MODELS, seeds=(0, 1, 2), budget: str | None = None,
              out_dir: str | Path = "notebooks/results/quick", device=None, progress: bool = True,
              log=print) -> list[dict]:
    """Train every (model, seed) whose results file is missing; return all results in the folder."""
    from .budget import get_budget
    from .data import load_mnist
    from .train import train_mnist

    budget = get_budget(budget)

    def train_one(model, seed, data, command):
        return train_mnist(None if model == "none" else model, budget=budget, seed=seed,
                           device=device, data=data, progress=progress, log=None,
                           command=command)
    return resumable_sweep(models, seeds, budget, out_dir, "sweep", load_mnist, train_one, log)


def train_efficient(variant: str, budget=None, seed: int = 0, data=None, device=None,
                    progress: bool = True, log=print, command: str | None = None) -> dict:
    """Train MNISTNet (embedded Gaussian) with both blocks replaced by ``variant`` (one of
    ``EFFICIENT_MODELS``, with ``EFFICIENT_SETTINGS``); "progressive" keeps the full
    blocks frozen as the identity for the first half of the epochs. Returns the metrics of
    :func:`~nlcourse.train.train_mnist`, plus ``variant`` and ``variant_settings``."""
    from . import efficient
    from .budget import get_budget
    from .models import MNISTNet
    from .train import set_seed, train_mnist

    if variant not in EFFICIENT_MODELS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, EFFICIENT_MODELS))}; "
                         f"got {variant!r}")
    budget = get_budget(budget)
    set_seed(seed)
    net, hook = MNISTNet("embedded_gaussian"), None
    if variant == "progressive":
        settings = {"warmup_epochs": budget.epochs // 2}
        hook = efficient.progressive(net, settings["warmup_epochs"])
    else:
        settings = EFFICIENT_SETTINGS[variant]
        efficient.swap_blocks(net, lambda b: efficient.make_variant(b, variant, **settings))
    metrics = train_mnist("embedded_gaussian", budget=budget, seed=seed, device=device, data=data,
                          progress=progress, log=log, command=command, model=net,
                          epoch_hook=hook)
    metrics.update(variant=variant, variant_settings=settings)
    return metrics


def run_efficient_sweep(variants=EFFICIENT_MODELS, seeds=(0, 1), budget: str | None = None,
                        out_dir: str | Path = "notebooks/results/efficient/quick", device=None,
                        progress: bool = True, log=print) -> list[dict]:
    """Train every (variant, seed) whose results file is missing; return all results in the folder."""
    from .budget import get_budget
    from .data import load_mnist

    budget = get_budget(budget)

    def train_one(variant, seed, data, command):
        return train_efficient(variant, budget=budget, seed=seed, data=data, device=device,
                               progress=progress, log=None, command=command)
    return resumable_sweep(variants, seeds, budget, out_dir, "efficient-sweep", load_mnist,
                           train_one, log, key="variant", order=EFFICIENT_MODELS)


def load_results(out_dir: str | Path, key: str = "mode", order=MODELS) -> list[dict]:
    """Every results file in ``out_dir``, sorted by model (``r[key]``, in ``order``) then seed."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"no results folder at {out_dir}: run "
                                f"'python -m nlcourse sweep --out {out_dir}' first")
    results = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*_seed*.json"))]
    rank = {m: i for i, m in enumerate(order)}
    return sorted(results, key=lambda r: (rank.get(r[key], 99), r["seed"]))


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(results: list[dict], key: str = "mode") -> list[dict]:
    """Per model (``r[key]``): seeds, mean and sample standard deviation of test accuracy,
    parameters, median training seconds per epoch, and the data sources and budgets the runs
    used."""
    rows = []
    for model in dict.fromkeys(r[key] for r in results):
        runs = [r for r in results if r[key] == model]
        mean, std = _mean_std([r["test_accuracy"] for r in runs])
        rows.append({
            "model": model,
            "seeds": sorted(r["seed"] for r in runs),
            "accuracy_mean": mean,
            "accuracy_std": std,
            "params": runs[0]["params"],
            # median: one run slowed by another job on a shared machine should not set the figure
            "seconds_per_epoch": statistics.median(r["train_seconds"] / r["epochs"] for r in runs),
            "data_sources": sorted({r["data_source"] for r in runs}),
            "budgets": sorted({r["budget"] for r in runs}),
            "devices": sorted({r["device"] for r in runs}),
        })
    return rows
