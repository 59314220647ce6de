"""The labs: every module one shape (a declaration and its parts), and the runner, tested once
for all of them on a small lab of its own (run, sweep, results, trained from each source, load),
plus the command line built from the list of labs and the budget resolved once."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlcourse import MNISTNet
from nlcourse.budget import NAMES, Budget
from nlcourse.data import SAMPLE
from nlcourse.labs import LABS, Lab, mnist, runner
from nlcourse.provenance import RUN_RECORD_FIELDS, missing_fields
from nlcourse.train import CheckpointError

from .test_train import tiny_data

ROOT = Path(__file__).resolve().parents[1]
SMOKE = mnist.BUDGETS["smoke"]
RESULTS = {"test_accuracy", "epochs", "train_seconds", "params", "history"}
SHAPE = ("LAB", "MODELS", "BUDGETS", "build", "load_data")


def _module(name):
    return importlib.import_module(f"nlcourse.labs.{name}")


# -- every lab module has one shape -----------------------------------------------------------------

@pytest.mark.parametrize("name", list(LABS))
def test_every_lab_module_has_the_same_shape(name):
    module, lab = _module(name), LABS[name]
    assert all(part in module.__all__ for part in SHAPE), module.__all__
    assert module.LAB is lab and lab.name == name
    assert lab.models == module.MODELS and lab.budgets is module.BUDGETS
    assert lab.build is module.build and lab.load_data is module.load_data
    build = inspect.signature(module.build).parameters
    assert list(build)[0] == "model" and any(p.kind is p.VAR_KEYWORD for p in build.values())
    assert list(inspect.signature(module.load_data).parameters) == ["budget"]
    assert tuple(lab.budgets) == NAMES and lab.default_model in lab.models
    assert all(isinstance(b, Budget) and b.name == k for k, b in lab.budgets.items())
    with pytest.raises(ValueError, match=f"model must be one of .* for the {name} lab"):
        module.build("no such model")


def test_a_lab_is_a_declaration_without_behaviour():
    own = {name for name, _ in inspect.getmembers(Lab, inspect.isfunction)} - {"__post_init__"}
    inherited = {name for name, _ in inspect.getmembers(object, callable)}
    assert own <= inherited | {"__eq__", "__hash__", "__repr__", "__init__", "__setattr__",
                               "__delattr__"}, own - inherited
    with pytest.raises(dataclasses.FrozenInstanceError):
        mnist.LAB.name = "other"
    with pytest.raises(ValueError, match="default_model 'x' is not one of its models"):
        dataclasses.replace(mnist.LAB, default_model="x")


@pytest.mark.parametrize("name", list(LABS))
def test_every_page_a_lab_serves_exists_and_names_it(name):
    lab = LABS[name]
    assert lab.pages
    for page in lab.pages:
        source = next((ROOT / f"{page}{suffix}" for suffix in (".md",)
                       if (ROOT / f"{page}{suffix}").exists()), None)
        assert source is not None, f"{name}: {page} does not exist"
        assert f"{name}.LAB" in source.read_text(), f"{page} does not run the {name} lab"


def test_every_lab_notebook_that_runs_a_lab_is_listed_by_it():
    served = {page for lab in LABS.values() for page in lab.pages}
    for md in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md")):
        text = md.read_text()
        for name in LABS:
            if f"runner.trained({name}.LAB" in text or f"runner.sweep({name}.LAB" in text:
                assert f"notebooks/{md.stem}" in LABS[name].pages, (md.name, name)
    assert served


def test_the_readme_table_of_labs_is_the_declarations():
    check = subprocess.run([sys.executable, "tools/lab_table.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


# -- the runner, on a small lab --------------------------------------------------------------------

TINY = dataclasses.replace(mnist.LAB, load_data=lambda budget: tiny_data())


def test_run_writes_the_run_record_and_a_loadable_checkpoint(tmp_path):
    net, record = runner.run(TINY, "concatenation", SMOKE, seed=3, out=tmp_path,
                             progress=False, log=None, command="a test")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert missing_fields(saved) == [] and RESULTS <= saved.keys()
    assert saved["lab"] == "mnist" and saved["model"] == saved["mode"] == "concatenation"
    assert saved["seed"] == 3 and saved["budget"] == "smoke" and saved["command"] == "a test"
    assert saved["data_source"] == SAMPLE and saved["params"] == 401_626
    assert saved["n_train"] == 256 and saved["n_test"] == 128 and saved["world_size"] == 1
    assert saved["precision"] == "float32"   # the CPU trains without autocast
    assert saved["compile"] is False
    assert saved["epochs"] == len(saved["history"]) and saved["torch_version"] == torch.__version__
    loaded = runner.load(TINY, tmp_path)
    x = tiny_data().test_images[:8]
    assert torch.equal(loaded(x), net(x))


def test_the_precision_switch_is_in_the_record():
    _, record = runner.run(TINY, "none", SMOKE, seed=0, progress=False, log=None,
                           precision="bf16")
    assert record["precision"] == "bf16 autocast" and record["compile"] is False


def test_run_wants_a_known_model_a_resolved_budget_and_a_seed():
    with pytest.raises(ValueError, match="model must be one of 'none', 'gaussian'.*; got 'softmax'"):
        runner.run(TINY, "softmax", SMOKE)
    with pytest.raises(TypeError, match=r"budget must be resolved first, with runner.budget"):
        runner.run(TINY, "none", "smoke")
    with pytest.raises(ValueError, match="seed must be from 0 to 2"):
        runner.run(TINY, "none", SMOKE, seed=-1)


def test_loading_another_labs_checkpoint_is_refused(tmp_path):
    from nlcourse.labs import long_range
    from nlcourse.train import save_checkpoint

    save_checkpoint(tmp_path / "model.pt", long_range.build("none"), lab="long_range",
                    model="none")
    with pytest.raises(CheckpointError, match="a model of the long_range lab, not of the mnist lab"):
        runner.load(mnist.LAB, tmp_path)


def test_sweep_writes_one_file_per_run_and_resumes(tmp_path):
    results = runner.sweep(TINY, ("none", "dot_product"), (0,), SMOKE, tmp_path, progress=False,
                           log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dot_product_seed0.json",
                                                          "none_seed0.json"]
    assert [r["model"] for r in results] == ["none", "dot_product"]
    assert results[0]["command"] == (f"python -m nlcourse sweep mnist --models none --seeds 0 "
                                     f"--budget smoke --out {tmp_path}")
    assert all(missing_fields(r) == [] for r in results)
    untouched = dataclasses.replace(TINY, load_data=lambda budget: pytest.fail("retrained"))
    assert runner.sweep(untouched, ("none", "dot_product"), (0,), SMOKE, tmp_path,
                        progress=False, log=None) == results
    assert runner.results(TINY, tmp_path) == results


def test_setup_describes_the_labs_own_budget(capsys, monkeypatch):
    from nlcourse.labs import resnet

    monkeypatch.delenv("NLCOURSE_BUDGET", raising=False)
    budget, device = runner.setup(resnet.LAB, "smoke", seed=3, device="cpu")
    out = capsys.readouterr().out
    assert budget is resnet.BUDGETS["smoke"] and device.type == "cpu"
    assert f"resnet lab, budget smoke ({resnet.BUDGETS['smoke'].description}); seed 3" in out
    runner.setup(mnist.LAB, "smoke", device="cpu")
    assert "4,096 MNIST training images" in capsys.readouterr().out
    assert runner.budget(mnist.LAB, "smoke") is mnist.BUDGETS["smoke"]


def _committed_home(tmp_path, monkeypatch, trained_net, budget=SMOKE):
    """A results home holding a committed run of the tiny lab's "none" at the smoke budget."""
    home = tmp_path / "results"
    (home / "README.md").parent.mkdir()
    (home / "README.md").write_text("committed results")
    folder = home / "mnist" / budget.name / "runs" / "none_seed0"
    from nlcourse.train import save_checkpoint

    save_checkpoint(folder / "model.pt", trained_net, lab="mnist", model="none")
    record = {"budget_settings": budget.as_dict(), "data_source": "mnist", "train_seconds": 5,
              "date": "2026-12-01", "device": "cpu", "test_accuracy": 0.5,
              "data_description": "full MNIST", "model": "none", "seed": 0}
    (folder / "metrics.json").write_text(json.dumps(record))
    monkeypatch.setenv("NLCOURSE_RESULTS", str(home))
    return folder


