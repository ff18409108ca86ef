"""Built-in datasets: real loaders tested on small files written here, plus the installed data when present."""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import ganzoo_core as gz
from ganzoo_core.datasets import animal_split, read_idx


def write_idx(path: Path, array: np.ndarray, *, gz_compress: bool = True) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz_compress else raw)
    return path


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return tmp_path


def test_fashion_mnist_from_idx_files(fashion_root: Path) -> None:
    ds = gz.create_dataset("fashion_mnist.train", root=str(fashion_root))
    item = ds[0]
    assert len(ds) == 30 and item["image"].shape == (1, 28, 28) and item["label"].dtype == torch.int64
    raw = read_idx(fashion_root / "train-images-idx3-ubyte.gz")[0]
    assert torch.allclose(item["image"][0], torch.from_numpy(raw).float() / 127.5 - 1)
    test = gz.create_dataset("fashion_mnist.test", root=str(fashion_root), classes=[3, 4], image_size=32, channels=3)
    assert len(test) == 2 and test[0]["image"].shape == (3, 32, 32)
    assert set(test.labels.tolist()) == {3, 4}
    assert -1 <= float(test[0]["image"].min()) and float(test[0]["image"].max()) <= 1


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "a-idx", np.zeros((4, 2, 2), np.uint8), gz_compress=False)
    assert read_idx(good).shape == (4, 2, 2)
    cut = tmp_path / "cut-idx"
    cut.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(gz.GanzooError, match="cut-idx.*truncated"):
        read_idx(cut)
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x89PNG....")
    with pytest.raises(gz.GanzooError, match="bad-idx.*not an IDX file"):
        read_idx(bad)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gzip.compress(good.read_bytes())[:20])
    with pytest.raises(gz.GanzooError, match="broken.gz"):
        read_idx(broken_gz)


def test_missing_source_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(gz.DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        gz.create_dataset("fashion_mnist.train", root=str(tmp_path))


def write_animal(root: Path, n_per_class: int = 12) -> Path:
    labels = np.repeat(np.arange(10), n_per_class).astype(np.int64)
    images = np.random.default_rng(1).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    for name, array in (("animal_data_version_3.gz", images), ("animal_label_version_3.gz", labels)):
        with gzip.open(root / name, "wb") as handle:
            pickle.dump(array, handle, protocol=4)
    return root


def test_animal_mnist_from_package_format_files(tmp_path: Path) -> None:
    root = write_animal(tmp_path)
    train = gz.create_dataset("animal_mnist.train", root=str(root))
    test = gz.create_dataset("animal_mnist", split="test", root=str(root))
    assert (len(train), len(test)) == (110, 10)  # 10% of each class of 12, rounded
    assert np.bincount(test.labels.numpy()).tolist() == [1] * 10
    horses = gz.create_dataset("animal_mnist.train", root=str(root), classes=[7])
    assert set(horses.labels.tolist()) == {7} and horses.class_names[7] == "horse"


def test_split_is_stratified_disjoint_and_fixed() -> None:
    labels = np.repeat(np.arange(10), 1000)
    train, test = animal_split(labels, "train"), animal_split(labels, "test")
    assert len(test) == 1000 and len(train) == 9000 and not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [100] * 10
    assert np.array_equal(test, animal_split(labels, "test"))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_animal_files_never_unpickle_code(tmp_path: Path) -> None:
    write_animal(tmp_path)
    with gzip.open(tmp_path / "animal_label_version_3.gz", "wb") as handle:
        pickle.dump(_Evil(), handle)
    with pytest.raises(gz.GanzooError, match="refusing to load posix.system|refusing to load os.system"):
        gz.create_dataset("animal_mnist.train", root=str(tmp_path))


@pytest.mark.parametrize(("name", "option", "value", "message"), [
    ("animal_mnist.train", "channels", 2, r"'channels' must be in \(1, 3\).*\b2\b"),
    ("fashion_mnist.test", "channels", 0, r"'channels' must be in \(1, 3\).*\b0\b"),
    ("h5.file", "channels", 2, r"'channels' must be in \(1, 3\).*\b2\b"),
    ("fashion_mnist.test", "split", "val", r"'split' must be in \('train', 'test'\).*'val'"),
    ("animal_mnist.test", "limit", 0, r"'limit' must be >= 1: 0"),
    ("animal_mnist.test", "image_size", 2, r"'image_size' must be >= 4: 2"),
    ("animal_mnist.test", "classes", (1, -2), r"'classes' must be >= 0: -2"),
    ("shapes.32", "seed", -1, r"'seed' must be >= 0: -1"),
], ids=lambda v: str(v))
def test_bad_dataset_options_name_the_value_and_what_is_allowed(name: str, option: str, value: object,
                                                                 message: str) -> None:
    with pytest.raises(gz.ConfigError, match=message):
        gz.create_dataset(name, **{option: value})


def test_classes_the_dataset_does_not_have_are_an_error(fashion_root: Path) -> None:
    with pytest.raises(gz.GanzooError, match=r"classes \[10, 12\] do not exist: this dataset's labels are 0\.\.9 "
                                             r"\(t-shirt/top, trouser"):
        gz.create_dataset("fashion_mnist.test", root=str(fashion_root), classes=(1, 10, 12))
    one = gz.create_dataset("fashion_mnist.test", root=str(fashion_root), classes=3)  # --data-set classes=3
    assert one.cfg.classes == (3,) and set(one.labels.tolist()) == {3}


@pytest.mark.skipif(importlib.util.find_spec("animal_mnist") is None, reason="needs the animal-mnist package")
def test_installed_animal_mnist() -> None:
    train = gz.create_dataset("animal_mnist.train")
    test = gz.create_dataset("animal_mnist.test")
    assert (len(train), len(test)) == (9000, 1000)
    assert np.bincount(test.labels.numpy()).tolist() == [100] * 10
    assert float(train.images.float().mean()) > 10  # silhouettes, not an empty array


def _fashion_installed() -> bool:
    from ganzoo_core._debian import debian_files

    return any(p.name == "train-images-idx3-ubyte.gz" for p in debian_files("dataset-fashion-mnist"))


@pytest.mark.skipif(not _fashion_installed(), reason="needs the Debian package dataset-fashion-mnist")
def test_installed_fashion_mnist() -> None:
    train, test = gz.create_dataset("fashion_mnist.train"), gz.create_dataset("fashion_mnist.test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert np.bincount(test.labels.numpy()).tolist() == [1000] * 10
    assert train.class_names[9] == "ankle boot" and train[0]["image"].shape == (1, 28, 28)
