"""Every committed results file carries the one run record, and the index names every folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlcourse.labs import LABS, runner
from nlcourse.provenance import RUN_RECORD_FIELDS, missing_fields, results_home

HOME = Path(__file__).resolve().parents[1] / "results"
FILES = sorted(p for p in HOME.rglob("*.json") if "smoke" not in p.relative_to(HOME).parts)


def test_the_results_home_is_found():
    assert results_home() == HOME and len(FILES) >= 70


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(HOME)))
def test_every_file_carries_the_run_record(path):
    record = json.loads(path.read_text())
    assert missing_fields(record) == [], f"{path.relative_to(HOME)} lacks {missing_fields(record)}"
    lab = path.relative_to(HOME).parts[0]
    assert record["lab"] == lab
    assert record["command"] and record["commit"] and record["date"] and record["device"]
    if lab != "bench":   # a training run: every field applies
        # a sweep's file is named <model>_seed<seed>.json; a committed trained run is a folder
        # of that name holding metrics.json beside model.pt
        name = path.parent.name if path.name == "metrics.json" else path.stem
        assert record["model"] in LABS[lab].models and name == f"{record['model']}_seed{record['seed']}"
        assert None not in (record[k] for k in RUN_RECORD_FIELDS), path
        assert record["n_train"] > 0 and record["n_test"] > 0 and record["world_size"] >= 1
    text = path.read_text()
    for machine_path in ("/work/", "/tmp/", "/root/", "/home/"):
        assert machine_path not in text, f"{path.relative_to(HOME)} names {machine_path}"


def test_the_index_names_every_folder():
    index = (HOME / "README.md").read_text()
    folders = {p.parent.relative_to(HOME).as_posix() for p in FILES if p.name != "metrics.json"}
    runs = [p for p in FILES if p.name == "metrics.json"]
    assert all(p.parent.parent.name == "runs" for p in runs), runs
    if runs:
        assert "`<lab>/quick/runs/`" in index
    for folder in folders:
        assert f"`{folder}/`" in index, f"results/README.md does not describe {folder}/"


RUNS = sorted(p.parent for p in FILES if p.name == "metrics.json")


@pytest.mark.parametrize("folder", RUNS, ids=lambda p: str(p.relative_to(HOME)))
def test_committed_trained_runs_are_read_back_without_training(folder, monkeypatch, tmp_path):
    """The run a page trains at the quick budget is committed with its weights: runner.trained
    reads it back without training (source "committed", and "auto" with nothing saved earlier),
    and the weights are the record's model."""
    lab_name, budget_name = folder.relative_to(HOME).parts[:2]
    lab, record = LABS[lab_name], json.loads((folder / "metrics.json").read_text())
    assert (folder / "model.pt").stat().st_size < 4 * 2**20
    budget = runner.budget(lab, budget_name)
    assert record["budget_settings"] == budget.as_dict(), "the recipe changed since this run"

    def no_training(*args, **kwargs):
        raise AssertionError("trained() trained instead of reading the committed run back")
    monkeypatch.setattr(runner, "run", no_training)
    for source in ("committed", "auto"):
        net, loaded = runner.trained(lab, record["model"], budget, record["seed"], runs=tmp_path,
                                     source=source)
        assert loaded["loaded_from"] == folder.relative_to(HOME.parent).as_posix()
        assert loaded["from_committed"] is True
        assert sum(p.numel() for p in net.parameters()) == record["params"]
    with pytest.raises(AssertionError, match="trained instead"):   # source="train" does train
        runner.trained(lab, record["model"], budget, record["seed"], runs=tmp_path,
                       source="train")


@pytest.mark.parametrize("folder", RUNS, ids=lambda p: str(p.relative_to(HOME)))
def test_a_committed_trained_run_is_its_sweeps_file_too(folder):
    """One seed 0 per model: a page that shows the read-back run beside the sweep's seeds must not
    show two different runs under the same seed."""
    assert (folder.parent.parent / f"{folder.name}.json").read_text() == \
        (folder / "metrics.json").read_text()