def test_trained_takes_each_source_as_asked(tmp_path, monkeypatch, capsys):
    torch.manual_seed(1)
    committed_net = MNISTNet("none").eval()
    _committed_home(tmp_path, monkeypatch, committed_net)
    runs, x = tmp_path / "runs", tiny_data().test_images[:4]
    options = dict(runs=runs, data=tiny_data(), progress=False, log=None)
    net, record = runner.trained(TINY, "none", SMOKE, 0, source="committed", **options)
    assert record["from_committed"] and "read back the committed run" in capsys.readouterr().out
    assert torch.equal(net(x), committed_net(x))   # whatever data this machine has (a sample)
    trained_now, record = runner.trained(TINY, "none", SMOKE, 0, source="train", **options)
    assert "loaded_from" not in record and (runs / "mnist-none-smoke-seed0" / "model.pt").exists()
    again, record = runner.trained(TINY, "none", SMOKE, 0, source="auto", **options)
    assert "loaded the model trained earlier" in capsys.readouterr().out
    assert record["from_committed"] is False and torch.equal(again(x), trained_now.eval()(x))
    monkeypatch.delenv("NLCOURSE_SOURCE", raising=False)
    assert runner.default_source() == "train"             # a student's run trains
    monkeypatch.setenv("NLCOURSE_SOURCE", "committed")
    assert runner.trained(TINY, "none", SMOKE, 0, **options)[1]["from_committed"]
    monkeypatch.setenv("NLCOURSE_SOURCE", "auto")         # the site build's switch
    assert runner.default_source() == "auto"
    with pytest.raises(ValueError, match="source must be one of 'train', 'committed', 'auto'"):
        runner.trained(TINY, "none", SMOKE, 0, source="cache", **options)
    with pytest.raises(ValueError, match="source='committed': no run of the mnist lab's 'gaussian'"):
        runner.trained(TINY, "gaussian", SMOKE, 0, source="committed", **options)
    monkeypatch.setenv("NLCOURSE_SOURCE", "sometimes")
    with pytest.raises(ValueError, match="NLCOURSE_SOURCE must be one of"):
        runner.default_source()


