"""Scores of a horse ↔ zebra CycleGAN on the held-out Animal-MNIST test images (100 horses, 100 zebras).

- ``acc_a2b`` / ``acc_b2a``: the fraction of translated images the horse/zebra judge puts in the target domain.
- ``cycle_l1``: mean |G_B(G_A(a)) − a| and |G_A(G_B(b)) − b| over both directions, on the [-1, 1] scale.
- ``kid_a2b`` / ``kid_b2a``: unbiased squared MMD (the KID kernel) between the core ``domain.animal_mnist``
  classifier's 128-d features of the translated images and of the real test images of the target domain (an
  extractor independent of the judge).

Everything runs in eval mode without gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import ganzoo_core as gz
from ganzoo_core.metrics.scores import mmd2_unbiased
from ganzoo_cyclegan.judge import load_judge

HORSE, ZEBRA = 0, 1  # judge classes


def held_out_domains(image_size: int = 32, channels: int = 3) -> tuple[Tensor, Tensor]:
    """The held-out horses (A) and zebras (B) as (100, C, H, W) tensors."""
    data = gz.create_dataset("cyclegan.horse2zebra", split="test", image_size=image_size, channels=channels)
    return data.domain("A"), data.domain("B")


@torch.no_grad()
def score(objective: Any, real_a: Tensor, real_b: Tensor, batch_size: int = 50) -> dict[str, float]:
    """The scores above for ``objective`` (a CycleGAN objective) on test horses ``real_a`` and zebras ``real_b``."""
    was_training = objective.training
    objective.eval()
    device = next(objective.parameters()).device
    try:
        def run(net: str, x: Tensor) -> Tensor:
            g = objective.networks[net]
            return torch.cat([g(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)]).clamp(-1, 1)

        fake_b, fake_a = run("G_A", real_a), run("G_B", real_b)
        rec_a, rec_b = run("G_B", fake_b), run("G_A", fake_a)
    finally:
        objective.train(was_training)
    judge = load_judge()
    features = gz.create_encoder("domain.animal_mnist")
    return {
        "acc_a2b": float((judge.predict(fake_b) == ZEBRA).float().mean()),
        "acc_b2a": float((judge.predict(fake_a) == HORSE).float().mean()),
        "cycle_l1": 0.5 * float((rec_a - real_a).abs().mean() + (rec_b - real_b).abs().mean()),
        "kid_a2b": mmd2_unbiased(features.encode(real_b), features.encode(fake_b)),
        "kid_b2a": mmd2_unbiased(features.encode(real_a), features.encode(fake_a)),
        "real_acc": 0.5 * float((judge.predict(real_a) == HORSE).float().mean()
                                + (judge.predict(real_b) == ZEBRA).float().mean()),
    }


@gz.register_metric("cyclegan.horse2zebra")
def horse2zebra() -> Callable[..., dict[str, float]]:
    """Horse ↔ zebra translations: the shipped judge's accuracy both ways, cycle L1, KID to the target domain.

    The callable is ``score``."""
    return score
