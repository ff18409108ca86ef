"""ganzoo-stargan: StarGAN generator, discriminator, objective and datasets (Choi et al., CVPR 2018).

Importing this package registers the networks ``stargan.128`` / ``.both128`` / ``.64`` / ``.32`` / ``.tiny32``, the objectives
``stargan.celeba128`` / ``.both128`` / ``.shapes32`` / ``.tiny32`` / ``.emoji32``, the
block ``stargan.res`` and the datasets ``stargan.celeba`` / ``.shapes`` / ``.shapes_with_shape`` / ``.emoji`` /
``.joint``, the metric ``stargan.shapes_translation``; it adds the command ``ganzoo stargan-grid``.
"""

from ganzoo_stargan import data, evaluate
from ganzoo_stargan.baseline import ganzoo_bench_baselines as ganzoo_bench_baselines  # the official iteration (bench)
from ganzoo_stargan.grid import ganzoo_add_commands, write_translation_grid
from ganzoo_stargan.model import (
    DiscriminatorCfg,
    GeneratorCfg,
    ObjectiveCfg,
    ResidualBlock,
    StarDiscriminator,
    StarganObjective,
    StarGenerator,
)

GANZOO_API_VERSION = "1.1"  # the ganzoo plugin API this plugin was written for

__all__ = [
    "DiscriminatorCfg", "GeneratorCfg", "ObjectiveCfg", "ResidualBlock", "StarDiscriminator", "StarGenerator",
    "StarganObjective", "data", "evaluate", "ganzoo_add_commands", "ganzoo_bench_baselines", "write_translation_grid",
]
