"""What every lab is done with, for any :class:`~nlcourse.labs.lab.Lab`: one place for the first
cell of a notebook (:func:`setup`), a training run (:func:`run`), a sweep over models and seeds
(:func:`sweep`), the committed runs the pages' sentences rest on (:func:`committed`,
:func:`committed_run`), a model trained or read back (:func:`trained`) and a checkpoint loaded
(:func:`load`). A notebook, the command line and the book call these with a lab's ``LAB``::

    from nlcourse.labs import mnist, runner
    budget, device = runner.setup(mnist.LAB, "quick")
    net, record = runner.trained(mnist.LAB, "dot_product", budget, seed=0)

Where a trained model comes from is :func:`trained`'s ``source``: ``"train"`` (train it now),
``"committed"`` (read back the run committed in ``results/``) or ``"auto"`` (an earlier run of
this folder, else the committed one, else train; it says which). Its default is ``"train"``, so
a student who runs a lab trains what the lab is about; the site build sets one switch,
``NLCOURSE_SOURCE=auto`` (``make book``), so that the site reads the committed runs back.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import statistics
from pathlib import Path

import torch
from torch import nn

from .. import distributed
from ..budget import Budget, resolve
from ..cost import parameters
from ..provenance import git_commit, results_home, results_out, run_record
from ..train import (OBJECTIVES, CheckpointError, batch_plan, check_seed, describe_score, fit,
                     load_checkpoint, load_weights, pick_device, save_checkpoint, set_seed)
from ..train import precision as describe_precision
from .lab import Lab, check_model

__all__ = ["SOURCES", "default_source", "gpu_default", "budget", "setup", "run", "sweep", "trained",
           "load", "committed", "committed_run", "results", "results_dir", "load_results",
           "summarise", "read_back", "score"]

#: Where :func:`trained` takes a model from.
SOURCES = ("train", "committed", "auto")


# -- where a run starts: the budget is resolved here, once ----------------------------------------

def gpu_default(lab: Lab) -> str:
    """The budget ``lab`` runs at on a GPU when none is named: ``full`` once a full-budget run of
    it is committed (so its time and its asserts there are known), else ``quick``."""
    return "full" if committed(lab, "full") else "quick"


def budget(lab: Lab, name: str | Budget | None = None) -> Budget:
    """``lab``'s :class:`~nlcourse.budget.Budget` for a name (None: ``$NLCOURSE_BUDGET``, else
    ``quick`` on a CPU and :func:`gpu_default` on a GPU)."""
    return resolve(lab.budgets, name, gpu_default(lab))


def setup(lab: Lab, budget_name: str | Budget | None = None, seed: int = 0, device=None):
    """The first cell of a notebook: resolve the budget, pick the device, seed everything, and say
    what was chosen. Returns (budget, device)."""
    chosen = budget(lab, budget_name)
    dev = pick_device(device, verbose=True)
    set_seed(seed)
    print(f"{lab.name} lab, budget {chosen.name} ({chosen.description}); seed {seed}")
    if (budget_name is None and not os.environ.get("NLCOURSE_BUDGET") and dev.type == "cuda"
            and chosen.name == "quick"):
        print(f"(the {lab.name} lab's full budget has not been run and committed yet, so a GPU "
              f"runs it at quick; BUDGET = \"full\" asks for it anyway)")
    return chosen, dev


def _resolved(lab: Lab, budget_: Budget) -> Budget:
    if not isinstance(budget_, Budget):
        raise TypeError(f"budget must be resolved first, with runner.budget(LAB, name), "
                        f"LAB.budgets[name] or runner.setup(LAB, ...); got {budget_!r}")
    return budget_


# -- one run --------------------------------------------------------------------------------------

def run(lab: Lab, model: str, budget: Budget, seed: int = 0, out: str | Path | None = None, *,
        data=None, device=None, progress: bool = True, log=print, command: str | None = None,
        commit: str | None = None, scale_batch: bool = False, precision: str | None = None,
        compile: bool | str = False):
    """Train ``lab``'s ``model`` with ``seed`` under ``budget`` (resolved). Returns (network in
    eval mode, record): the run record of :func:`~nlcourse.provenance.run_record` plus the results
    (``test_accuracy``, or ``test_psnr`` for a lab whose objective is to denoise; ``epochs``,
    ``train_seconds``, ``params``, ``history``). With ``out``,
    also writes ``out/model.pt`` and ``out/metrics.json``.

    Under ``torchrun`` every rank trains and only rank 0 logs and writes;
    ``rank_parameter_digests`` then holds each rank's final weights' SHA-256, which must all
    be equal. ``scale_batch``: see :func:`~nlcourse.train.batch_plan`; ``precision`` and
    ``compile``: see :func:`~nlcourse.train.fit` (both are written in the record).
    """
    check_model(model, lab.models, lab.name)
    budget = _resolved(lab, budget)
    seed = check_seed(seed)
    device = pick_device(device)
    ctx = distributed.current()
    log = log if ctx.is_main else None
    if data is None:
        if ctx.distributed and not ctx.is_main:
            torch.distributed.barrier()  # rank 0 downloads, if anything is missing, alone
        data = lab.load_data(budget)
        if ctx.distributed and ctx.is_main:
            torch.distributed.barrier()
    plan = batch_plan(budget, ctx.world_size, scale_batch)
    if log:
        log(f"{lab.name} lab, model {model}, budget {budget.name}: {budget.description}")
        log(f"data: {data.describe()}")
        log(f"device: {device}" + (f", {ctx.world_size} processes ({ctx.backend}), global "
                                   f"batch {plan['global_batch_size']}, learning rate "
                                   f"{plan['lr']:g}" if ctx.distributed else ""))
    set_seed(seed)
    net = lab.build(model)
    hook = lab.epoch_hook(net, model, budget) if lab.epoch_hook else None
    history = fit(net, data, budget, device=device, seed=seed, progress=progress, log=log,
                  scale_batch=scale_batch, epoch_hook=hook, precision=precision, compile=compile,
                  objective=lab.objective)
    net.eval()
    record = run_record(lab=lab.name, model=model, budget=budget, seed=seed, data=data,
                        device=device, precision=describe_precision(device, precision),
                        command=command, world_size=ctx.world_size, commit=commit)
    record["compile"] = compile
    record.update(lab.settings(model, budget) if lab.settings else {})
    metric = f"test_{OBJECTIVES[lab.objective]}"
    record.update({metric: history[-1][metric]}, epochs=budget.epochs,
                  train_seconds=sum(h["seconds"] for h in history), params=parameters(net))
    if lab.measure:
        record.update(lab.measure(net, data, device))
    if ctx.distributed:
        record.update(plan, backend=ctx.backend,
                      rank_parameter_digests=distributed.gather_objects(
                          distributed.parameter_digest(net)))
    record["history"] = history
    if out is not None and ctx.is_main:
        out = Path(out)
        save_checkpoint(out / "model.pt", net, lab=lab.name, model=model)
        (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    return net, record


def load(lab: Lab, path: str | Path, map_location="cpu") -> nn.Module:
    """The network :func:`run` saved (``path``: the file or its folder), in eval mode. A file of
    another lab or architecture raises :class:`~nlcourse.train.CheckpointError`, in one line."""
    path = Path(path)
    path = path / "model.pt" if path.is_dir() else path
    checkpoint = load_checkpoint(path, map_location)
    if checkpoint.get("lab", lab.name) != lab.name:
        raise CheckpointError(f"checkpoint: {path} holds a model of the {checkpoint['lab']} "
                              f"lab, not of the {lab.name} lab")
    # Checkpoints written before labs were recorded name their model "mode".
    model = checkpoint.get("model", checkpoint.get("mode"))
    if model not in lab.models:
        raise CheckpointError(f"checkpoint: {path} names the model {model!r}, not one of the "
                              f"{lab.name} lab's ({', '.join(lab.models)})")
    net = load_weights(lab.build(model), checkpoint, path, f"the {lab.name} lab's {model!r} network")
    return net.eval()


# -- where a trained model comes from ---------------------------------------------------------------

def default_source() -> str:
    """:func:`trained`'s source when none is given: ``$NLCOURSE_SOURCE`` (the site build sets it
    to ``"auto"``), else ``"train"``."""
    chosen = os.environ.get("NLCOURSE_SOURCE") or "train"
    if chosen not in SOURCES:
        raise ValueError(f"NLCOURSE_SOURCE must be one of {', '.join(map(repr, SOURCES))}; "
                         f"got {chosen!r}")
    return chosen


def committed_run(lab: Lab, model: str, budget: Budget, seed: int = 0) -> Path | None:
    """The folder of a committed trained run, ``results/<lab>/<budget>/runs/<model>_seed<seed>/``
    (``model.pt`` and ``metrics.json``, as ``python -m nlcourse train ... --out`` writes them),
    or None."""
    home = results_home()
    folder = (home / lab.name / budget.name / "runs" / f"{model}_seed{seed}"
              if home is not None else None)
    return folder if folder is not None and _saved(folder) else None


def trained(lab: Lab, model: str, budget: Budget, seed: int = 0, *, source: str | None = None,
            runs: str | Path = "runs", **options):
    """``lab``'s ``model`` trained under ``budget`` with ``seed``, taken from ``source``:

    * ``"train"``: trained now, and saved in ``runs/<lab>-<model>-<budget>-seed<seed>/``;
    * ``"committed"``: the committed run of the same budget and seed (:func:`committed_run`),
      whatever data this machine has (its record says what it was trained on);
    * ``"auto"``: the run an earlier notebook saved in ``runs`` (same budget settings and data),
      else the committed run, else trained now; it prints which.

    None: :func:`default_source`. Returns (model on the device, record); a record read back says
    where from in ``loaded_from``, and ``from_committed`` whether it is the committed run (so a
    page does not call it the reader's own). ``options`` go to :func:`run`.
    """
    check_model(model, lab.models, lab.name)
    budget = _resolved(lab, budget)
    source = default_source() if source is None else source
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(map(repr, SOURCES))} (or None for "
                         f"the default, {default_source()!r}); got {source!r}")
    own = Path(runs) / f"{lab.name}-{model}-{budget.name}-seed{seed}"
    committed = committed_run(lab, model, budget, seed)
    if source == "committed" and committed is None:
        raise ValueError(f"source='committed': no run of the {lab.name} lab's {model!r} at the "
                         f"{budget.name} budget, seed {seed}, is committed in results/; use "
                         f"source='train'")
    candidates = {"train": [], "committed": [committed], "auto": [own, committed]}[source]
    for folder in (f for f in candidates if f is not None and _saved(f)):
        record = json.loads((folder / "metrics.json").read_text())
        data = options.get("data")
        # A run of this folder's own must match the data; the committed run is read back
        # whatever data this machine has (it says which it was trained on).
        if (record.get("budget_settings") != budget.as_dict()
                or (folder != committed and data is not None
                    and record.get("data_source") != data.source)):
            print(f"{_shown(folder)} holds a model trained on other settings or data: not used")
            continue
        shown = _shown(folder)
        if folder == committed:
            took = record["train_seconds"]
            took = f"{took:.0f} s" if took < 120 else f"{took / 60:.0f} min"
            print(f"read back the committed run {shown}/ (source={source!r})\n  trained "
                  f"{record['date'][:10]} on {record['device']} in {took} on "
                  f"{record['data_description']}, {score(record)}; source='train' trains it "
                  f"anew")
        else:
            print(f"loaded the model trained earlier in {shown}/ (source={source!r})")
        return (load(lab, folder).to(pick_device(options.get("device"))),
                {**record, "loaded_from": shown, "from_committed": folder == committed})
    if source == "committed":
        raise ValueError(f"source='committed': the committed run {_shown(committed)} was "
                         f"trained with other budget settings than the {budget.name} budget's "
                         f"now; use source='train'")
    if source == "auto":
        print(f"no saved or committed run of {model!r} at the {budget.name} budget, seed {seed}: "
              f"training it now (source='auto')")
    return run(lab, model, budget, seed, own, **options)


# -- many runs ------------------------------------------------------------------------------------

def results_dir(lab: Lab, folder: str) -> Path:
    """Where a sweep writes ``lab``'s results for ``folder`` (a budget's name, or a named set such
    as ``full-cpu``) by default: under :func:`~nlcourse.provenance.results_out`."""
    return results_out() / lab.name / folder


def _result_path(out: Path, model: str, seed: int) -> Path:
    return out / f"{model}_seed{seed}.json"


def sweep(lab: Lab, models=None, seeds=None, budget: Budget | None = None,
          out: str | Path | None = None, *, device=None, progress: bool = True,
          log=print) -> list[dict]:
    """Train every (model, seed) whose results file ``<model>_seed<k>.json`` is missing from
    ``out`` (default :func:`results_dir` of the budget), writing each as soon as it finishes, so
    that a set can be completed a few runs at a time, on different machines. Returns every result
    in ``out``. The data is loaded only when something is left to train."""
    models = [check_model(m, lab.models, lab.name) for m in (models or lab.models)]
    seeds = [check_seed(s, "seeds") for s in (lab.default_seeds if seeds is None else seeds)]
    budget = _resolved(lab, budget)
    if distributed.current().distributed:
        raise RuntimeError("a sweep runs in one process; start it with 'python -m nlcourse "
                           "sweep', not torchrun (use torchrun with 'train')")
    # The command names --out only when it was given (the default is the results home), and
    # then relative to the repository when it lies in it: no path of this machine in a record.
    where = f" --out {shlex.quote(_shown(Path(out)))}" if out is not None else ""
    out = Path(out) if out is not None else results_dir(lab, budget.name)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(m, s) for m in models for s in seeds if not _result_path(out, m, s).exists()]
    if log:
        log(f"{len(todo)} of {len(models) * len(seeds)} runs to do in {_shown(out)} "
            f"(budget {budget.name})")
    data = lab.load_data(budget) if todo else None
    commit = git_commit()  # the code this process loaded, even if the checkout moves on
    for model, seed in todo:
        command = (f"python -m nlcourse sweep {lab.name} --models {model} --seeds {seed} "
                   f"--budget {budget.name}{where}")
        _, record = run(lab, model, budget, seed, data=data, device=device, progress=progress,
                        log=None, command=command, commit=commit)
        # Written whole, then renamed: a sweep killed mid-write leaves no half file that a
        # resumed sweep would take for a finished run.
        partial = _result_path(out, model, seed).with_suffix(".json.partial")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, _result_path(out, model, seed))
        if log:
            log(f"{model:>17} seed {seed}: {score(record)} ({record['train_seconds']:.0f} s)")
    return results(lab, out)


def committed(lab: Lab, folder: str) -> list[dict]:
    """The runs committed in the results home's ``<lab>/<folder>/``, or [] where there is no
    results home: what a page's narrative rests on, so that it holds whatever budget the page
    itself ran."""
    home = results_home()
    path = home / lab.name / folder if home is not None else None
    return load_results(path, order=lab.models) if path and path.is_dir() else []


def results(lab: Lab, folder: str | Path) -> list[dict]:
    """Every results file of a folder: a name (``"quick"``, ``"full-cpu"``) in the committed
    results (:func:`committed`, which must hold it), or a path. Sorted by model (in the lab's
    order) then seed."""
    path = Path(folder)
    if isinstance(folder, str) and len(path.parts) == 1:
        home = results_home()
        path = (home if home is not None else results_out()) / lab.name / folder
    return load_results(path, order=lab.models)


def _shown(path: Path) -> str:
    """``path`` as a page may print it: relative to the repository when it lies in the results
    home, so that no page shows a path of the machine that built it."""
    home = results_home()
    try:
        return (path.resolve().relative_to(home.parent).as_posix() if home is not None
                else str(path))
    except ValueError:
        return str(path)


def _saved(folder: Path) -> bool:
    """Whether ``folder`` holds a run as :func:`run` writes it."""
    return (folder / "model.pt").exists() and (folder / "metrics.json").exists()


# -- reading results ------------------------------------------------------------------------------

def load_results(folder: str | Path, order=()) -> list[dict]:
    """Every ``*_seed*.json`` results file in ``folder``, sorted by model (in ``order``, then
    alphabetically) then seed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder at {folder}: run 'python -m nlcourse sweep "
                                f"LAB --out {folder}' first")
    found = [json.loads(p.read_text()) for p in sorted(folder.glob("*_seed*.json"))]
    rank = {m: i for i, m in enumerate(order)}
    return sorted(found, key=lambda r: (rank.get(r["model"], len(rank)), r["model"], r["seed"]))


