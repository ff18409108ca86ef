"""ganzoo-char-cnn-rnn: the char-CNN-RNN text encoder (Reed et al., CVPR 2016) and its DS-SJE training objective.

Importing this package registers the encoders ``char_cnn_rnn.cub`` (default), ``.flowers``, ``.hybrid`` and
``.coco`` (the released networks, 1024-d; their Torch7 files load by ``weights=``), ``char_cnn_rnn.small`` (ours, CPU
size), the objectives ``char_cnn_rnn.sje_small`` / ``.sje_hybrid`` and the dataset ``char_cnn_rnn.captions``.
"""

from ganzoo_char_cnn_rnn.model import (
    ALPHABET,
    CaptionPairs,
    CaptionsCfg,
    CharCnnRnnEncoder,
    EncoderCfg,
    FixedGru,
    FixedRnn,
    ImageConvNet,
    ObjectiveCfg,
    SjeObjective,
    byte_table,
    caption_bytes,
    ganzoo_convert_checkpoint,
    rnn_roles,
    sje_hinge,
    t7_state_dict,
)

GANZOO_API_VERSION = "1.0"  # the ganzoo plugin API this plugin was written for

__all__ = [
    "ALPHABET", "CaptionPairs", "CaptionsCfg", "CharCnnRnnEncoder", "EncoderCfg", "FixedGru", "FixedRnn",
    "ImageConvNet", "ObjectiveCfg", "SjeObjective", "byte_table", "caption_bytes", "ganzoo_convert_checkpoint",
    "rnn_roles", "sje_hinge", "t7_state_dict",
]
