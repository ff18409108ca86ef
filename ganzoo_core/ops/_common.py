"""What several ops' implementations share: Triton and ``torch.compile`` availability, a lazily compiled
wrapper of a reference function, and weight casts kept for one autocast block."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor


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


# -- weight casts under autocast ----------------------------------------------------------------------------------

_casts: contextvars.ContextVar[dict[tuple[int, torch.dtype, bool], tuple[Tensor, int, Tensor]] | None] = \
    contextvars.ContextVar("ganzoo_weight_casts", default=None)


@contextlib.contextmanager
def weight_cast_cache() -> Iterator[None]:
    """Within this block ``cast_weight`` casts each parameter once per dtype, as autocast does for the library
    kernels inside one ``torch.autocast`` block (``Policy.autocast`` opens both): an op that casts its weight itself
    (``conv``'s matrix-product forms) then casts a discriminator's weights once for the real and the fake pass, and
    the backward casts their summed gradient once."""
    token = _casts.set({})
    try:
        yield
    finally:
        _casts.reset(token)


def cast_weight(w: Tensor, dtype: torch.dtype) -> Tensor:
    """``w.to(dtype)``, kept for the rest of the ``weight_cast_cache`` block when ``w`` is a parameter (a leaf) and one
    is open; a new cast when ``w`` changed in place since (its version counter) or gradients were switched on or off."""
    cache = _casts.get()
    if w.dtype == dtype or cache is None or not w.is_leaf:
        return w.to(dtype)
    key = (id(w), dtype, w.requires_grad and torch.is_grad_enabled())
    hit = cache.get(key)
    if hit is not None and hit[0] is w and hit[1] == w._version:
        return hit[2]
    out = w.to(dtype)
    cache[key] = (w, w._version, out)
    return out
