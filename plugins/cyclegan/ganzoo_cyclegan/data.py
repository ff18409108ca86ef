"""Unpaired two-domain datasets: every item is ``{"image": an A image, "image_b": a B image}``.

- ``cyclegan.horse2zebra``: Animal-MNIST horses (A) and zebras (B), the paper's horse2zebra in miniature (core
  ``animal_mnist.*``, classes 7 and 9; train 900 + 900, test 100 + 100), resized to 32×32.
- ``cyclegan.emoji2line``: Noto Color Emoji (A) and Symbola line art (B), from the core ``emoji.noto`` /
  ``emoji.symbola`` datasets, 64×64.
- ``cyclegan.folder``: the reference ``trainA/ trainB/`` (``valA/ valB/ testA/ testB/``) folders, read with the core
  ``cyclegan`` converter (``ganzoo_core.data.convert.from_cyclegan``).
- ``cyclegan.h5``: a ganzoo HDF5 schema file with ``domains`` (A = 0, B = 1), as ``ganzoo data build cyclegan``
  writes it, read lazily.

Item ``i`` holds A image ``i mod |A|`` (the reference's ``index % A_size``) and B image ``perm[i mod |B|]`` of a
permutation of B seeded by ``seed``; the length is max(|A|, |B|). The reference draws the B index at random per
item instead; a fixed permutation keeps items a function of the index, so a resumed run and every DataLoader worker
see the same data. Which B image sits next to which A image does not matter to CycleGAN's losses (each term uses
one domain only); the engine's per-epoch shuffling decides which A and B images share a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.data.convert import from_cyclegan
from ganzoo_core.data.schema import BundleDataset, DataError, H5Cfg, H5Dataset, read_h5, take

SOURCES = ("horse2zebra", "emoji2line", "folder", "h5")
ANIMAL_HORSE, ANIMAL_ZEBRA = 7, 9  # indices in ganzoo_core.datasets.ANIMAL_CLASSES


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@attrs.frozen(kw_only=True)
class UnpairedCfg:
    source: str = attrs.field(default="horse2zebra", validator=v.one_of(SOURCES))
    split: str = "train"  # train / test (val too for folders and files that have it); "all": every image
    image_size: int | None = attrs.field(default=32, validator=v.optional(v.size))  # square resize; None keeps the
    # source's size
    channels: int | None = attrs.field(default=3, validator=v.optional(v.one_of((1, 3))))  # 1 or 3 (grey repeated,
    # colour averaged); None keeps each domain's
    root: str | None = attrs.field(default=None, converter=_opt_str)  # folder: the trainA/trainB root
    path: str | None = attrs.field(default=None, converter=_opt_str)  # h5: the schema file
    seed: int = attrs.field(default=0, validator=v.non_negative)  # the permutation of B


def fit_channels(image: Tensor, channels: int | None) -> Tensor:
    """C×H×W with 1 or 3 channels to ``channels``: grey repeated to RGB, RGB averaged to grey."""
    if channels is None or image.shape[0] == channels:
        return image
    return image.expand(3, -1, -1) if channels == 3 else image.mean(0, keepdim=True)


class UnpairedDataset(Dataset[dict[str, Tensor]]):
    """Two datasets of single images (items with an ``image`` key) served as unpaired A/B items (see above)."""

    def __init__(self, domain_a: Dataset, domain_b: Dataset, *, channels: int | None = 3, seed: int = 0,
                 where: str = "unpaired dataset") -> None:
        self.a, self.b, self.channels = domain_a, domain_b, channels
        n_a, n_b = len(domain_a), len(domain_b)  # type: ignore[arg-type]
        if n_a == 0 or n_b == 0:
            raise DataError(f"{where}: domain {'A' if n_a == 0 else 'B'} has no images")
        self.n_a, self.n_b = n_a, n_b
        self.perm_b = torch.randperm(n_b, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return max(self.n_a, self.n_b)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        image_a = self.a[i % self.n_a]["image"]
        image_b = self.b[int(self.perm_b[i % self.n_b])]["image"]
        return {"image": fit_channels(image_a, self.channels), "image_b": fit_channels(image_b, self.channels)}

    def domain(self, which: str) -> Tensor:
        """Every image of domain ``"A"`` or ``"B"`` once, in source order, as one (N, C, H, W) tensor."""
        data, n = (self.a, self.n_a) if which == "A" else (self.b, self.n_b)
        if which not in ("A", "B"):
            raise ValueError(f"domain must be 'A' or 'B', got {which!r}")
        return torch.stack([fit_channels(data[i]["image"], self.channels) for i in range(n)])


# -- sources ----------------------------------------------------------------------------------------------------------


def _horse2zebra(cfg: UnpairedCfg) -> tuple[Dataset, Dataset]:
    if cfg.split not in ("train", "test"):
        raise DataError(f"cyclegan.horse2zebra has splits 'train' and 'test', got {cfg.split!r}")
    name = f"animal_mnist.{cfg.split}"
    return (gz.create_dataset(name, classes=(ANIMAL_HORSE,), image_size=cfg.image_size),
            gz.create_dataset(name, classes=(ANIMAL_ZEBRA,), image_size=cfg.image_size))


def _emoji2line(cfg: UnpairedCfg) -> tuple[Dataset, Dataset]:
    size = 64 if cfg.image_size is None else cfg.image_size
    split = "all" if cfg.split == "all" else cfg.split
    return (gz.create_dataset("emoji.noto", split=split, image_size=size),
            gz.create_dataset("emoji.symbola", split=split, image_size=size))


def _folder(cfg: UnpairedCfg) -> tuple[Dataset, Dataset]:
    if cfg.root is None:
        raise DataError("dataset cyclegan.folder needs root=<folder with trainA/ and trainB/>")
    bundle = from_cyclegan(cfg.root, image_size=cfg.image_size, channels=cfg.channels)
    if cfg.split == "all":
        index = np.arange(len(bundle.images))
    elif cfg.split in bundle.splits:
        index = bundle.splits[cfg.split]
    else:
        raise DataError(f"{cfg.root!r} has no {cfg.split}A/ {cfg.split}B/ folders; it has {sorted(bundle.splits)}")
    domains = bundle.domains[index]
    return tuple(BundleDataset(take(bundle, index[domains == d]), where=f"{cfg.root} {'AB'[d]}")  # type: ignore[return-value]
                 for d in (0, 1))


def _h5(cfg: UnpairedCfg) -> tuple[Dataset, Dataset]:
    if cfg.path is None:
        raise DataError("dataset cyclegan.h5 needs path=<file.h5> (build one with 'ganzoo data build cyclegan')")
    with read_h5(cfg.path) as f:  # a DataError naming the file when it is missing, damaged or off the schema
        if "domains" not in f:
            raise DataError(f"{cfg.path!r} has no 'domains' array; an unpaired file marks each image A (0) or B (1): "
                            "build it with 'ganzoo data build cyclegan'")
        domains = f["domains"][()]
    split = None if cfg.split == "all" else cfg.split
    images = H5Dataset(H5Cfg(path=cfg.path, split=split, image_size=cfg.image_size, channels=cfg.channels))
    domains = domains[images.index]
    return tuple(Subset(images, np.flatnonzero(domains == d).tolist()) for d in (0, 1))  # type: ignore[return-value]


_SOURCES = {"horse2zebra": _horse2zebra, "emoji2line": _emoji2line, "folder": _folder, "h5": _h5}


def unpaired_dataset(cfg: UnpairedCfg) -> UnpairedDataset:
    """Unpaired domains A and B: ``image`` from A, ``image_b`` from an independently permuted B."""
    domain_a, domain_b = _SOURCES[cfg.source](cfg)
    return UnpairedDataset(domain_a, domain_b, channels=cfg.channels, seed=cfg.seed, where=f"cyclegan.{cfg.source}")


def _available(cfg: UnpairedCfg) -> bool:
    """A cheap check for 'ganzoo data list': the source is installed or named."""
    if cfg.source == "horse2zebra":
        return bool(gz.get_dataset("animal_mnist.train").available(gz.get_dataset_cfg("animal_mnist.train")))
    if cfg.source == "folder":
        return cfg.root is not None and Path(cfg.root).is_dir()
    if cfg.source == "h5":
        return cfg.path is not None and Path(cfg.path).is_file()
    return True  # emoji2line: the fonts are found only by building it


unpaired_dataset.available = _available  # type: ignore[attr-defined]  (read by 'ganzoo data list')

VARIANTS = {
    "horse2zebra": UnpairedCfg(source="horse2zebra", image_size=32),
    "emoji2line": UnpairedCfg(source="emoji2line", image_size=64),
    "folder": UnpairedCfg(source="folder", image_size=256),
    "h5": UnpairedCfg(source="h5", image_size=None),
}

gz.register_dataset("cyclegan", variants=VARIANTS, default="horse2zebra",
                    paper="Zhu et al., ICCV 2017, arXiv:1703.10593")(unpaired_dataset)
