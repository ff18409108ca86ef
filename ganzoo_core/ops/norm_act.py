"""``norm_act``: BatchNorm or InstanceNorm, then an activation, in training and in eval mode.

    y = act(γ · (x − μ) / √(σ² + ε) + β)

with (μ, σ²) the batch statistics per channel (BatchNorm, training), per sample and channel (InstanceNorm, training
or without running statistics), or the running statistics (eval). In training the running statistics are updated in
place exactly as ``F.batch_norm`` / ``F.instance_norm`` do (momentum, unbiased variance).

Implementations (the reference first):

- ``ref``: ``F.batch_norm`` / ``F.instance_norm``, then the activation: two passes, two saved tensors.
- ``compiled``: ``torch.compile`` of the reference (statistics, normalisation and activation fused by inductor).
- ``triton``: statistics by PyTorch, then ONE Triton pass computing ``act(x · scale + shift)`` with the per-channel
  ``scale = γ/√(σ²+ε)`` and ``shift = β − μ·scale`` (CUDA; tested on CPU under ``TRITON_INTERPRET=1``). The backward
  is BatchNorm's through the batch statistics, in differentiable PyTorch, recomputing x̂ from the saved input.

InstanceNorm is BatchNorm of the ``[1, N·C, H, W]`` view with the affine parameters repeated per sample, which is how
every implementation here computes it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo_core.errors import ShapeError, UnknownNameError
from ganzoo_core.ops._common import compile_requires, compiled, triton_interpret, triton_requires
from ganzoo_core.ops._dispatch import Case, OpSpec, define_op, dispatch, register_op
from ganzoo_core.ops.bias_act import ACTIVATIONS, _backward_torch

KINDS = ("batch", "instance")


def norm_act(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    *,
    kind: str = "batch",
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
    act: str = "relu",
    alpha: float | None = None,
    impl: str = "auto",
) -> Tensor:
    """``act(norm(x))`` for ``x`` of shape ``[N, C, ...]``; ``weight``/``bias``/running stats are ``[C]`` or None.

    ``training=True`` normalises with batch statistics and updates the running ones in place; ``training=False``
    uses the running statistics (InstanceNorm without them always uses the sample's own statistics).
    """
    if kind not in KINDS:
        raise UnknownNameError(kind, "normalisation kind", [], f"norm_act supports {', '.join(KINDS)}")
    if act not in ACTIVATIONS:
        raise UnknownNameError(act, "activation", [], f"norm_act supports {', '.join(ACTIVATIONS)}")
    if x.ndim < 3:
        raise ShapeError(f"norm_act: x must be [N, C, ...] with spatial dimensions, got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"norm_act: {name} has shape {tuple(t.shape)}, expected ({c},) for x {tuple(x.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("norm_act: give both running_mean and running_var, or neither")
    if kind == "batch" and not training and running_mean is None:
        raise ValueError("norm_act: BatchNorm in eval mode needs running statistics")
    alpha = float(ACTIVATIONS[act].alpha if alpha is None else alpha)
    fn = dispatch("norm_act", impl, x.device, _norm_act_ref)
    return fn(x, weight, bias, running_mean, running_var, kind, training, momentum, eps, act, alpha)


@register_op("norm_act.ref", reference=True)
def _norm_act_ref(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                  running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
                  alpha: float) -> Tensor:
    """``F.batch_norm`` or ``F.instance_norm``, then the activation."""
    if kind == "batch":
        y = F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    else:
        y = F.instance_norm(x, running_mean, running_var, weight, bias, training or running_mean is None, momentum,
                            eps)
    return ACTIVATIONS[act].func(y, alpha)


_compiled_ref = compiled(_norm_act_ref)


@register_op("norm_act.compiled", requires=compile_requires)
def _norm_act_compiled(*args: Any) -> Tensor:
    """torch.compile of the reference."""
    return _compiled_ref(*args)


# ---------------------------------------------------------------------------------------------------------------
# triton
# ---------------------------------------------------------------------------------------------------------------

BLOCK = 1024


@functools.cache
def _kernel(interpret: bool) -> Any:
    import triton
    import triton.language as tl

    @triton.jit
    def scale_shift_act(x_ptr, scale_ptr, shift_ptr, y_ptr, n, C, inner, alpha,
                        ACT: tl.constexpr, BLOCK: tl.constexpr) -> None:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        c = (offs // inner) % C
        z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        z = z * tl.load(scale_ptr + c, mask=mask, other=0.0) + tl.load(shift_ptr + c, mask=mask, other=0.0)
        if ACT == 1:
            z = tl.maximum(z, 0.0)
        elif ACT == 2:
            z = tl.where(z > 0, z, z * alpha)
        elif ACT == 3:
            z = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)
        elif ACT == 4:
            z = 1.0 / (1.0 + tl.exp(-z))
        elif ACT == 5:
            z = z * (1.0 / (1.0 + tl.exp(-z)))
        tl.store(y_ptr + offs, z.to(y_ptr.dtype.element_ty), mask=mask)

    return scale_shift_act


def _as_batch(x: Tensor, kind: str) -> Tensor:
    """InstanceNorm as BatchNorm: [N, C, ...] -> [1, N·C, ...]."""
    return x.reshape(1, x.shape[0] * x.shape[1], *x.shape[2:]) if kind == "instance" else x


class _NormActTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor, invstd: Tensor,
                batch_stats: bool, act: str, alpha: float) -> Tensor:
        c = mean.shape[0]
        w = weight.float() if weight is not None else torch.ones(c, device=x.device)
        b = bias.float() if bias is not None else torch.zeros(c, device=x.device)
        scale = (w * invstd).contiguous()
        shift = (b - mean * scale).contiguous()
        channels_last = x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        xc = x if channels_last else x.contiguous()
        y = torch.empty_like(xc)
        n = xc.numel()
        inner = 1 if channels_last else xc[0, 0].numel()
        if n:
            _kernel(triton_interpret())[((n + BLOCK - 1) // BLOCK,)](
                xc, scale, shift, y, n, c, inner, alpha, ACT=ACTIVATIONS[act].code, BLOCK=BLOCK)
        ctx.save_for_backward(x, y, mean, invstd, weight, bias)
        ctx.args = (batch_stats, act, alpha, bias is not None)
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, y, mean, invstd, weight, bias = ctx.saved_tensors
        batch_stats, act, alpha, has_bias = ctx.args
        dims = [0, *range(2, x.ndim)]
        shape = [1, -1, *[1] * (x.ndim - 2)]
        xhat = (x.float() - mean.reshape(shape)) * invstd.reshape(shape)
        pre = xhat  # SiLU's backward reads the pre-activation; the others read the output y
        if act == "silu":
            pre = xhat * (weight.float().reshape(shape) if weight is not None else 1)
            pre = pre + (bias.float().reshape(shape) if bias is not None else 0)
        dz = _backward_torch(dy, y, pre, act, alpha, 1.0, None).float()  # dL/d(affine output)
        dbias = dz.sum(dims) if has_bias else None
        dweight = (dz * xhat).sum(dims) if weight is not None else None
        g = dz * weight.float().reshape(shape) if weight is not None else dz
        if batch_stats:  # through the batch mean and variance
            dx = (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True)) * invstd.reshape(shape)
        else:
            dx = g * invstd.reshape(shape)
        return (dx.to(x.dtype), None if weight is None else dweight.to(weight.dtype),
                None if not has_bias else dbias.to(dy.dtype), None, None, None, None, None)


@register_op("norm_act.triton", requires=triton_requires, auto=("cuda",), priority=20)
def _norm_act_triton(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                     running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
                     alpha: float) -> Tensor:
    """Statistics by PyTorch, normalisation + affine + activation in one Triton pass."""
    batch_stats = training or running_mean is None
    n, c = x.shape[0], x.shape[1]
    xb = _as_batch(x, kind)
    dims = [0, *range(2, xb.ndim)]
    if batch_stats:
        with torch.no_grad():
            var, mean = torch.var_mean(xb.float(), dim=dims, unbiased=False)
            if training and running_mean is not None and running_var is not None:
                count = xb.numel() // xb.shape[1]
                unbiased = var * count / max(count - 1, 1)
                m, v = (mean, unbiased) if kind == "batch" else (mean.view(n, c).mean(0), unbiased.view(n, c).mean(0))
                running_mean.mul_(1 - momentum).add_(m.to(running_mean.dtype), alpha=momentum)
                running_var.mul_(1 - momentum).add_(v.to(running_var.dtype), alpha=momentum)
    else:
        assert running_mean is not None and running_var is not None
        mean, var = running_mean.float(), running_var.float()
        if kind == "instance":
            mean, var = mean.repeat(n), var.repeat(n)
    invstd = torch.rsqrt(var + eps)
    w, b = weight, bias
    if kind == "instance":
        w = weight.repeat(n) if weight is not None else None
        b = bias.repeat(n) if bias is not None else None
    y = _NormActTriton.apply(xb, w, b, mean, invstd, batch_stats, act, alpha)
    return y.reshape(x.shape) if kind == "instance" else y


# ---------------------------------------------------------------------------------------------------------------
# Modules with torch's parameter names
# ---------------------------------------------------------------------------------------------------------------


class BatchNormAct2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` followed by an activation, through ``norm_act``; parameters and buffers keep BatchNorm2d's
    names, so state dicts of the two-module layout load unchanged."""

    def __init__(self, num_features: int, act: str = "relu", alpha: float | None = None, impl: str = "auto",
                 **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        self.act, self.alpha, self.impl = act, alpha, impl

    def forward(self, x: Tensor) -> Tensor:
        if self.momentum is None:
            raise ValueError("BatchNormAct2d does not support momentum=None (a cumulative average); give a number")
        training = self.training or not self.track_running_stats
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        return norm_act(x, self.weight, self.bias, self.running_mean if not self.training or self.track_running_stats
                        else None, self.running_var if not self.training or self.track_running_stats else None,
                        kind="batch", training=training, momentum=self.momentum, eps=self.eps, act=self.act,
                        alpha=self.alpha, impl=self.impl)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, act={self.act!r}"


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------

SHAPES = {  # name: (x shape)
    "small": (4, 6, 5, 5),
    "odd": (3, 5, 7, 9),
    "dcgan64.g3": (64, 128, 16, 16),  # DCGAN-64 G: BN + ReLU after ngf*2 x 16x16
    "dcgan64.d2": (64, 128, 16, 16),  # DCGAN-64 D: BN + LeakyReLU(0.2) after ndf*2 x 16x16
    "cyclegan.res": (1, 256, 64, 64),  # CycleGAN ResNet block: InstanceNorm + ReLU at 256x256
}
VARIANTS = ("batch-train-relu", "batch-train-lrelu", "batch-eval-relu", "instance-train-relu",
            "instance_affine-train-relu", "instance_affine-eval-linear", "batch-train-tanh")
_SHAPE_VARIANT = {"dcgan64.g3": "batch-train-relu", "dcgan64.d2": "batch-train-lrelu",
                  "cyclegan.res": "instance-train-relu"}


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    shape = SHAPES[case.shape]
    kind, mode, act = _SHAPE_VARIANT.get(case.shape, case.variant or VARIANTS[0]).split("-")
    c = shape[1]
    x = (torch.randn(shape, generator=gen) * 1.5 + 0.3).to(case.device, case.dtype)
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    affine = kind != "instance"
    tracked = kind != "instance"
    if kind == "instance_affine":
        kind, affine, tracked = "instance", True, True
    weight = (1 + 0.3 * torch.randn(c, generator=gen)).to(case.device) if affine else None
    bias = (0.2 * torch.randn(c, generator=gen)).to(case.device) if affine else None
    rm = (0.1 * torch.randn(c, generator=gen)).to(case.device) if tracked else None
    rv = (0.5 + torch.rand(c, generator=gen)).to(case.device) if tracked else None
    for t in (x, weight, bias):
        if t is not None:
            t.requires_grad_(case.requires_grad)
    return (x, weight, bias, rm, rv), {"kind": kind, "training": mode == "train", "act": act}


SPEC = define_op(OpSpec(
    name="norm_act", call=norm_act, sample=_sample, variants=VARIANTS,
    shapes={k: f"{_SHAPE_VARIANT[k]} on {v}" for k, v in SHAPES.items() if k not in ("small", "odd")},
    tol={torch.float32: (1e-4, 1e-4), torch.bfloat16: (3e-2, 3e-2)},
))
