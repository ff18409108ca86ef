"""ganzoo-dcgan: DCGAN generator, discriminator and training objective (Radford et al., ICLR 2016).

Importing this package registers ``dcgan.64`` / ``dcgan.32`` / ``dcgan.28`` (generator, discriminator, objective)
and the blocks ``dcgan.up`` / ``dcgan.down``.
"""

from ganzoo_dcgan.model import (
    DcganDiscriminator,
    DcganGenerator,
    DcganObjective,
    DiscriminatorCfg,
    GeneratorCfg,
    ObjectiveCfg,
    ganzoo_convert_checkpoint,
)

GANZOO_API_VERSION = "1.0"  # the ganzoo plugin API this plugin was written for

__all__ = [
    "DcganDiscriminator", "DcganGenerator", "DcganObjective", "DiscriminatorCfg", "GeneratorCfg", "ObjectiveCfg",
    "ganzoo_convert_checkpoint",
]