def test_auto_uses_a_saved_model_only_for_the_same_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NLCOURSE_RESULTS", str(tmp_path / "no-results"))
    data = tiny_data()
    options = dict(runs=tmp_path, data=data, progress=False, log=None, source="auto")
    net, _ = runner.trained(TINY, "none", SMOKE, 0, **options)
    assert "training it now (source='auto')" in capsys.readouterr().out
    again, record = runner.trained(TINY, "none", SMOKE, 0, **options)
    assert "loaded the model trained earlier" in capsys.readouterr().out
    assert record["from_committed"] is False     # the reader's own earlier run, not the course's
    x = data.test_images[:4]
    assert torch.equal(net.eval()(x), again(x))
    other = dataclasses.replace(SMOKE, epochs=2)
    runner.trained(TINY, "none", other, 0, **options)
    assert "trained on other settings or data: not used" in capsys.readouterr().out


def test_read_back_tells_committed_runs_from_a_new_one():
    """A sweep at the committed budget reads the files back; a page must not call them "your run"."""
    committed = [{"model": m, "seed": s, "date": "2026-11-22T02:52:49+0000"}
                 for m in ("none", "res3") for s in (0, 1)]
    assert runner.read_back(committed[:3], committed)
    assert not runner.read_back(committed[:3] + [dict(committed[3], date="2026-12-01T03:00:00+0000")],
                                committed)
    assert not runner.read_back([], committed) and not runner.read_back(committed, [])


# -- the command line --------------------------------------------------------------------------------

def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "nlcourse", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_command_line_lists_the_labs():
    proc = _cli("train", "--help")
    assert proc.returncode == 0
    for name in LABS:
        assert name in proc.stdout
    assert _cli("sweep", "spacetime", "--help").stdout.count("none,space,time,spacetime") >= 1


DATA = os.environ.get("NLCOURSE_DATA")


@pytest.mark.skipif(not DATA or not Path(DATA, "MNIST", "raw").is_dir(),
                    reason="full MNIST not available: set NLCOURSE_DATA to a folder with MNIST/raw/")
