"""ganzoo-cyclegan: CycleGAN's ResNet generators, 70×70 PatchGAN, training objective and unpaired datasets
(Zhu et al., ICCV 2017).

Importing this package registers the generators ``cyclegan.resnet_9blocks`` / ``resnet_6blocks`` / ``small32`` /
``small64``, the discriminators ``cyclegan.patch70`` / ``patch70_128`` / ``small32`` / ``small64``, the objectives
``cyclegan.small32`` / ``small64`` and the datasets ``cyclegan.horse2zebra`` / ``emoji2line`` / ``folder`` / ``h5``
and the metric ``cyclegan.horse2zebra``; ``baseline`` holds the authors' PyTorch training iteration for
``ganzoo bench models --baseline official``.
"""

from ganzoo_cyclegan import evaluate
from ganzoo_cyclegan.baseline import ganzoo_bench_baselines
from ganzoo_cyclegan.data import UnpairedCfg, UnpairedDataset, unpaired_dataset
from ganzoo_cyclegan.model import (
    CycleGANObjective,
    DiscriminatorCfg,
    GeneratorCfg,
    ImagePool,
    ObjectiveCfg,
    PatchDiscriminator,
    ResnetGenerator,
    ganzoo_convert_checkpoint,
)

GANZOO_API_VERSION = "1.1"  # the ganzoo plugin API this plugin was written for (1.1: ganzoo_bench_baselines)

__all__ = [
    "CycleGANObjective", "DiscriminatorCfg", "GeneratorCfg", "ImagePool", "ObjectiveCfg", "PatchDiscriminator",
    "ResnetGenerator", "UnpairedCfg", "UnpairedDataset", "evaluate", "ganzoo_bench_baselines", "ganzoo_convert_checkpoint",
    "unpaired_dataset",
]
