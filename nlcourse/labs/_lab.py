"""What every lab shares: one small interface, so that a notebook cell, the command line and the
book reach every experiment through the same calls.

A lab is its models (names), its budget table, how to build a model by name and how to load the
budget's data. From those :class:`Lab` gives ``setup`` (the first cell of a notebook), ``run``
(train one model with one seed, and write its record), ``sweep`` (every model and seed, one
results file each, resumable), ``results`` (the runs of a folder) and ``committed`` (the runs
committed in the results home, which the pages' sentences rest on). Adding a lab is writing one
module that builds a :class:`Lab`, takes its calls with ``LAB.interface()``, and is listed in
``nlcourse.labs.LABS``.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import distributed, viz
from ..analysis import count_flops, parameters
from ..budget import Budget, resolve
from ..provenance import git_commit, results_home, run_record
from ..train import (CheckpointError, batch_plan, fit, load_checkpoint, load_weights, pick_device,
                     save_checkpoint, set_seed)
from ..train import precision as describe_precision

__all__ = ["Lab", "load_results", "summarise", "flops_per_example"]


@dataclass(frozen=True)
class Lab:
    """One experiment.

    ``build(model)`` returns the untrained network named ``model`` (called right after seeding, so
    a seed fixes its weights). ``load_data(budget)`` returns the budget's data: the same for every
    model and seed, with ``source``, ``describe()`` and the four split tensors. ``settings(model,
    budget)`` gives fixed facts to record (the block's mode, a variant's options);
    ``measure(net, data, device)`` measured ones (FLOPs); ``epoch_hook(net, model, budget)`` a hook
    for :func:`~nlcourse.train.fit`, or None.
    """

    name: str
    title: str
    models: tuple[str, ...]
    budgets: dict[str, Budget]
    build: Callable[[str], nn.Module]
    load_data: Callable[[Budget], object]
    default_model: str
    default_seeds: tuple[int, ...] = (0, 1, 2)
    settings: Callable[[str, Budget], dict] | None = None
    measure: Callable | None = None
    epoch_hook: Callable | None = None

    # -- where a run starts: the budget is resolved here, once ------------------------------------

    def budget(self, budget: str | Budget | None = None) -> Budget:
        """This lab's :class:`~nlcourse.budget.Budget` for a name (None: ``$NLCOURSE_BUDGET``, else
        by hardware)."""
        return resolve(self.budgets, budget)

    def setup(self, budget: str | Budget | None = None, seed: int = 0, device=None):
        """The first cell of a notebook: resolve the budget, pick the device, seed everything, set
        the figure style, and say what was chosen. Returns (budget, device)."""
        chosen = self.budget(budget)
        dev = pick_device(device, verbose=True)
        set_seed(seed)
        viz.use_style()
        print(f"budget: {chosen.name} ({chosen.description}); seed {seed}")
        return chosen, dev

    # -- one run ---------------------------------------------------------------------------------

    def check_model(self, model: str) -> str:
        if model not in self.models:
            raise ValueError(f"model must be one of {', '.join(map(repr, self.models))} for the "
                             f"{self.name} lab; got {model!r}")
        return model

    def run(self, model: str, budget: Budget, seed: int = 0, out: str | Path | None = None, *,
            data=None, device=None, progress: bool = True, log=print, command: str | None = None,
            commit: str | None = None, scale_batch: bool = False, precision: str | None = None,
            compile: bool | str = False):
        """Train ``model`` with ``seed`` under ``budget`` (resolved). Returns (network in eval
        mode, record): the run record of :func:`~nlcourse.provenance.run_record` plus the results
        (``test_accuracy``, ``epochs``, ``train_seconds``, ``params``, ``history``). With ``out``,
        also writes ``out/model.pt`` and ``out/metrics.json``.

        Under ``torchrun`` every rank trains and only rank 0 logs and writes;
        ``rank_parameter_digests`` then holds each rank's final weights' SHA-256, which must all
        be equal. ``scale_batch``: see :func:`~nlcourse.train.batch_plan`; ``precision`` and
        ``compile``: see :func:`~nlcourse.train.fit` (both are written in the record).
        """
        self.check_model(model)
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be resolved first, with {self.name}.budget(name), "
                            f"{self.name}.BUDGETS[name] or {self.name}.setup(...); got {budget!r}")
        device = pick_device(device)
        ctx = distributed.current()
        log = log if ctx.is_main else None
        if data is None:
            if ctx.distributed and not ctx.is_main:
                torch.distributed.barrier()  # rank 0 downloads, if anything is missing, alone
            data = self.load_data(budget)
            if ctx.distributed and ctx.is_main:
                torch.distributed.barrier()
        plan = batch_plan(budget, ctx.world_size, scale_batch)
        if log:
            log(f"{self.name} lab, model {model}, budget {budget.name}: {budget.description}")
            log(f"data: {data.describe()}")
            log(f"device: {device}" + (f", {ctx.world_size} processes ({ctx.backend}), global "
                                       f"batch {plan['global_batch_size']}, learning rate "
                                       f"{plan['lr']:g}" if ctx.distributed else ""))
        set_seed(seed)
        net = self.build(model)
        hook = self.epoch_hook(net, model, budget) if self.epoch_hook else None
        history = fit(net, data, budget, device=device, seed=seed, progress=progress, log=log,
                      scale_batch=scale_batch, epoch_hook=hook, precision=precision,
                      compile=compile)
        net.eval()
        record = run_record(lab=self.name, model=model, budget=budget, seed=seed, data=data,
                            device=device, precision=describe_precision(device, precision),
                            command=command, world_size=ctx.world_size, commit=commit)
        record["compile"] = compile
        record.update(self.settings(model, budget) if self.settings else {})
        record.update(test_accuracy=history[-1]["test_accuracy"], epochs=budget.epochs,
                      train_seconds=sum(h["seconds"] for h in history), params=parameters(net))
        if self.measure:
            record.update(self.measure(net, data, device))
        if ctx.distributed:
            record.update(plan, backend=ctx.backend,
                          rank_parameter_digests=distributed.gather_objects(
                              distributed.parameter_digest(net)))
        record["history"] = history
        if out is not None and ctx.is_main:
            out = Path(out)
            save_checkpoint(out / "model.pt", net, lab=self.name, model=model)
            (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
        return net, record

    def load(self, path: str | Path, map_location="cpu") -> nn.Module:
        """The network saved by :meth:`run` (``path``: the file or its folder), in eval mode."""
        path = Path(path)
        path = path / "model.pt" if path.is_dir() else path
        checkpoint = load_checkpoint(path, map_location)
        if checkpoint.get("lab", self.name) != self.name:
            raise CheckpointError(f"checkpoint: {path} holds a model of the {checkpoint['lab']} "
                                  f"lab, not of the {self.name} lab")
        # Checkpoints written before labs were recorded name their model "mode".
        model = checkpoint.get("model", checkpoint.get("mode"))
        if model not in self.models:
            raise CheckpointError(f"checkpoint: {path} names the model {model!r}, not one of the "
                                  f"{self.name} lab's ({', '.join(self.models)})")
        net = load_weights(self.build(model), checkpoint, path,
                           f"the {self.name} lab's {model!r} network")
        return net.eval()

    def committed_run(self, model: str, budget: Budget, seed: int = 0) -> Path | None:
        """The folder of a committed trained run,
        ``results/<lab>/<budget>/runs/<model>_seed<seed>/`` (``model.pt`` and ``metrics.json``, as
        ``python -m nlcourse train ... --out`` writes them), or None. The book's pages that train
        read these back, so that a cold build of the book at the quick budget does not spend a
        quarter of an hour training what is committed."""
        home = results_home()
        folder = (home / self.name / budget.name / "runs" / f"{model}_seed{seed}"
                  if home is not None else None)
        return folder if folder is not None and _saved(folder) else None

    def trained(self, model: str, budget: Budget, seed: int = 0, runs: str | Path = "runs",
                retrain: bool = False, **options):
        """The model trained with these settings. Loaded, when not ``retrain``, from ``runs`` if an
        earlier run (another notebook, say) saved it there, else from the committed run of the
        same budget and seed (:meth:`committed_run`), either only with the same budget settings
        and data; trained and saved in ``runs`` otherwise. Returns (model on ``device``, record);
        a loaded record says where it came from in ``loaded_from``, and ``from_committed`` says
        whether that is the committed run (so a page does not call it the reader's own).
        ``options`` go to :meth:`run`."""
        self.check_model(model)
        out = Path(runs) / f"{self.name}-{model}-{budget.name}-seed{seed}"
        committed = self.committed_run(model, budget, seed)
        sources = [] if retrain else [(out, str(out))] + (
            [(committed, committed.relative_to(results_home().parent).as_posix())]
            if committed is not None else [])
        for folder, name in sources:
            if not _saved(folder):
                continue
            record = json.loads((folder / "metrics.json").read_text())
            data = options.get("data")
            # A run of this notebook's own must match its data; the committed run is read back
            # whatever data this machine has (it says which it was trained on).
            if (record.get("budget_settings") != budget.as_dict()
                    or (folder != committed and data is not None
                        and record.get("data_source") != data.source)):
                print(f"{name} holds a model trained on other settings or data: not used")
                continue
            if folder == committed:
                took = record["train_seconds"]
                took = f"{took:.0f} s" if took < 120 else f"{took / 60:.0f} min"
                print(f"read back the committed run {name}/\n  trained {record['date'][:10]} "
                      f"on {record['device']} in {took} on {record['data_description']}, test "
                      f"accuracy {record['test_accuracy']:.4f}; not trained again (retrain=True "
                      f"does)")
            else:
                print(f"loading the model trained earlier from {name}")
            return (self.load(folder).to(pick_device(options.get("device"))),
                    {**record, "loaded_from": name, "from_committed": folder == committed})
        return self.run(model, budget, seed, out, **options)

    def interface(self) -> tuple:
        """The calls every lab module offers, for ``setup, run, sweep, results, committed,
        trained, load, budget = LAB.interface()``."""
        return (self.setup, self.run, self.sweep, self.results, self.committed, self.trained,
                self.load, self.budget)

    # -- many runs -------------------------------------------------------------------------------

    def results_dir(self, folder: str) -> Path:
        """Where this lab's results for ``folder`` (a budget's name, or a named set such as
        ``full-cpu``) live: in the committed results home, else under ``results/`` here."""
        home = results_home()
        return (home if home is not None else Path("results")) / self.name / folder

    def sweep(self, models=None, seeds=None, budget: Budget | None = None,
              out: str | Path | None = None, *, device=None, progress: bool = True,
              log=print) -> list[dict]:
        """Train every (model, seed) whose results file ``<model>_seed<k>.json`` is missing from
        ``out`` (default :meth:`results_dir` of the budget), writing each as soon as it finishes,
        so that a set can be completed a few runs at a time, on different machines. Returns every
        result in ``out``. The data is loaded only when something is left to train."""
        models = [self.check_model(m) for m in (models or self.models)]
        seeds = list(self.default_seeds if seeds is None else seeds)
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be resolved first, with {self.name}.budget(name); "
                            f"got {budget!r}")
        if distributed.current().distributed:
            raise RuntimeError("a sweep runs in one process; start it with 'python -m nlcourse "
                               "sweep', not torchrun (use torchrun with 'train')")
        # The command names --out only when it was given (the default is the results home), and
        # then relative to the repository when it lies in it: no path of this machine in a record.
        where = f" --out {shlex.quote(_shown(Path(out)))}" if out is not None else ""
        out = Path(out) if out is not None else self.results_dir(budget.name)
        out.mkdir(parents=True, exist_ok=True)
        todo = [(m, s) for m in models for s in seeds if not _result_path(out, m, s).exists()]
        if log:
            log(f"{len(todo)} of {len(models) * len(seeds)} runs to do in {_shown(out)} "
                f"(budget {budget.name})")
        data = self.load_data(budget) if todo else None
        commit = git_commit()  # the code this process loaded, even if the checkout moves on
        for model, seed in todo:
            command = (f"python -m nlcourse sweep {self.name} --models {model} --seeds {seed} "
                       f"--budget {budget.name}{where}")
            _, record = self.run(model, budget, seed, data=data, device=device,
                                 progress=progress, log=None, command=command, commit=commit)
            # Written whole, then renamed: a sweep killed mid-write leaves no half file that a
            # resumed sweep would take for a finished run.
            partial = _result_path(out, model, seed).with_suffix(".json.partial")
            partial.write_text(json.dumps(record, indent=2) + "\n")
            os.replace(partial, _result_path(out, model, seed))
            if log:
                log(f"{model:>17} seed {seed}: test accuracy {record['test_accuracy']:.4f} "
                    f"({record['train_seconds']:.0f} s)")
        return self.results(out)

    def committed(self, folder: str) -> list[dict]:
        """The runs committed in the results home's ``<lab>/<folder>/``, or [] where there is no
        results home (a notebook opened alone, in Colab): what a page's narrative rests on, so
        that it holds whatever budget the page itself ran."""
        home = results_home()
        path = home / self.name / folder if home is not None else None
        return load_results(path, order=self.models) if path and path.is_dir() else []

    def results(self, folder: str | Path) -> list[dict]:
        """Every results file of a folder: a name (``"quick"``, ``"full-cpu"``) under
        :meth:`results_dir`, or a path. Sorted by model (in this lab's order) then seed."""
        path = Path(folder)
        if isinstance(folder, str) and len(path.parts) == 1:
            path = self.results_dir(folder)
        return load_results(path, order=self.models)


def _shown(path: Path) -> str:
    """``path`` as a page may print it: relative to the repository when it lies in the results
    home, so that no page shows a path of the machine that built it."""
    home = results_home()
    try:
        return str(path.resolve().relative_to(home.parent)) if home is not None else str(path)
    except ValueError:
        return str(path)


def _result_path(out: Path, model: str, seed: int) -> Path:
    return out / f"{model}_seed{seed}.json"


def load_results(folder: str | Path, order=()) -> list[dict]:
    """Every ``*_seed*.json`` results file in ``folder``, sorted by model (in ``order``, then
    alphabetically) then seed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder at {folder}: run 'python -m nlcourse sweep "
                                f"LAB --out {folder}' first")
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*_seed*.json"))]
    rank = {m: i for i, m in enumerate(order)}
    return sorted(results, key=lambda r: (rank.get(r["model"], len(rank)), r["model"], r["seed"]))


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(results: list[dict]) -> list[dict]:
    """Per model: seeds, mean and sample standard deviation of test accuracy, parameters, median
    training seconds per epoch, and the data sources, budgets and devices the runs used."""
    rows = []
    for model in dict.fromkeys(r["model"] for r in results):
        runs = [r for r in results if r["model"] == model]
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


def _saved(folder: Path) -> bool:
    """Whether ``folder`` holds a run as :meth:`Lab.run` writes it."""
    return (folder / "model.pt").exists() and (folder / "metrics.json").exists()


def read_back(results: list[dict], committed: list[dict]) -> bool:
    """Whether ``results`` are all committed runs read back rather than trained now (a sweep at
    the committed budget finds their files and trains nothing), so that a page does not present
    them as the reader's own run."""
    keys = {(r["model"], r["seed"], r["date"]) for r in committed}
    return bool(results) and all((r["model"], r["seed"], r["date"]) in keys for r in results)


def flops_per_example(field: str):
    """A ``measure`` for :class:`Lab`: the forward FLOPs of the trained network on one test
    example, recorded as ``field``."""
    def measure(net: nn.Module, data, device) -> dict:
        with torch.no_grad():
            return {field: count_flops(lambda: net(data.test_images[:1].to(device)))}
    return measure
