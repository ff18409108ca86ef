"""Learning-rate schedules, built on ``torch.optim.lr_scheduler`` and counted in training steps.

- ``constant``: DCGAN, GAN-CLS without decay.
- ``linear``: constant until ``decay_start``, then linearly to 0 at the last step (CycleGAN's 100 + 100 epochs,
  StarGAN's decay over the second half).
- ``step``: multiplied by ``gamma`` every ``step_size`` steps (StackGAN's and GAN-CLS's halving every 100 epochs).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, StepLR

SCHEDULES = ("constant", "linear", "step")


@attrs.frozen(kw_only=True)
class ScheduleCfg:
    kind: str = attrs.field(default="constant")
    decay_start: int | None = None  # linear: first step of the decay (None: half of the run)
    step_size: int = 1000  # step: steps between multiplications
    gamma: float = 0.5  # step: the factor

    @kind.validator
    def _check(self, _: Any, value: str) -> None:
        if value not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {value!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleCfg, total_steps: int) -> LRScheduler:
    """A scheduler stepped once per training step."""
    if cfg.kind == "step":
        return StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.kind == "linear":
        start = total_steps // 2 if cfg.decay_start is None else cfg.decay_start
        span = max(1, total_steps - start)
        return LambdaLR(optimizer, lambda s: 1.0 - max(0, s - start) / span)
    return LambdaLR(optimizer, lambda s: 1.0)