def _metric(record: dict) -> str:
    """The score a record holds: ``accuracy`` or ``psnr`` (:data:`nlcourse.train.OBJECTIVES`)."""
    return next(m for m in OBJECTIVES.values() if f"test_{m}" in record)


def score(record: dict) -> str:
    """A run's test score in words: "test accuracy 0.9812" or "test PSNR 19.32 dB"."""
    metric = _metric(record)
    return describe_score(metric, record[f"test_{metric}"])


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(found: list[dict]) -> list[dict]:
    """Per model: seeds, mean and sample standard deviation of the test score (``accuracy_mean``
    and ``accuracy_std``, or ``psnr_mean`` and ``psnr_std`` for a denoising lab), parameters,
    median training seconds per epoch, and the data sources, budgets and devices the runs used."""
    rows = []
    for model in dict.fromkeys(r["model"] for r in found):
        runs_ = [r for r in found if r["model"] == model]
        metric = _metric(runs_[0])
        mean, std = _mean_std([r[f"test_{metric}"] for r in runs_])
        rows.append({
            "model": model,
            "seeds": sorted(r["seed"] for r in runs_),
            f"{metric}_mean": mean,
            f"{metric}_std": std,
            "params": runs_[0]["params"],
            # median: one run slowed by another job on a shared machine should not set the figure
            "seconds_per_epoch": statistics.median(r["train_seconds"] / r["epochs"]
                                                   for r in runs_),
            "data_sources": sorted({r["data_source"] for r in runs_}),
            "budgets": sorted({r["budget"] for r in runs_}),
            "devices": sorted({r["device"] for r in runs_}),
        })
    return rows


def read_back(found: list[dict], committed_runs: list[dict]) -> bool:
    """Whether ``found`` are all committed runs read back rather than trained now (a sweep at
    the committed budget finds their files and trains nothing), so that a page does not present
    them as the reader's own run."""
    keys = {(r["model"], r["seed"], r["date"]) for r in committed_runs}
    return bool(found) and all((r["model"], r["seed"], r["date"]) in keys for r in found)
