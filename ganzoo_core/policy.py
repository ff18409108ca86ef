"""Precision and speed policies: fp32, bf16 autocast (CPU and CUDA), fp16 with a grad scaler (CUDA), channels_last,
``torch.compile`` and Adam's fused step. Chosen by flags, recorded in every training checkpoint."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from ganzoo_core.errors import GanzooError

PRECISIONS = ("fp32", "bf16", "fp16")


@attrs.frozen(kw_only=True)
class Policy:
    precision: str = attrs.field(default="fp32")  # parameters stay fp32; bf16/fp16 are autocast compute types
    channels_last: bool = False  # NHWC memory format for 4-d weights and image batches
    compile: bool = False  # torch.compile each network in place (its parameter names do not change)
    fused_adam: bool = False  # Adam's fused single-kernel step (ganzoo_core.optim.FusedAdam); the same update

    @precision.validator
    def _check(self, _: Any, value: str) -> None:
        if value not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {value!r}")

    @property
    def name(self) -> str:
        return "+".join([self.precision] + ["channels_last"] * self.channels_last + ["compile"] * self.compile
                        + ["fused_adam"] * self.fused_adam)

    def check_device(self, device: torch.device) -> None:
        if self.precision == "fp16" and device.type != "cuda":
            raise GanzooError("fp16 needs a CUDA device (it relies on a grad scaler); on CPU use --precision bf16")

    def prepare(self, networks: nn.ModuleDict) -> None:
        """Convert memory format and compile each network, in place."""
        for net in networks.values():
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
            if self.compile:
                net.compile()

    def batch(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if not self.channels_last:
            return dict(batch)
        return {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in batch.items()}

    @contextlib.contextmanager
    def autocast(self, device: torch.device) -> Iterator[None]:
        if self.precision == "fp32":
            yield
            return
        from ganzoo_core.ops._common import weight_cast_cache

        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(device_type=device.type, dtype=dtype), weight_cast_cache():
            yield

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device.type) if self.precision == "fp16" else None
