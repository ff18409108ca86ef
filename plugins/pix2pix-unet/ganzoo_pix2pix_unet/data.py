"""Paired data for pix2pix: items ``{"image": A, "image_b": B}`` in [-1, 1] (docs/design.md batch keys).

- ``pix2pix.emoji``: ``emoji.pairs`` turned around: A = Symbola line art (black on white), B = the Noto colour emoji
  of the same code point (the core set stores Noto as ``images``, Symbola as ``images_b``).
- ``pix2pix.edges``: A = an edge map of the image (Sobel gradient magnitude of its luma, thresholded: black edges
  on white, as pix2pix's edges→shoes), B = the image. Derived from any registered image dataset (``source``).
- ``pix2pix.gray``: A = the luma (ITU-R 601), B = the colour image.
- ``pix2pix.lab``: colorization as pix2pix does it: A = L/50 − 1 (1 channel), B = ab/110 (2 channels).
- ``pix2pix.folder``: side-by-side AB images (A left, B right), read with the core converter ``from_pix2pix_ab``
  (``ganzoo data build pix2pix-ab`` writes the same pairs to HDF5, served by ``h5.file``).

Splits: ``split`` is passed to the source (emoji: ``train`` / ``test`` by a CRC of the code point, the same on every
machine), so a held-out split of the source is a held-out split of the pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

import ganzoo_core as gz
from ganzoo_core import validators as v
from ganzoo_core.data.convert import from_pix2pix_ab
from ganzoo_core.data.schema import BundleDataset, DataError
from ganzoo_pix2pix_unet.color import rgb_to_pix2pix

TASKS = ("emoji", "edges", "gray", "lab")
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's convert("L")


def luma(image: Tensor) -> Tensor:
    """(..., 3, H, W) → (..., 1, H, W); grey input passes through."""
    if image.shape[-3] == 1:
        return image
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(-3, keepdim=True)


def sobel_magnitude(grey: Tensor) -> Tensor:
    """|∇| of a (..., 1, H, W) image with 3×3 Sobel kernels (replicate padding), same shape."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=grey.dtype, device=grey.device)
    kernels = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    flat = grey.reshape(-1, 1, *grey.shape[-2:])  # (N, 1, H, W)
    grad = F.conv2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), kernels)  # (N, 2, H, W)
    return grad.square().sum(1, keepdim=True).sqrt().reshape(grey.shape)


def edge_map(image: Tensor, threshold: float = 0.5) -> Tensor:
    """Black edges on white in [-1, 1]: −1 where the Sobel magnitude of the luma (image in [-1, 1]) exceeds
    ``threshold`` (a step from black to white across one pixel gives 4), +1 elsewhere; (..., 1, H, W)."""
    edges = sobel_magnitude((luma(image) + 1.0) / 2.0) > threshold
    return 1.0 - 2.0 * edges.to(image.dtype)


def _channels(image: Tensor, channels: int | None) -> Tensor:
    if channels is None or image.shape[-3] == channels:
        return image
    if channels == 3 and image.shape[-3] == 1:
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).contiguous()
    if channels == 1:
        return luma(image)
    raise DataError(f"cannot give {image.shape[-3]}-channel images {channels} channels; use 1, 3 or None")


def make_pair(task: str, item: Mapping[str, Tensor], *, edge_threshold: float = 0.5,
              channels: int | None = None) -> dict[str, Tensor]:
    """The (A, B) pair of ``task`` from one source item (``image``, and ``image_b`` for ``emoji``)."""
    image = item["image"]
    if task == "emoji":
        if "image_b" not in item:
            raise DataError("task 'emoji' needs a paired source (emoji.pairs: Noto as image, Symbola as image_b)")
        a, b = item["image_b"], image
    elif task == "edges":
        a, b = edge_map(image, edge_threshold), image
    elif task == "gray":
        a, b = luma(image), image
    elif task == "lab":
        if image.shape[-3] != 3:
            raise DataError(f"task 'lab' needs RGB images, got {image.shape[-3]} channel(s)")
        a, b = rgb_to_pix2pix(image)
        return {"image": a, "image_b": b}  # 1 and 2 channels: never converted
    else:
        raise DataError(f"unknown pix2pix task {task!r}; tasks: {', '.join(TASKS)}")
    return {"image": _channels(a, channels), "image_b": b}


