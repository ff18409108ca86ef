"""Image grids as PNG files (no torchvision needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganzoo_core.checkpoints import atomic_path
from ganzoo_core.errors import ShapeError


def to_pil(image: Tensor) -> Image.Image:
    """One ``C×H×W`` image in [-1, 1] (C = 1 or 3) as a PIL image ("L" or "RGB"), rounded as ``make_grid`` rounds."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ShapeError(f"expected an image C×H×W with C = 1 or 3, got shape {tuple(image.shape)}")
    array = image.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(array[..., 0].numpy() if array.shape[-1] == 1 else array.numpy())


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile ``B×C×H×W`` images in [-1, 1] into one ``H'×W'×C`` uint8 array (C = 1 or 3), ``nrow`` per row."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ShapeError(f"expected images B×C×H×W with C = 1 or 3, got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    pixels = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5)
    for i in range(b):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top: top + h, left: left + w] = pixels[i]
    return grid.round().to(torch.uint8).permute(1, 2, 0).numpy()  # (C, H', W') -> (H', W', C)


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, *, overwrite: bool = True) -> Path:
    """Write ``make_grid(images)`` as a PNG, atomically; refuses a ``path`` that is not a regular file, and an
    existing one when ``overwrite`` is False (the ``ganzoo`` commands pass their ``--overwrite``)."""
    array = make_grid(images, nrow)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    with atomic_path(path, overwrite=overwrite, what="image") as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
