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


def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile(fn, dynamic=False)``, built once, on first use (a compile costs seconds; importing must not).

    Each op keeps one such function, module-level, so every call goes through the same compiled code: a (shapes,
    dtype, setting) it has met runs without compiling again, and a new one compiles once. Shapes are static
    (``dynamic=False``): a second shape is one more graph specialised to it, not a switch to a dynamic-shape graph
    followed by a recompile for each further dimension that changes. Python scalars are baked into the graph, which
    suits per-layer constants (eps, alpha, gain, the activation); a value that changes from call to call must reach
    ``fn`` as a tensor (norm_act's momentum, which ``momentum=None`` changes every step). torch's
    ``torch._dynamo.config.recompile_limit`` (8 by default) counts graphs per function: settings met after that run
    ``fn`` eagerly."""

    @functools.cache
    def build() -> Callable[..., Any]:
        return torch.compile(fn, dynamic=False)

    def run(*args: Any, **kwargs: Any) -> Any:
        return build()(*args, **kwargs)

    run.build = build  # type: ignore[attr-defined]  # for tests: the one compiled function
    return run


def triton_launch_ok(*tensors: torch.Tensor) -> None:
    """Triton kernels here index flat memory; they need dense tensors on one device."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
