"""Built-in plugin: the adversarial losses, as ``d_real`` / ``d_fake`` / ``g_fake`` terms (docs/design.md)."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo_core import validators as v
from ganzoo_core._registry import register_loss

GANZOO_API_VERSION = "1.0"


@attrs.frozen(kw_only=True)
class BCECfg:
    real_label: float = attrs.field(default=1.0, validator=[v.positive, attrs.validators.le(1.0)])  # 0.9
    # gives one-sided label smoothing (used by some GAN-CLS ports, by no original)


@register_loss("gan.bce", cfg=BCECfg(), default=True, paper="Goodfellow et al. 2014, arXiv:1406.2661")
class BCELoss:
    """Binary cross-entropy on logits with the non-saturating generator loss (DCGAN, GAN-CLS, StackGAN, pix2pix)."""

    def __init__(self, cfg: BCECfg = BCECfg()) -> None:
        self.cfg = cfg

    def d_real(self, logits: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, self.cfg.real_label))

    def d_fake(self, logits: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))

    def g_fake(self, logits: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


@register_loss("gan.lsgan", paper="Mao et al. 2017, arXiv:1611.04076")
class LSGANLoss:
    """Least squares: D pushes real logits to 1 and fake to 0, G pushes fake to 1 (CycleGAN)."""

    def d_real(self, logits: Tensor) -> Tensor:
        return F.mse_loss(logits, torch.ones_like(logits))

    def d_fake(self, logits: Tensor) -> Tensor:
        return F.mse_loss(logits, torch.zeros_like(logits))

    def g_fake(self, logits: Tensor) -> Tensor:
        return F.mse_loss(logits, torch.ones_like(logits))


@register_loss("gan.wgan", paper="Arjovsky et al. 2017, arXiv:1701.07875")
class WassersteinLoss:
    """Wasserstein critic loss (StarGAN, with a gradient penalty added by the objective)."""

    def d_real(self, logits: Tensor) -> Tensor:
        return -logits.mean()

    def d_fake(self, logits: Tensor) -> Tensor:
        return logits.mean()

    def g_fake(self, logits: Tensor) -> Tensor:
        return -logits.mean()


@register_loss("gan.hinge", paper="Lim & Ye 2017, arXiv:1705.02894")
class HingeLoss:
    """Hinge loss for D, the critic's mean for G."""

    def d_real(self, logits: Tensor) -> Tensor:
        return F.relu(1.0 - logits).mean()

    def d_fake(self, logits: Tensor) -> Tensor:
        return F.relu(1.0 + logits).mean()

    def g_fake(self, logits: Tensor) -> Tensor:
        return -logits.mean()
