"""ganzoo-dcgan: DCGAN generator, discriminator and training objective (Radford et al., ICLR 2016).

Importing this package registers ``dcgan.64`` / ``dcgan.32`` / ``dcgan.28`` (generator, discriminator, objective)
and the blocks ``dcgan.up`` / ``dcgan.down``; ``baseline`` holds pytorch/examples' training iteration for
``ganzoo bench models --baseline official``.
"""

from ganzoo_dcgan.baseline import ganzoo_bench_baselines
from ganzoo_dcgan.model import (
    DcganDiscriminator,
    DcganGenerator,
    DcganObjective,
    DiscriminatorCfg,
    GeneratorCfg,
    ObjectiveCfg,
    ganzoo_convert_checkpoint,
)

GANZOO_API_VERSION = "1.1"  # the ganzoo plugin API this plugin was written for (1.1: ganzoo_bench_baselines)

__all__ = [
    "DcganDiscriminator", "DcganGenerator", "DcganObjective", "DiscriminatorCfg", "GeneratorCfg", "ObjectiveCfg",
    "ganzoo_bench_baselines", "ganzoo_convert_checkpoint",
]
