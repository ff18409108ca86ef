"""What several ops' implementations share: Triton and ``torch.compile`` availability, and a lazily compiled
wrapper of a reference function."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from collections.abc import Callable
from typing import Any

import torch


def triton_interpret() -> bool:
    """Whether Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1``): how their correctness is tested
    on machines without a GPU. Read at each kernel build, so a test can set it before the first call."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_requires(device_type: str) -> str | None:
    """Why a Triton kernel cannot run on ``device_type`` here, or None."""
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (pip install triton)"
    if device_type == "cuda":
        return None if torch.cuda.is_available() else "no CUDA device"
    if device_type == "cpu" and triton_interpret():
        return None
    return f"Triton kernels run on CUDA tensors ({device_type} only under TRITON_INTERPRET=1, for testing)"


def compile_requires(device_type: str) -> str | None:
    """Why ``torch.compile`` (inductor) cannot build code for ``device_type`` here, or None."""
    if device_type == "cpu":
        if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
            return "torch.compile on CPU needs a C++ compiler (apt-get install g++)"
        return None
    if device_type == "cuda":
        return triton_requires("cuda")
    return f"torch.compile is not set up here for {device_type}"


def compiled(reference: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile(reference)``, built on first use (a compile costs seconds; importing must not)."""

    @functools.cache
    def build() -> Callable[..., Any]:
        return torch.compile(reference)  # automatic dynamic shapes: no recompile per benchmark shape

    def run(*args: Any, **kwargs: Any) -> Any:
        return build()(*args, **kwargs)

    return run


def triton_launch_ok(*tensors: torch.Tensor) -> None:
    """Triton kernels here index flat memory; they need dense tensors on one device."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
