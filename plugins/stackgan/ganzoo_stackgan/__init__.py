"""ganzoo-stackgan: StackGAN-v1 (Zhang et al., ICCV 2017) for ganzoo.

Importing this package registers the Conditioning Augmentation block ``stackgan.ca``; the Stage-I generators
``stackgan.s1_64`` (official) / ``s1_32`` / ``s1_16``; the Stage-II generators ``stackgan.s2_256`` (official) /
``s2_128`` / ``s2_64`` / ``s2_32``; discriminators and objectives under the same names; and the dataset
``stackgan.shapes`` (captioned shapes with text embeddings and wrong images); the metrics
``stackgan.stages`` / ``caption_accuracy`` / ``diversity``. Weights released with the PyTorch code
(``netG_epoch_*.pth``, ``netD_epoch_*.pth``) load by ``weights=`` (``ganzoo_stackgan.official``).
"""

from ganzoo_stackgan import pipeline
from ganzoo_stackgan.baseline import ganzoo_bench_baselines as ganzoo_bench_baselines  # the official iteration (bench)
from ganzoo_stackgan.data import CaptionedImages, captioned_shapes, convert_char_cnn_rnn, read_char_cnn_rnn
from ganzoo_stackgan.model import (
    CaCfg,
    CondAugment,
    DiscriminatorCfg,
    ObjectiveCfg,
    StackDiscriminator,
    StackObjective,
    StageICfg,
    StageIGenerator,
    StageIICfg,
    StageIIGenerator,
    kl_divergence,
    load_stage1,
)
from ganzoo_stackgan.official import convert_stackgan_pytorch, ganzoo_convert_checkpoint, load_stackgan_pytorch

GANZOO_API_VERSION = "1.1"  # the ganzoo plugin API this plugin was written for

__all__ = [
    "CaCfg", "CaptionedImages", "CondAugment", "DiscriminatorCfg", "ObjectiveCfg", "StackDiscriminator",
    "StackObjective", "StageICfg", "StageIGenerator", "StageIICfg", "StageIIGenerator", "captioned_shapes",
    "convert_char_cnn_rnn", "convert_stackgan_pytorch", "ganzoo_add_commands", "ganzoo_bench_baselines",
    "ganzoo_convert_checkpoint", "kl_divergence", "load_stackgan_pytorch", "load_stage1", "pipeline", "read_char_cnn_rnn",
]


import argparse  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

import ganzoo_core as gz  # noqa: E402


@gz.hookimpl
def ganzoo_add_commands(subparsers: argparse._SubParsersAction, context: Mapping[str, Any]) -> None:
    """``ganzoo stackgan-train``: Stage-I, then Stage-II on its checkpoint, in one command."""
    from ganzoo_stackgan.pipeline import add_commands

    add_commands(subparsers, context.get("prog", "ganzoo"))
