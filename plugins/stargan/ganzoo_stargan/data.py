"""StarGAN's datasets: CelebA with selected attributes and the official split, built-in sets with chosen label
vectors, and two datasets joined for multi-dataset (mask vector) training.

- ``stargan.celeba``: ``list_attr_celeba.txt`` (read by the core's ``parse_celeba_attributes``) and the aligned
  images, read lazily; ``attributes`` picks the label columns in order (default: StarGAN's five); the split is the
  official one (rows shuffled with ``random.seed(1234)``, the first 1,999 are ``test``); images are the centred
  178×178 square resized to ``image_size`` (official CenterCrop(178) → Resize), flipped at random in ``train``.
- ``stargan.shapes`` (7 colours + size) / ``stargan.shapes_with_shape`` (7 colours + 4 shapes + size) /
  ``stargan.emoji``: the core's ``shapes.32`` / ``emoji.tones`` with ``attrs`` narrowed to the chosen attribute
  names (the full one-hot attributes stay under ``attrs_all``, for the judging classifier).
- ``stargan.joint``: the items of two registered datasets, each tagged ``dataset`` 0 or 1; dataset 1's labels are
  served as ``<a_key>``, dataset 2's as ``<b_key>_b``, and the other dataset's slot holds zeros.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.data.convert import _select, decode, fit, parse_celeba_attributes
from ganzoo_core.data.schema import DataError
from ganzoo_stargan.model import (
    CELEBA_ATTRIBUTES,
    EMOJI_ATTRIBUTES,
    MULTI_MODES,
    SHAPES_ATTRIBUTES,
    SHAPES_WITH_SHAPE_ATTRIBUTES,
)

SPLITS = ("train", "test", "all")


def _str_tuple(value: Sequence[str] | str) -> tuple[str, ...]:
    return tuple(a.strip() for a in value.split(",")) if isinstance(value, str) else tuple(str(a) for a in value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def stargan_split(n: int, test_size: int = 1999, seed: int = 1234) -> dict[str, np.ndarray]:
    """The official split of ``n`` attribute rows: shuffled with Python's ``random.seed(seed)``, the first
    ``test_size`` (official: ``(i + 1) < 2000``, i.e. 1,999) are the test set; both keep the shuffled order."""
    order = list(range(n))
    random.Random(seed).shuffle(order)  # the same permutation as random.seed(seed); random.shuffle(lines)
    return {"test": np.asarray(order[:test_size], np.int64), "train": np.asarray(order[test_size:], np.int64)}


# -- CelebA ----------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CelebACfg:
    root: str | None = attrs.field(default=None, converter=_opt_str)  # folder with list_attr_celeba.txt, or the file
    images_dir: str | None = attrs.field(default=None, converter=_opt_str)  # None: img_align_celeba beside it
    attributes: tuple[str, ...] = attrs.field(default=CELEBA_ATTRIBUTES, converter=_str_tuple)
    image_size: int = attrs.field(default=128, validator=attrs.validators.ge(8))
    split: str = attrs.field(default="train", validator=v.one_of(SPLITS))
    test_size: int = attrs.field(default=1999, validator=v.non_negative)
    flip: bool = True  # random horizontal flip (p = 0.5) in the train split, as the official loader
    limit: int | None = attrs.field(default=None, validator=v.optional(v.size))  # the first N rows of the attribute file only


def _celeba_files(cfg: CelebACfg) -> tuple[Path, Path]:
    if cfg.root is None:
        raise gz.DatasetUnavailableError("stargan.celeba needs root=<folder with list_attr_celeba.txt> (CelebA is "
                                         "not shipped: download it, then pass --data-set root=...)")
    base = Path(cfg.root).expanduser()
    attr = base if base.is_file() else next(
        (p for p in (base / "list_attr_celeba.txt", base / "Anno" / "list_attr_celeba.txt") if p.is_file()), None)
    if attr is None:
        raise gz.DatasetUnavailableError(f"no list_attr_celeba.txt at {str(base)!r} or {str(base / 'Anno')!r}")
    if cfg.images_dir is not None:
        images = Path(cfg.images_dir).expanduser()
    else:
        near = [b / s for b in (attr.parent, attr.parent.parent) for s in ("img_align_celeba", "Img/img_align_celeba",
                                                                             "images")]
        images = next((p for p in near if p.is_dir()), near[0])
    if not images.is_dir():
        raise DataError(f"CelebA images folder {str(images)!r} does not exist; pass images_dir=")
    return attr, images


class CelebADataset(Dataset[dict[str, Tensor]]):
    """CelebA faces with the selected attributes as ``attrs`` (float 0/1), read and resized image by image."""

    def __init__(self, cfg: CelebACfg) -> None:
        self.cfg = cfg
        attr_file, self.folder = _celeba_files(cfg)
        table = parse_celeba_attributes(attr_file)
        files = table.files[: cfg.limit]
        columns = _select(table.names, cfg.attributes)
        self.attribute_names = tuple(table.names[i] for i in columns)
        values = torch.from_numpy(table.values[: len(files), columns].astype(np.float32))  # (N, K) in {0, 1}
        index = np.arange(len(files)) if cfg.split == "all" else stargan_split(len(files), cfg.test_size)[cfg.split]
        self.files = [files[i] for i in index]
        self.attributes = values[torch.from_numpy(index)]
        missing = next((f for f in self.files[:1] if not (self.folder / f).is_file()), None)
        if missing is not None:
            raise DataError(f"CelebA image {str(self.folder / missing)!r} is missing; pass images_dir=")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        rgb = fit(decode(self.folder / self.files[i], (255, 255, 255)), self.cfg.image_size)  # centred square
        image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div(127.5).sub(1.0)
        if self.cfg.split == "train" and self.cfg.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return {"image": image, "attrs": self.attributes[i]}


@gz.register_dataset("stargan.celeba", cfg=CelebACfg())
def celeba(cfg: CelebACfg) -> CelebADataset:
    """CelebA with StarGAN's selected attributes and split (list_attr_celeba.txt + aligned images, read lazily)."""
    return CelebADataset(cfg)


