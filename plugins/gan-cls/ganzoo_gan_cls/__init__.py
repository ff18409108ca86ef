"""ganzoo-gan-cls: GAN-CLS, GAN-INT and GAN-INT-CLS (Reed et al., ICML 2016) for ganzoo.

Importing this package registers the generators and discriminators ``gan_cls.64`` / ``gan_cls.32`` (official Torch
code) and ``gan_cls.port64`` / ``gan_cls.port32`` (the aelnouby PyTorch port), and the objectives
``gan_cls.{gan,cls,int,int_cls}`` (64×64), ``gan_cls.{gan,cls,int,int_cls}_32`` and ``gan_cls.port_{cls,int_cls}[_32]``.
Sampling grids are in ``ganzoo_gan_cls.sampling``, readers of the original HDF5 layouts in ``ganzoo_gan_cls.readers``.
"""

from ganzoo_gan_cls import evaluate, text
from ganzoo_gan_cls.baseline import ganzoo_bench_baselines as ganzoo_bench_baselines  # the official iteration (bench)
from ganzoo_gan_cls.model import (
    DiscriminatorCfg,
    GanClsObjective,
    GeneratorCfg,
    ObjectiveCfg,
    PortDiscriminator,
    PortGenerator,
    ReedDiscriminator,
    ReedGenerator,
)
from ganzoo_gan_cls.official import ganzoo_convert_checkpoint as ganzoo_convert_checkpoint

GANZOO_API_VERSION = "1.1"  # the ganzoo plugin API this plugin was written for

__all__ = [
    "DiscriminatorCfg", "GanClsObjective", "GeneratorCfg", "ObjectiveCfg", "PortDiscriminator", "PortGenerator",
    "ReedDiscriminator", "ReedGenerator", "evaluate", "text",
]
