"""ganzoo-weights: pretrained model folders for the first-party plugins.

Each folder under ``weights/`` is a model folder (``model.safetensors`` in bf16, ``config.json``, ``README.md`` card)
written by ``ganzoo export CKPT --format hub --tag TAG`` from a run of an experiment config in the ganzoo repository
(``plugins/weights/scripts``). The package only ships files: the networks come from their plugins (``ganzoo-dcgan``,
...), which a user installs beside it.
"""

from __future__ import annotations

from pathlib import Path

import ganzoo_core as gz

GANZOO_API_VERSION = "1.1"  # 1.1: the ganzoo_pretrained_folders hook

WEIGHTS = Path(__file__).parent / "weights"


@gz.hookimpl
def ganzoo_pretrained_folders() -> list[Path]:
    """Every model folder shipped in ``weights/`` (one per pretrained name, ``family.variant.tag``)."""
    return sorted(p for p in WEIGHTS.iterdir() if (p / "config.json").is_file()) if WEIGHTS.is_dir() else []


__all__ = ["WEIGHTS", "ganzoo_pretrained_folders"]