def _celeba_available(cfg: CelebACfg) -> bool:
    try:
        _celeba_files(cfg)
    except (gz.DatasetUnavailableError, DataError):
        return False
    return True


celeba.available = _celeba_available  # type: ignore[attr-defined]  (read by 'ganzoo data list')


# -- built-in sets with a chosen label vector ------------------------------------------------------------------------


class SelectedAttributes(Dataset[dict[str, Tensor]]):
    """A dataset whose ``attrs`` are narrowed to ``names`` (in that order); the full ``attrs`` stay as ``attrs_all``."""

    def __init__(self, base: Any, names: Sequence[str], where: str) -> None:
        known = list(getattr(base, "attribute_names", ()))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DataError(f"{where}: unknown attribute(s) {unknown}; valid: {', '.join(known)}")
        self.base = base
        self.attribute_names = tuple(names)
        self.columns = torch.tensor([known.index(n) for n in names])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = dict(self.base[i])
        item["attrs_all"] = item["attrs"]
        item["attrs"] = item["attrs"][self.columns]  # (K,) the StarGAN label vector
        return item


@attrs.frozen(kw_only=True)
class ShapesCfg:
    attributes: tuple[str, ...] = attrs.field(default=SHAPES_ATTRIBUTES, converter=_str_tuple)
    n: int = attrs.field(default=10_000, validator=v.size)  # images in train + test (shapes.32's ``n``; test: i % 10 == 9)
    image_size: int = attrs.field(default=32, validator=attrs.validators.ge(16))  # shapes.32 draws at 16 or more
    split: str = attrs.field(default="train", validator=v.one_of(SPLITS))
    seed: int = attrs.field(default=0, validator=v.non_negative)  # numpy seeds are non-negative


@gz.register_dataset("stargan.shapes", cfg=ShapesCfg())
def shapes(cfg: ShapesCfg) -> SelectedAttributes:
    """Captioned shapes with StarGAN labels: 7 colours (one-hot) + size=large by default; full attributes kept."""
    base = gz.create_dataset("shapes.32", n=cfg.n, image_size=cfg.image_size, seed=cfg.seed, split=cfg.split)
    return SelectedAttributes(base, cfg.attributes, "stargan.shapes")


gz.register_dataset("stargan.shapes_with_shape", cfg=ShapesCfg(attributes=SHAPES_WITH_SHAPE_ATTRIBUTES),
                    summary="Captioned shapes with StarGAN labels: 7 colours (one-hot), 4 shapes (one-hot) + "
                            "size=large; full attributes kept")(shapes)