@attrs.frozen(kw_only=True)
class PairedCfg:
    task: str = attrs.field(default="emoji", validator=v.one_of(TASKS))
    source: str = "emoji.noto"  # any registered image dataset (emoji tasks: a paired one)
    source_kwargs: Mapping[str, Any] = attrs.field(factory=lambda: {"keywords": False}, converter=dict, hash=False)
    image_size: int | None = attrs.field(default=32, validator=v.optional(v.size))  # passed to the source; None: the source's own
    split: str = "all"  # passed to the source: "train" / "test" for emoji
    channels: int | None = attrs.field(default=3, validator=v.optional(v.one_of((1, 3))))  # of A (grey A repeated to RGB, for the
    # 3-channel default U-Net); None: as it comes
    edge_threshold: float = attrs.field(default=0.5, validator=v.non_negative)  # Sobel magnitude, luma in [0, 1]


class PairedDataset(Dataset[dict[str, Tensor]]):
    """(A, B) pairs derived item by item from a registered source dataset."""

    def __init__(self, cfg: PairedCfg) -> None:
        self.cfg = cfg
        kwargs = dict(cfg.source_kwargs)
        if cfg.image_size is not None:
            kwargs["image_size"] = cfg.image_size
        if cfg.split != "all":
            kwargs["split"] = cfg.split
        try:
            self.source = gz.create_dataset(cfg.source, **kwargs)
        except gz.DatasetUnavailableError as err:  # the source's own options go inside source_kwargs
            raise gz.DatasetUnavailableError(
                f"{err}; through {cfg.source!r} as a pix2pix source, give its options inside source_kwargs, e.g. "
                "--data-set \"source_kwargs={'keywords': False, 'noto_font': 'NotoColorEmoji.ttf'}\"") from err

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return make_pair(self.cfg.task, self.source[i], edge_threshold=self.cfg.edge_threshold,
                         channels=self.cfg.channels)


@attrs.frozen(kw_only=True)
class FolderCfg:
    root: str = ""  # a folder of AB images, or of train/ val/ test/ folders of them
    direction: str = attrs.field(default="AtoB", validator=v.one_of(("AtoB", "BtoA")))
    image_size: int | None = attrs.field(default=None, validator=v.optional(v.size))
    channels: int | None = attrs.field(default=None, validator=v.optional(v.one_of((1, 3))))
    split: str = "all"


def folder_dataset(cfg: FolderCfg) -> BundleDataset:
    """pix2pix side-by-side AB images (A left, B right) from a folder, as ``{"image": A, "image_b": B}``."""
    if not cfg.root:
        raise DataError("pix2pix.folder needs root=<folder of AB images> (e.g. --data-set root=data/facades)")
    bundle = from_pix2pix_ab(cfg.root, direction=cfg.direction, image_size=cfg.image_size, channels=cfg.channels)
    return BundleDataset(bundle, cfg.split, where=f"pix2pix.folder {cfg.root!r}")


_EMOJI = {"keywords": False}
DATASET_VARIANTS = {
    "emoji": PairedCfg(task="emoji", source="emoji.pairs", source_kwargs=_EMOJI),
    "edges": PairedCfg(task="edges", source="emoji.noto", source_kwargs=_EMOJI),
    "gray": PairedCfg(task="gray", source="emoji.noto", source_kwargs=_EMOJI),
    "lab": PairedCfg(task="lab", source="emoji.noto", source_kwargs=_EMOJI, channels=None),
}

gz.register_dataset("pix2pix", variants=DATASET_VARIANTS, default="emoji")(PairedDataset)
gz.register_dataset("pix2pix.folder", cfg=FolderCfg())(folder_dataset)
