"""Built-in plugin: small real image datasets that install offline, as registered ``dataset`` entries.

- ``animal_mnist.train`` / ``.test``: 10,000 28×28 silhouettes of 10 animals (``pip install --no-deps animal-mnist``),
  split 9,000 / 1,000 by a fixed stratified permutation (10%, 100 test images per class).
- ``fashion_mnist.train`` / ``.test``: the 60,000 / 10,000 28×28 images of the Debian package
  ``dataset-fashion-mnist`` (original IDX files): from ``root``, else the installed package (``dpkg -L``), else the
  folder ``ganzoo data fetch fashion_mnist`` unpacks it into (no root needed; ``ganzoo_core.data.fetch``).

Every dataset yields ``{"image": float32 C×H×W in [-1, 1], "label": int64}``; ``image_size`` resizes, ``channels``
(1 or 3) repeats grey to RGB, ``classes`` keeps some labels, ``limit`` keeps the first N, ``root`` points at the
source files when they are not where the package puts them.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ganzoo_core import validators as v
from ganzoo_core._debian import debian_files
from ganzoo_core._registry import register_dataset
from ganzoo_core.data.fetch import fetch_command, fetched_files, searched
from ganzoo_core.data.schema import ArrayBundle
from ganzoo_core.errors import DatasetUnavailableError, GanzooError

GANZOO_API_VERSION = "1.0"

ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)


def _opt_int_tuple(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, int) else tuple(int(v) for v in value)  # classes=3 means (3,)


_OPT_SIZE = attrs.validators.optional(attrs.validators.ge(4))  # an image side to resize to; None keeps the source's


@attrs.frozen(kw_only=True)
class ImageDatasetCfg:
    split: str = attrs.field(default="train", validator=attrs.validators.in_(("train", "test")))  # "train" or "test"
    root: str | None = None  # folder with the source files; None: where the installed package puts them
    image_size: int | None = attrs.field(default=None, validator=_OPT_SIZE)  # resize (bilinear, antialiased) to
    # this square size; None keeps 28
    channels: int = attrs.field(default=1, validator=attrs.validators.in_((1, 3)))  # 1 (grey) or 3 (grey repeated to RGB)
    classes: tuple[int, ...] | None = attrs.field(default=None, converter=_opt_int_tuple,
                                                  validator=v.optional(v.each(v.non_negative)))  # keep only these labels
    limit: int | None = attrs.field(default=None, validator=v.optional(v.size))  # keep the first N images after filtering


class ImageArrayDataset(Dataset[dict[str, Tensor]]):
    """Images held in memory as uint8, served as float tensors in [-1, 1] with their labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], cfg: ImageDatasetCfg) -> None:
        if images.ndim == 3:
            images = images[:, None]  # (N, H, W) -> (N, 1, H, W)
        elif images.ndim == 4 and images.shape[-1] in (1, 3):
            images = images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        if len(images) != len(labels):
            raise GanzooError(f"{len(images)} images but {len(labels)} labels; the source files do not belong together")
        unknown = sorted(set(cfg.classes or ()) - set(range(len(class_names))))
        if unknown:
            raise GanzooError(f"classes {unknown} do not exist: this dataset's labels are 0..{len(class_names) - 1} "
                              f"({', '.join(class_names)})")
        keep = np.ones(len(labels), bool) if cfg.classes is None else np.isin(labels, cfg.classes)
        index = np.flatnonzero(keep)[: cfg.limit]
        self.images = torch.from_numpy(np.ascontiguousarray(images[index]))  # (N, C, H, W) uint8
        self.labels = torch.from_numpy(labels[index].astype(np.int64))
        self.class_names = tuple(class_names)
        self.cfg = cfg
        if len(self.images) == 0:
            raise GanzooError(f"no images left after filtering with classes={cfg.classes}, limit={cfg.limit}")
        if cfg.image_size is not None and cfg.image_size != self.images.shape[-1]:
            self.images = _resize_uint8(self.images, cfg.image_size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        image = self.images[i].float().div(127.5).sub(1.0)  # uint8 -> [-1, 1]
        if self.cfg.channels == 3 and image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        return {"image": image, "label": self.labels[i]}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.cfg.channels, *self.images.shape[-2:])

    def bundle(self) -> ArrayBundle:
        """The images (as stored, before channel expansion) and labels, for ``ganzoo data build``."""
        images = self.images.permute(0, 2, 3, 1).numpy()  # (N, C, H, W) → (N, H, W, C)
        return ArrayBundle(images=images, labels=self.labels.numpy(), label_names=self.class_names)


def _resize_uint8(images: Tensor, size: int) -> Tensor:
    out = [F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
           for chunk in images.split(1024)]
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8)


# -- IDX files (MNIST family) ---------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not), checking its header against its size."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise GanzooError(f"cannot read IDX file {str(path)!r}: {err} (truncated download?)") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise GanzooError(f"{str(path)!r} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise GanzooError(
            f"IDX file {str(path)!r} has {len(raw)} bytes but its header {dims} needs {expected}; it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims)


def _pick(candidates: Sequence[Path], names: Sequence[str]) -> dict[str, Path]:
    """``{name: file}`` of the first file of ``candidates`` named ``name`` or ``name.gz``, for every one of
    ``names``; empty unless all are there."""
    found: dict[str, Path] = {}
    for p in candidates:
        key = p.name.removesuffix(".gz")
        if key in names and key not in found and p.is_file():
            found[key] = p
    return found if all(n in found for n in names) else {}