@attrs.frozen(kw_only=True)
class EmojiCfg:
    attributes: tuple[str, ...] = attrs.field(default=EMOJI_ATTRIBUTES, converter=_str_tuple)
    image_size: int = attrs.field(default=32, validator=attrs.validators.ge(8))  # emoji.tones renders at 8 or more
    split: str = attrs.field(default="train", validator=v.one_of(SPLITS))


@gz.register_dataset("stargan.emoji", cfg=EmojiCfg())
def emoji(cfg: EmojiCfg) -> SelectedAttributes:
    """Emoji skin tones (6, one-hot) + gender man / woman as StarGAN labels; ``label`` is the tone index."""
    base = gz.create_dataset("emoji.tones", image_size=cfg.image_size, split=cfg.split)
    return SelectedAttributes(base, cfg.attributes, "stargan.emoji")


# -- two datasets for the mask vector -----------------------------------------------------------------------------


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class JointCfg:
    a: str = "stargan.celeba"  # dataset 1 (binary attributes in the paper: CelebA)
    a_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict, hash=False)
    a_key: str = "attrs"  # the key of its labels, served under the same name
    b: str = "h5.file"  # dataset 2 (categorical domains: RaFD as `ganzoo data build folder` of expression folders)
    b_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict, hash=False)
    b_key: str = "label"  # served as "<b_key>_b"
    image_size: int | None = attrs.field(default=None, validator=v.optional(v.size))  # passed to both datasets when given
    # "alternate": each training step's batch from one dataset, a then b in turn (the official train_multi);
    # "mixed": batches drawn from both at once (ours)
    batches: str = attrs.field(default="alternate", validator=v.one_of(MULTI_MODES))


class JointDataset(Dataset[dict[str, Tensor]]):
    """Dataset 1's items then dataset 2's, each as ``{image, <a_key>, <b_key>_b, dataset}`` (zeros in the other's
    label slot), so the objective builds each image's mask vector. With ``batches="alternate"`` it exposes
    ``step_groups`` (the two sizes), so the engine draws each step's batch from one dataset in turn."""

    def __init__(self, cfg: JointCfg) -> None:
        size = {} if cfg.image_size is None else {"image_size": cfg.image_size}
        self.a = gz.create_dataset(cfg.a, **{**size, **cfg.a_kwargs})
        self.b = gz.create_dataset(cfg.b, **{**size, **cfg.b_kwargs})
        self.cfg = cfg
        first_a, first_b = self.a[0], self.b[0]
        for name, item, key in ((cfg.a, first_a, cfg.a_key), (cfg.b, first_b, cfg.b_key)):
            if key not in item:
                raise DataError(f"stargan.joint: dataset {name} serves no {key!r} (it has {sorted(item)})")
        if first_a["image"].shape != first_b["image"].shape:
            raise DataError(f"stargan.joint: {cfg.a} gives images {tuple(first_a['image'].shape)} but {cfg.b} "
                            f"{tuple(first_b['image'].shape)}; pass image_size= (and the same channels)")
        self.zero_a = torch.zeros_like(torch.as_tensor(first_a[cfg.a_key]))
        self.zero_b = torch.zeros_like(torch.as_tensor(first_b[cfg.b_key]))

    def __len__(self) -> int:
        return len(self.a) + len(self.b)

    @property
    def step_groups(self) -> tuple[int, int] | None:
        """(len(a), len(b)) when batches alternate between the datasets, else None (batches mix them)."""
        return (len(self.a), len(self.b)) if self.cfg.batches == "alternate" else None

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        cfg = self.cfg
        if i < len(self.a):
            item = self.a[i]
            return {"image": item["image"], cfg.a_key: item[cfg.a_key], f"{cfg.b_key}_b": self.zero_b,
                    "dataset": torch.tensor(0)}
        item = self.b[i - len(self.a)]
        return {"image": item["image"], cfg.a_key: self.zero_a, f"{cfg.b_key}_b": torch.as_tensor(item[cfg.b_key]),
                "dataset": torch.tensor(1)}


@gz.register_dataset("stargan.joint", cfg=JointCfg())
def joint(cfg: JointCfg) -> JointDataset:
    """Two datasets with different label sets in one (a ``dataset`` id per item), for mask-vector training."""
    return JointDataset(cfg)
