"""sRGB ↔ CIE L*a*b* (D65, 2° observer) in torch, and pix2pix's colorization scaling.

The same constants and branch points as scikit-image's ``rgb2lab`` / ``lab2rgb`` (which pix2pix's PyTorch port calls
and whose maths affinelayer's TensorFlow port writes out): sRGB companding, the sRGB → XYZ matrix of
``skimage.color.xyz_from_rgb``, the D65 white ``(0.95047, 1.0, 1.08883)`` and the CIE f(t) with its linear toe below
``(6/29)³``. Everything is element-wise torch, so it is differentiable and runs on any device and dtype; images are
``(..., 3, H, W)`` with channels on dim -3.

pix2pix's colorization task scales the channels to about [-1, 1]: ``A = L/50 − 1`` (input, 1 channel) and
``B = ab/110`` (target, 2 channels).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganzoo_core.errors import ShapeError

XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423),
                (0.212671, 0.715160, 0.072169),
                (0.019334, 0.119193, 0.950227))
WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPS = 0.008856  # (6/29)³, where f(t) switches from the cube root to its linear toe
_KAPPA = 7.787  # slope of the toe, (29/6)²/3
L_SCALE, AB_SCALE = 50.0, 110.0  # pix2pix: A = L/50 − 1, B = ab/110


def _check(image: Tensor, what: str) -> None:
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ShapeError(f"{what} expects images of shape (..., 3, H, W), got {tuple(image.shape)}")


def _matmul(matrix: Tensor, image: Tensor) -> Tensor:
    return torch.einsum("ij,...jhw->...ihw", matrix, image)  # 3×3 matrix applied to every pixel's channel vector


def _matrix(image: Tensor) -> Tensor:
    return torch.tensor(XYZ_FROM_RGB, dtype=image.dtype, device=image.device)


def _white(image: Tensor) -> Tensor:
    return torch.tensor(WHITE_D65, dtype=image.dtype, device=image.device).view(3, 1, 1)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] → L*a*b* (L in [0, 100], a and b about [-110, 110]), as ``skimage.color.rgb2lab``."""
    _check(rgb, "rgb_to_lab")
    linear = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _matmul(_matrix(rgb), linear) / _white(rgb)
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS) ** (1.0 / 3.0), _KAPPA * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """L*a*b* → sRGB clipped to [0, 1], as ``skimage.color.lab2rgb`` (which also clips, and sets f(z) < 0 to 0)."""
    _check(lab, "lab_to_rgb")
    lightness, a, b = lab.unbind(-3)
    fy = (lightness + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0.0)], dim=-3)
    xyz = torch.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / _KAPPA) * _white(lab)
    linear = _matmul(torch.linalg.inv(_matrix(lab)), xyz)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def rgb_to_pix2pix(image: Tensor) -> tuple[Tensor, Tensor]:
    """An RGB image in [-1, 1] → (A = L/50 − 1, 1 channel; B = ab/110, 2 channels), the colorization pair."""
    lab = rgb_to_lab((image + 1.0) / 2.0)
    return lab[..., :1, :, :] / L_SCALE - 1.0, lab[..., 1:, :, :] / AB_SCALE


def pix2pix_to_rgb(a: Tensor, b: Tensor) -> Tensor:
    """(A = L/50 − 1, B = ab/110) → the RGB image in [-1, 1]: puts a predicted ``b`` back with its input ``a``."""
    if a.shape[-3] != 1 or b.shape[-3] != 2 or a.shape[-2:] != b.shape[-2:]:
        raise ShapeError(f"pix2pix_to_rgb expects A of shape (..., 1, H, W) and B of (..., 2, H, W), got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    lab = torch.cat([(a + 1.0) * L_SCALE, b * AB_SCALE], dim=-3)  # (..., 1+2, H, W)
    return lab_to_rgb(lab) * 2.0 - 1.0
