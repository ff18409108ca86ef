"""Built-in plugin: sample-quality metrics (FID, KID, Inception Score, precision/recall, conditional accuracy),
the feature extractors they run on (registered as ``encoder``s), ``evaluate`` and the ``ganzoo eval`` command.

- ``scores``: plain functions on feature tensors and class probabilities.
- ``extractors``: ``domain.fashion_mnist``, ``domain.animal_mnist``, ``timm.backbone``, ``fid.inception_v3``.
- ``evaluate``: samples → features → scores, with the full protocol in a JSON result.
- ``cli``: ``add_eval_commands(subparsers)`` adds ``ganzoo eval`` (this module's ``ganzoo_add_commands`` hook calls it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo_core.hookspecs import hookimpl
from ganzoo_core.metrics import attributes, extractors  # noqa: F401  (register the encoders)
from ganzoo_core.metrics.evaluate import evaluate, real_vs_real
from ganzoo_core.metrics.extractors import read_weights
from ganzoo_core.metrics.scores import (
    MeanStd,
    conditional_accuracy,
    fid,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kid,
    mmd2_unbiased,
    precision_recall,
)

GANZOO_API_VERSION = "1.0"

_FAMILIES = ("domain.", "fid.", "timm.")


@hookimpl
def ganzoo_add_commands(subparsers: Any, context: Mapping[str, Any]) -> None:
    """``ganzoo eval`` and ``ganzoo report`` (a run's page: its samples, curves and evaluation results)."""
    from ganzoo_core.metrics.cli import add_eval_commands
    from ganzoo_core.report import add_report_command

    add_eval_commands(subparsers)
    add_report_command(subparsers)


@hookimpl
def ganzoo_convert_checkpoint(kind: str, name: str, path: Path) -> Mapping[str, Tensor] | None:
    """Weights for an extractor given as ``create_encoder(name, weights=path)``: add the batch-norm counters a
    file may lack, and the ``model.`` prefix of ``timm.backbone`` to a bare timm state dict."""
    if kind != "encoder" or not name.startswith(_FAMILIES):
        return None
    tensors, _ = read_weights(path)
    if name.startswith("timm.") and not any(k.startswith("model.") for k in tensors):
        tensors = {f"model.{k}": v for k, v in tensors.items()}
    for key in [k for k in tensors if k.endswith(".running_mean")]:
        tensors.setdefault(key.removesuffix("running_mean") + "num_batches_tracked", torch.tensor(0))
    return tensors


__all__ = [
    "MeanStd", "conditional_accuracy", "evaluate", "fid", "frechet_distance", "gaussian_stats", "inception_score",
    "kid", "mmd2_unbiased", "precision_recall", "real_vs_real",
]