def _find(root: str | None, names: Sequence[str], package: str, fetched: str) -> dict[str, Path]:
    """The files ``names`` (or ``.gz``) in ``root``; without ``root``, those of the installed Debian ``package``,
    else those under the folder ``ganzoo data fetch <fetched>`` fills."""
    if root is not None:
        return _pick([*(Path(root) / n for n in names), *(Path(root) / (n + ".gz") for n in names)], names)
    return _pick(debian_files(package), names) or _pick(fetched_files(fetched), names)


_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@register_dataset(
    "fashion_mnist", variants={"train": ImageDatasetCfg(split="train"), "test": ImageDatasetCfg(split="test")},
    paper="Xiao et al. 2017, arXiv:1708.07747",
)
def fashion_mnist(cfg: ImageDatasetCfg) -> ImageArrayDataset:
    """Fashion-MNIST: 70,000 28×28 greyscale clothing images in 10 classes (Debian dataset-fashion-mnist)."""
    if cfg.split not in _FASHION_FILES:
        raise GanzooError(f"fashion_mnist split must be 'train' or 'test', got {cfg.split!r}")
    names = _FASHION_FILES[cfg.split]
    files = _find(cfg.root, names, "dataset-fashion-mnist", "fashion_mnist")
    if not files:
        where = (f"in {cfg.root!r}" if cfg.root else
                 f"in the Debian package dataset-fashion-mnist or in {searched('fashion_mnist')}")
        raise DatasetUnavailableError(
            f"Fashion-MNIST files {list(names)} not found {where}; fetch them with '{fetch_command('fashion_mnist')}' "
            "(no root needed), install them with 'sudo apt-get install dataset-fashion-mnist', or pass "
            "root=<folder with the IDX files>"
        )
    images, labels = read_idx(files[names[0]]), read_idx(files[names[1]])
    return ImageArrayDataset(images, labels, FASHION_CLASSES, cfg)


def _fashion_available(cfg: ImageDatasetCfg) -> bool:
    return bool(_find(cfg.root, _FASHION_FILES.get(cfg.split, ()), "dataset-fashion-mnist", "fashion_mnist"))


fashion_mnist.available = _fashion_available  # type: ignore[attr-defined]  (read by 'ganzoo data list')


# -- Animal-MNIST ---------------------------------------------------------------------------------------------------

_ANIMAL_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: these files are pickles, and pickles can run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def load_array_pickle(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as handle:
            array = _ArrayUnpickler(io.BytesIO(handle.read())).load()
    except (OSError, EOFError, pickle.UnpicklingError) as err:
        raise GanzooError(f"cannot read {str(path)!r}: {err} (truncated or not a numpy pickle)") from err
    if not isinstance(array, np.ndarray):
        raise GanzooError(f"{str(path)!r} holds a {type(array).__name__}, expected a numpy array")
    return array


def _animal_dir(root: str | None) -> Path:
    if root is not None:
        return Path(root)
    try:
        return Path(str(importlib.resources.files("animal_mnist") / "data" / "Animal_MNIST"))
    except ModuleNotFoundError:
        raise DatasetUnavailableError(
            "Animal-MNIST is not installed; install it with 'pip install --no-deps animal-mnist' "
            "(--no-deps: its metadata asks for tensorflow, which the data does not need) or pass root=<folder>"
        ) from None


def animal_split(labels: np.ndarray, split: str, test_fraction: float = 0.1) -> np.ndarray:
    """Indices of a fixed stratified split: per class, the first 10% of a seeded permutation are the test set."""
    rng = np.random.default_rng(20161119)  # fixed forever: changing it changes every reported number
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    test = np.concatenate([idx[: max(1, round(len(idx) * test_fraction))] for idx in per_class])
    mask = np.zeros(len(labels), bool)
    mask[test] = True
    return np.flatnonzero(mask if split == "test" else ~mask)


@register_dataset(
    "animal_mnist", variants={"train": ImageDatasetCfg(split="train"), "test": ImageDatasetCfg(split="test")},
)
def animal_mnist(cfg: ImageDatasetCfg) -> ImageArrayDataset:
    """Animal-MNIST: 10,000 28×28 animal silhouettes, 10 classes (bear ... zebra), from PyPI animal-mnist."""
    if cfg.split not in ("train", "test"):
        raise GanzooError(f"animal_mnist split must be 'train' or 'test', got {cfg.split!r}")
    folder = _animal_dir(cfg.root)
    paths = [folder / n for n in _ANIMAL_FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetUnavailableError(f"Animal-MNIST files not found: {missing}")
    images, labels = load_array_pickle(paths[0]), load_array_pickle(paths[1])
    if images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise GanzooError(f"{paths[0]} holds {images.dtype} images of shape {images.shape[1:]}, expected uint8 28×28")
    index = animal_split(labels, cfg.split)
    return ImageArrayDataset(images[index], labels[index], ANIMAL_CLASSES, cfg)


def _animal_available(cfg: ImageDatasetCfg) -> bool:
    try:
        folder = _animal_dir(cfg.root)
    except DatasetUnavailableError:
        return False
    return all((folder / n).is_file() for n in _ANIMAL_FILES)


animal_mnist.available = _animal_available  # type: ignore[attr-defined]
