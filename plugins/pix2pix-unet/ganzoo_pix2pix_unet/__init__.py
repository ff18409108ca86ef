"""ganzoo-pix2pix-unet: pix2pix (Isola et al., CVPR 2017) for ganzoo.

Importing this package registers the U-Net generators ``pix2pix.unet_*``, the discriminators ``pix2pix.patch70`` /
``patch16`` / ``patch286`` / ``pixel`` (and small CPU variants), the L1 + cGAN objectives ``pix2pix.*`` and the
paired datasets ``pix2pix.emoji`` / ``edges`` / ``gray`` / ``lab`` / ``folder``; ``color`` holds the torch sRGB ↔ Lab
conversion; ``baseline`` holds the authors' PyTorch training iteration for ``ganzoo bench models --baseline official``.
"""

from ganzoo_pix2pix_unet import data  # noqa: F401  (registers the datasets)
from ganzoo_pix2pix_unet.baseline import ganzoo_bench_baselines
from ganzoo_pix2pix_unet.color import lab_to_rgb, pix2pix_to_rgb, rgb_to_lab, rgb_to_pix2pix
from ganzoo_pix2pix_unet.model import (
    ObjectiveCfg,
    PatchCfg,
    PatchDiscriminator,
    Pix2pixObjective,
    UnetCfg,
    UnetGenerator,
    convert_junyanz_unet,
    ganzoo_convert_checkpoint,
)

GANZOO_API_VERSION = "1.1"  # the ganzoo plugin API this plugin was written for (1.1: ganzoo_bench_baselines)

__all__ = [
    "ObjectiveCfg", "PatchCfg", "PatchDiscriminator", "Pix2pixObjective", "UnetCfg", "UnetGenerator",
    "convert_junyanz_unet", "ganzoo_bench_baselines", "ganzoo_convert_checkpoint", "lab_to_rgb", "pix2pix_to_rgb", "rgb_to_lab",
    "rgb_to_pix2pix",
]
