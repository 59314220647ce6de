from __future__ import annotations

import pytest
import torch

from nlcourse.budget import NAMES, Budget, resolve, resolve_name, table
from nlcourse.labs import LABS, mnist


def test_explicit_name_wins_over_environment(monkeypatch):
    monkeypatch.setenv("NLCOURSE_BUDGET", "smoke")
    assert resolve_name("full") == "full"
    assert resolve_name() == "smoke"
    assert resolve(mnist.BUDGETS) is mnist.BUDGETS["smoke"]


def test_default_depends_on_cuda(monkeypatch):
    monkeypatch.delenv("NLCOURSE_BUDGET", raising=False)
    assert resolve_name() == ("full" if torch.cuda.is_available() else "quick")


def test_unknown_budget_names_its_source(monkeypatch):
    with pytest.raises(ValueError, match="budget must be one of 'smoke', 'quick', 'full'; got 'huge'"):
        resolve_name("huge")
    monkeypatch.setenv("NLCOURSE_BUDGET", "fast")
    with pytest.raises(ValueError, match="NLCOURSE_BUDGET must be one of .*; got 'fast'"):
        resolve(mnist.BUDGETS)


def test_a_resolved_budget_passes_through():
    own = Budget("smoke", epochs=3, batch_size=8, optimizer="adam", lr=1e-3, schedule="constant")
    assert resolve(mnist.BUDGETS, own) is own


def test_every_lab_table_has_one_shape():
    for lab in LABS.values():
        assert tuple(lab.budgets) == NAMES
        assert all(type(b) is Budget and b.description for b in lab.budgets.values())


def test_a_table_needs_all_three_and_describes_them_from_their_settings():
    with pytest.raises(ValueError, match="exactly one of each of smoke, quick, full; got smoke"):
        table("images", smoke=dict(epochs=1, batch_size=8))
    made = table("canvases", smoke=dict(epochs=1, batch_size=8, train_size=1000),
                 quick=dict(epochs=2, batch_size=8),
                 full=dict(epochs=3, batch_size=8, optimizer="adam", lr=1e-3,
                           schedule="constant", note="a recipe"))
    assert made["smoke"].description.endswith(": 1,000 canvases, 1 epoch, batch 8")
    assert made["quick"].description == "minutes on 2 CPU cores: all canvases, 2 epochs, batch 8"
    assert made["full"].description.endswith("Adam 1e-3 at a constant rate (a recipe)")
    with pytest.raises(ValueError, match="a budget's name must be one of"):
        Budget("tiny", epochs=1, batch_size=1, optimizer="adam", lr=1.0, schedule="constant")
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'adamw'; got 'sgd'"):
        Budget("smoke", epochs=1, batch_size=1, optimizer="sgd", lr=1.0, schedule="constant")


def test_full_budget_is_the_demo_recipe():
    full = mnist.BUDGETS["full"]
    assert (full.epochs, full.batch_size, full.optimizer, full.lr, full.schedule) == (
        10, 128, "adam", 1e-3, "constant")
    assert full.train_size is None and mnist.BUDGETS["quick"].train_size is None


def test_recipe_reads_the_record_settings():
    from nlcourse.budget import recipe
    from nlcourse.labs import mnist

    assert recipe(mnist.BUDGETS["full"].as_dict()) == "10 epochs of Adam at a constant rate"
    assert recipe(mnist.BUDGETS["quick"].as_dict()) == "2 epochs of AdamW with a one-cycle schedule"
    with pytest.raises(ValueError, match="missing schedule"):
        recipe({"epochs": 1, "optimizer": "adam"})
    with pytest.raises(ValueError, match=r"\['optimizer'\] must be one of adam, adamw; got 'sgd'"):
        recipe({"epochs": 1, "optimizer": "sgd", "schedule": "constant"})