def test_command_line_smoke_run(tmp_path):
    out = tmp_path / "eg"
    proc = _cli("train", "mnist", "--model", "embedded_gaussian", "--budget", "smoke", "--out",
                str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "metrics.json").read_text())
    assert missing_fields(record) == []
    assert record["data_source"] == "mnist-subset"   # smoke never claims full MNIST
    assert record["n_train"] == 4096 and record["test_accuracy"] > 0.5
    assert "test accuracy" in proc.stdout and "a subset of MNIST" in proc.stdout
    assert record["command"].startswith("python -m nlcourse train mnist")
    assert record["precision"] == "float32" and record["compile"] is False   # the CPU defaults
    assert "$NLCOURSE_DATA/MNIST/raw" in record["data_description"]   # no path of this machine
    assert str(Path(DATA).resolve()) not in json.dumps(record)


def test_run_record_fields_are_the_documented_ones():
    assert RUN_RECORD_FIELDS[:3] == ("lab", "model", "command")
    assert len(set(RUN_RECORD_FIELDS)) == len(RUN_RECORD_FIELDS) == 17


def test_the_site_build_sets_the_one_switch():
    """make book reads committed runs back (auto); nothing else sets NLCOURSE_SOURCE."""
    makefile = (ROOT / "Makefile").read_text()
    assert "NLCOURSE_SOURCE=auto $(BIN)/jupyter-book build" in makefile
    elsewhere = [p for p in list((ROOT / "notebooks").rglob("*.md")) + list((ROOT / "book").glob("*.md"))
                 if "NLCOURSE_SOURCE" in p.read_text()]
    assert not elsewhere, elsewhere


def test_no_lab_defaults_to_a_budget_that_has_never_been_run(monkeypatch, capsys):
    """On a GPU a lab runs at full only once a full-budget run of it is committed."""
    monkeypatch.delenv("NLCOURSE_BUDGET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name, lab in LABS.items():
        chosen = runner.budget(lab)
        assert chosen.name == ("full" if runner.committed(lab, "full") else "quick"), name
        assert runner.committed(lab, chosen.name), f"{name}: no committed run at {chosen.name}"
    assert runner.budget(LABS["mnist"]).name == "full"
    assert runner.budget(LABS["long_range"]).name == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert all(runner.budget(lab).name == "quick" for lab in LABS.values())


# -- what the partner lab measures on a map -------------------------------------------------------

def test_the_partner_lab_reads_where_a_map_puts_the_weight():
    from nlcourse.data import MNISTData, partner_canvas
    from nlcourse.labs import partners

    gen = torch.Generator().manual_seed(0)
    digits = MNISTData(torch.rand(40, 1, 28, 28, generator=gen),
                       torch.randint(0, 10, (40,), generator=gen),
                       torch.rand(20, 1, 28, 28, generator=gen),
                       torch.randint(0, 10, (20,), generator=gen), source=SAMPLE)
    data = partner_canvas(digits, 8, 5, canvas=partners.CANVAS, gap=partners.GAP)
    cells = partners.digit_cells(data)                                 # (5, 144)
    assert torch.equal(cells >= 0, (data.test_labels >= 0).flatten(1))   # the cells with targets
    keys = partners.key_digits(data, 36).float()                       # (5, 4, 36)
    # every query on a digit looks only at its partner's keys; the others look everywhere
    looking = torch.full((5, 144, 36), 1 / 36)
    for k in range(5):
        for q in (cells[k] >= 0).nonzero()[:, 0].tolist():
            partner_keys = keys[k, data.test_partners[k, cells[k, q]]]
            looking[k, q] = partner_keys / partner_keys.sum()
    found = partners.map_measures(looking, data)
    assert found["weight_on_partner"] == pytest.approx(1.0)
    assert found["weight_on_own"] == pytest.approx(0.0)
    assert found["weight_on_other_pair"] < 0.05   # a key that overlaps two squares counts for both
    assert found["row_similarity"] < 0.5                     # the pairs look at different places
    shared = partners.map_measures(torch.full((5, 144, 36), 1 / 36), data)
    assert shared["row_similarity"] == pytest.approx(1.0)    # one map for every query
    assert partners.LAB.objective == "classify" and "global_context" in partners.MODELS
