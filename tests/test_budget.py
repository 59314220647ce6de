from __future__ import annotations

import pytest
import torch

from nlcourse.budget import BUDGETS, get_budget


def test_explicit_name_wins_over_environment(monkeypatch):
    monkeypatch.setenv("NLCOURSE_BUDGET", "smoke")
    assert get_budget("full").name == "full"
    assert get_budget().name == "smoke"


def test_default_depends_on_cuda(monkeypatch):
    monkeypatch.delenv("NLCOURSE_BUDGET", raising=False)
    expected = "full" if torch.cuda.is_available() else "quick"
    assert get_budget().name == expected


def test_unknown_budget_names_its_source(monkeypatch):
    with pytest.raises(ValueError, match="budget must be one of 'smoke', 'quick', 'full'; got 'huge'"):
        get_budget("huge")
    monkeypatch.setenv("NLCOURSE_BUDGET", "fast")
    with pytest.raises(ValueError, match="NLCOURSE_BUDGET must be one of .*; got 'fast'"):
        get_budget()


def test_full_budget_is_the_reference_recipe():
    full = BUDGETS["full"]
    assert (full.epochs, full.batch_size, full.optimizer, full.lr, full.schedule) == (
        10, 128, "adam", 1e-3, "constant")
    assert full.train_size is None and BUDGETS["quick"].train_size is None


def test_lab_setup_describes_the_labs_own_budget(capsys, monkeypatch):
    from nlcourse import lab
    from nlcourse.budget import FASHION

    monkeypatch.delenv("NLCOURSE_BUDGET", raising=False)
    budget, device = lab.setup("smoke", seed=3, device="cpu", settings=FASHION)
    out = capsys.readouterr().out
    assert budget.name == "smoke" and device.type == "cpu"
    assert f"budget: smoke ({FASHION['smoke'].description}); seed 3" in out
    assert "4,096-image" not in out   # not the MNIST budget's description
    lab.setup("smoke", device="cpu")
    assert "4,096-image" in capsys.readouterr().out
