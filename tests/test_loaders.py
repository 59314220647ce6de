"""Every public way to load a checkpoint, fed what a user might hand it: a truncated file, a
checkpoint of another model, and a pickle with code in it. Each raises the course's own
CheckpointError, one line naming the file and what was expected (never PyTorch's hint to load
with weights_only=False), and the malicious file runs nothing. The loaders are found from the
package (every lab of nlcourse.labs.LABS), so a lab added later is tested too."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from nlcourse import MNISTNet, maps
from nlcourse.labs import LABS, runner
from nlcourse.models import LongRangeNet
from nlcourse.train import CheckpointError, load_checkpoint, save_checkpoint

from .conftest import bad_checkpoints


def _loaders():
    """(name, load(path)) for every public loader of a checkpoint file."""
    found = [("nlcourse.train.load_checkpoint", load_checkpoint),
             ("nlcourse.maps.load_model", lambda path: maps.load_model("embedded_gaussian", path))]
    found += [(f"nlcourse.labs.runner.load({name}.LAB, ...)", partial(runner.load, lab))
              for name, lab in LABS.items()]
    return found


LOADERS = _loaders()


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return bad_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def _other_model(root, lab_name: str):
    """A checkpoint that claims to be this lab's default model but holds another network."""
    lab = LABS[lab_name]
    return save_checkpoint(root / f"other-{lab_name}.pt", LongRangeNet("gaussian")
                           if lab_name != "long_range" else MNISTNet("gaussian"),
                           lab=lab_name, model=lab.default_model)


def _assert_course_message(err, path):
    text = str(err)
    assert "\n" not in text and str(path) in text and text.startswith("checkpoint: "), text
    assert "weights_only" not in text and "Re-running" not in text, text


@pytest.mark.parametrize("name, load", LOADERS, ids=[n for n, _ in LOADERS])
def test_a_truncated_file_is_refused_by_name(name, load, bad):
    with pytest.raises(CheckpointError) as err:
        load(bad["truncated"])
    _assert_course_message(err.value, bad["truncated"])


@pytest.mark.parametrize("name, load", LOADERS, ids=[n for n, _ in LOADERS])
def test_a_pickle_with_code_runs_nothing(name, load, bad):
    with pytest.raises(CheckpointError) as err:
        load(bad["malicious"])
    _assert_course_message(err.value, bad["malicious"])
    assert "can run code" in str(err.value)
    assert not bad["marker"].exists(), f"{name} ran the code in the file"


@pytest.mark.parametrize("lab_name", list(LABS))
def test_a_checkpoint_of_another_model_is_refused_by_every_lab(lab_name, bad):
    path = _other_model(bad["root"], lab_name)
    with pytest.raises(CheckpointError) as err:
        runner.load(LABS[lab_name], path)
    _assert_course_message(err.value, path)
    assert f"is not the {lab_name} lab's" in str(err.value)
    other_lab = next(name for name in LABS if name != lab_name)
    with pytest.raises(CheckpointError, match=f"holds a model of the {lab_name} lab, not of the "
                                              f"{other_lab} lab"):
        runner.load(LABS[other_lab], path)


def test_maps_refuses_another_model(bad):
    path = _other_model(bad["root"], "long_range")   # an MNISTNet with Gaussian blocks
    with pytest.raises(CheckpointError) as err:
        maps.load_model("embedded_gaussian", path)
    _assert_course_message(err.value, path)
    assert "is not an MNISTNet with embedded_gaussian blocks" in str(err.value)


def test_the_loaders_still_load_a_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = MNISTNet("embedded_gaussian")
    path = save_checkpoint(tmp_path / "model.pt", net, lab="mnist", model="embedded_gaussian")
    for loaded in (runner.load(LABS["mnist"], tmp_path),
                   maps.load_model("embedded_gaussian", path)):
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                      net.state_dict().values()))
