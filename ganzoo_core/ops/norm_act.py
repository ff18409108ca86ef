"""``norm_act``: BatchNorm or InstanceNorm, then an activation, in training and in eval mode.

    y = act(γ · (x − μ) / √(σ² + ε) + β)

with (μ, σ²) the batch statistics per channel (BatchNorm in training), per sample and channel (InstanceNorm in
training, or without running statistics), or the running statistics (eval). In training the running statistics are
updated in place exactly as ``F.batch_norm`` / ``F.instance_norm`` do (momentum, unbiased variance); a module's
``momentum=None`` (cumulative average) is ``momentum = 1 / num_batches_tracked`` from the caller, as in
``nn.BatchNorm2d``.

Implementations (the reference first):

- ``ref``: ``F.batch_norm`` / ``F.instance_norm``, then the activation, in place on the norm's output where autograd
  allows (ReLU, LeakyReLU with alpha ≥ 0, tanh, sigmoid; not on InstanceNorm's output while it needs a gradient, which
  is a view). Autograd keeps x and the activation's output (or the norm's, for SiLU).
- ``direct``: the reference, but InstanceNorm of one sample as BatchNorm of the tensor itself (no ``[1, N·C]``
  view, so no copy of a channels_last input into NCHW and back); CPU's default.
- ``fused``: ATen's batch-norm kernel writes the normalised output into one buffer (and gives the statistics), the
  activation runs on that buffer in place, and one autograd node does BatchNorm's backward through the batch
  statistics with the activation's. What it saves for the backward (besides per-channel statistics and γ, β):

  - ``linear``, ``lrelu`` with alpha > 0: only the output y. The activation is undone exactly and x̂ = (act⁻¹(y) − β)/γ,
    so a layer keeps one tensor where the reference keeps two. Not when γ = 0 or some |β| > 4|γ|, where x̂ would come
    back with more rounding error than x has (or not at all): x is saved then, as below.
  - ``relu``: x and y. ReLU is not invertible where y = 0, and in training BatchNorm's backward needs x̂ there too:
    ``dx = γ/σ · (dz − mean(dz) − x̂ · mean(dz · x̂))`` reaches every element, also those whose own dz is 0.
  - ``tanh``, ``sigmoid``: x and y. They are invertible but badly conditioned near saturation (atanh of a rounded
    y ≈ ±1), and the statistics' term above multiplies that error by a factor that does not vanish there.
  - ``silu``, ``lrelu`` with alpha ≤ 0 (derivative not a function of the output): x.

  The first-order backward in training runs ATen's batch-norm backward kernel (on x, or on act⁻¹(y) with γ and β
  folded into its arguments). Under ``create_graph=True`` (WGAN-GP through a critic with BatchNorm) the backward is
  written in differentiable PyTorch, and the statistics are outputs of the same autograd node, so second-order
  gradients include their dependence on x.
- ``compiled``: ``torch.compile`` of the reference (static shapes, one compiled function; the momentum reaches it as a
  tensor, so ``momentum=None``'s per-step value compiles nothing).
- ``triton``: statistics by PyTorch, then ONE Triton pass computing ``act(x · scale + shift)`` with the per-channel
  (per-sample for InstanceNorm) ``scale = γ/√(σ²+ε)`` and ``shift = β − μ·scale``; the first-order backward is two
  Triton passes (dz and dz·x̂, whose per-channel sums PyTorch takes; then dx), with what ``fused`` saves. CUDA; tested
  on CPU under ``TRITON_INTERPRET=1``. Under ``create_graph=True`` the backward switches to the PyTorch formulas.

``fused`` and ``triton`` need one host synchronisation per training call with ``linear``/``lrelu`` (the check on γ and
β above). InstanceNorm in ``ref`` and ``fused`` is BatchNorm of the ``[1, N·C, ...]`` view with γ, β and the running
statistics repeated per sample, as ``aten::instance_norm`` computes it; ``triton`` indexes its statistics per sample.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo_core.errors import ShapeError, UnknownNameError
from ganzoo_core.ops._common import compile_requires, compiled, triton_interpret, triton_requires
from ganzoo_core.ops._dispatch import AutoImpl, Case, OpSpec, define_op, dims_field, dispatch, register_op
from ganzoo_core.ops.bias_act import ACTIVATIONS, _backward_torch, activate_

# ---------------------------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------------------------

KINDS = ("batch", "instance")  # statistics per channel over (N, H, W) / per sample and channel over (H, W)
MAX_BIAS_RATIO = 4.0  # x̂ is recovered from the output only where |β| ≤ 4|γ| (see the module docstring)


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
    """``act(norm(x))``: BatchNorm or InstanceNorm with an optional affine map, then an activation.

    Args:
        x: ``[N, C, ...]`` (InstanceNorm: at least one spatial dimension).
        weight, bias: γ and β, ``[C]`` or None (no affine map).
        running_mean, running_var: ``[C]`` or both None (not tracked). Updated in place when ``training``.
        kind: ``"batch"`` or ``"instance"``.
        training: normalise with the batch's statistics and update the running ones (``F.batch_norm``'s
            ``training``, ``F.instance_norm``'s ``use_input_stats``); False: use the running statistics. InstanceNorm
            without running statistics always uses the sample's own.
        momentum: weight of the new statistics in the running ones (a module's ``momentum=None`` passes
            ``1 / num_batches_tracked``).
        eps: added to the variance.
        act: one of bias_act's ``ACTIVATIONS`` (``linear``, ``relu``, ``lrelu``, ``tanh``, ``sigmoid``, ``silu``).
        alpha: the activation's parameter (lrelu's negative slope, 0.2 by default).
        impl: ``"auto"``, ``"ref"``, ``"fused"``, ``"compiled"``, ``"triton"`` or one a plugin registered.

    Returns:
        A tensor of ``x``'s shape and dtype.
    """
    args = _checked(x, weight, bias, running_mean, running_var, kind, training, momentum, eps, act, alpha)
    return dispatch("norm_act", impl, x.device, _norm_act_ref)(*args)


def _checked(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
             running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
             alpha: float | None) -> tuple[Any, ...]:
    """``norm_act``'s arguments checked, as its implementations take them (the modules call the implementation they
    resolved with these directly)."""
    if kind not in KINDS:
        raise UnknownNameError(kind, "normalisation kind", [k for k in KINDS if k.startswith(kind[:2])],
                               f"norm_act supports {', '.join(KINDS)}")
    if act not in ACTIVATIONS:
        raise UnknownNameError(act, "activation", [a for a in ACTIVATIONS if a.startswith(act[:2])],
                               f"norm_act supports {', '.join(ACTIVATIONS)}")
    if x.ndim < (2 if kind == "batch" else 3):
        raise ShapeError(f"norm_act: x must be [N, C{', ...' if kind == 'batch' else ', H, ...'}] for {kind} norm, got "
                         f"shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"norm_act: {name} has shape {tuple(t.shape)}, expected ({c},) for x {tuple(x.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("norm_act: give both running_mean and running_var, or neither")
    if kind == "batch" and not training and running_mean is None:
        raise ValueError("norm_act: BatchNorm in eval mode needs running statistics (running_mean, running_var); "
                         "pass training=True to normalise with the batch's own statistics")
    if eps < 0:
        raise ValueError(f"norm_act: eps must be >= 0, got {eps}")
    batch_stats = training or running_mean is None
    count = x.numel() // max(c, 1) if kind == "batch" else math.prod(x.shape[2:])  # values behind each statistic
    if (training if kind == "batch" else batch_stats) and count <= 1 and x.numel():
        raise ValueError(f"norm_act: {kind} norm in training needs more than 1 value per "
                         f"{'channel' if kind == 'batch' else 'sample and channel'}, got x of shape {tuple(x.shape)}")
    alpha = float(ACTIVATIONS[act].alpha if alpha is None else alpha)
    return x, weight, bias, running_mean, running_var, kind, training, float(momentum), float(eps), act, alpha


# ---------------------------------------------------------------------------------------------------------------
# ref
# ---------------------------------------------------------------------------------------------------------------


@register_op("norm_act.ref", reference=True)
def _norm_act_ref(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                  running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
                  alpha: float) -> Tensor:
    """``F.batch_norm`` or ``F.instance_norm``, then the activation, in place on the norm's output where autograd
    allows it (as the official code's ``nn.ReLU(inplace=True)``; see ``_act_in_place``)."""
    if kind == "batch":
        y = F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    else:
        y = F.instance_norm(x, running_mean, running_var, weight, bias, training or running_mean is None, momentum,
                            eps)
    if _act_in_place(y, act, alpha):
        return activate_(y, act, alpha)
    return ACTIVATIONS[act].func(y, alpha)


def _act_in_place(y: Tensor, act: str, alpha: float) -> bool:
    """Whether the reference may overwrite the norm's output ``y`` with the activation: one buffer fewer, the same
    values and gradients to the bit. The norm's backward reads its input, not ``y``; ReLU, LeakyReLU with α ≥ 0, tanh
    and sigmoid compute their backward from their own output. Not SiLU or LeakyReLU with α < 0 (their backward needs
    the input), and not when ``y`` is a view autograd tracks (``F.instance_norm`` returns a view of its ``[1, N·C,
    ...]`` batch norm: changing it in place would make the backward copy the whole gradient once more). Under
    ``torch.compile`` the compiler plans the buffers itself."""
    if torch.compiler.is_compiling():
        return False
    if act in ("relu", "tanh", "sigmoid") or (act == "lrelu" and alpha >= 0):
        return y._base is None or not y.requires_grad
    return False


# ---------------------------------------------------------------------------------------------------------------
# direct
# ---------------------------------------------------------------------------------------------------------------


@register_op("norm_act.direct", auto=("cpu",), priority=5)
def _norm_act_direct(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                     running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
                     alpha: float) -> Tensor:
    """The reference, except InstanceNorm of one sample (N = 1, CycleGAN's and pix2pix's batch): BatchNorm of the
    tensor itself, which is what ``F.instance_norm`` computes then (its ``[1, N·C, ...]`` view is x), with the same
    running-statistics update, but without the ``.contiguous()`` before that view. On a channels_last input that
    call copies x into NCHW, and the next convolution copies the result back (twice more in the backward); here the
    norm reads and writes channels_last (CPU, bf16, 1×256×64×64 forward + backward: 0.8 ms against 3.1 ms). The
    norm's output is not a view, so the activation runs in place on it."""
    if kind == "instance" and x.shape[0] == 1:
        kind, training = "batch", training or running_mean is None  # F.instance_norm's use_input_stats
    return _norm_act_ref(x, weight, bias, running_mean, running_var, kind, training, momentum, eps, act, alpha)


# ---------------------------------------------------------------------------------------------------------------
# fused (PyTorch, one buffer, output-only backward where exact) and triton share one autograd.Function
# ---------------------------------------------------------------------------------------------------------------


def _acc(x: Tensor) -> torch.dtype:
    """The dtype statistics and γ, β are computed in."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _stat_dims(ndim: int, kind: str) -> list[int]:
    """The dimensions one statistic reduces over."""
    return [0, *range(2, ndim)] if kind == "batch" else list(range(2, ndim))


def _channel(t: Tensor | None, ndim: int, dtype: torch.dtype) -> Tensor | None:
    """A ``[C]`` parameter as ``[1, C, 1, ...]`` in ``dtype``."""
    return None if t is None else t.to(dtype).reshape(1, -1, *[1] * (ndim - 2))


def _exactly_invertible(act: str, alpha: float) -> bool:
    return act == "linear" or (act == "lrelu" and alpha > 0)


def _grad_from_z(act: str, alpha: float) -> bool:
    """act'(z) is not a function of act(z): the backward needs the pre-activation z."""
    return act == "silu" or (act == "lrelu" and alpha < 0)


def _output_only(x: Tensor, weight: Tensor | None, bias: Tensor | None, act: str, alpha: float) -> bool:
    """Whether the backward can recover x̂ from the output alone (one host sync when γ is given)."""
    if not _exactly_invertible(act, alpha):
        return False
    if weight is None:
        return True
    fi = torch.finfo(x.dtype)
    w = weight.detach().float().abs()
    b = bias.detach().float().abs() if bias is not None else torch.zeros_like(w)
    return bool(((w >= fi.tiny / fi.eps) & (b <= MAX_BIAS_RATIO * w)).all())  # NaN γ or β: False


def _forward_torch(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                   running_var: Tensor | None, kind: str, batch_stats: bool, momentum: float, eps: float, act: str,
                   alpha: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(y, x as read, mean, invstd): ATen's batch-norm kernel writes norm(x) into one buffer and updates the running
    statistics as ``F.batch_norm`` does; the activation runs on that buffer in place."""
    n, c = x.shape[:2]
    acc = _acc(x)
    if kind == "batch":
        xb, w, b, rm, rv = x, weight, bias, running_mean, running_var
    else:  # as aten::instance_norm: BatchNorm of [1, N·C, ...], parameters and running statistics repeated
        xb = x.contiguous().view(1, n * c, *x.shape[2:])
        w, b, rm, rv = (t.repeat(n) if t is not None else None for t in (weight, bias, running_mean, running_var))
    y, mean, invstd = torch.native_batch_norm(xb, w, b, rm, rv, batch_stats, momentum, eps)
    shape = [n if kind == "instance" and batch_stats else 1, c, *[1] * (x.ndim - 2)]
    if batch_stats:
        mean, invstd = mean.to(acc).view(shape), invstd.to(acc).view(shape)
        if kind == "instance" and running_mean is not None and running_var is not None:
            assert rm is not None and rv is not None
            running_mean.copy_(rm.view(n, c).mean(0))
            running_var.copy_(rv.view(n, c).mean(0))
    else:
        assert running_mean is not None and running_var is not None
        mean = running_mean.to(acc, copy=True).view(shape)
        invstd = torch.rsqrt(running_var.to(acc) + eps).view(shape)
    return activate_(y.view(x.shape), act, alpha), x, mean, invstd


def _xhat(x: Tensor | None, y: Tensor, mean: Tensor, invstd: Tensor, w: Tensor | None, b: Tensor | None, act: str,
          alpha: float) -> Tensor:
    """x̂ from the saved input, or from the output by undoing the activation and the affine map (differentiable)."""
    if x is not None:
        return (x.to(mean.dtype) - mean) * invstd
    z = y.to(mean.dtype)
    if act == "lrelu":
        z = torch.where(z > 0, z, z / alpha)
    if b is not None:
        z = z - b
    return z / w if w is not None else z


def _dz(dy: Tensor, y: Tensor | None, xhat: Tensor, w: Tensor | None, b: Tensor | None, act: str,
        alpha: float) -> Tensor:
    """dL/dz, z the pre-activation, with bias_act's (differentiable) activation backward."""
    if _grad_from_z(act, alpha):
        z = xhat * w if w is not None else xhat
        z = z + b if b is not None else z
        return _backward_torch(dy.to(z.dtype), z, z, act, alpha, 1.0, None)
    assert y is not None
    return _backward_torch(dy.to(y.dtype), y, y, act, alpha, 1.0, None)


def _backward_formula(dy: Tensor, dmean: Tensor | None, dinvstd: Tensor | None, x: Tensor | None, y: Tensor | None,
                      mean: Tensor, invstd: Tensor, weight: Tensor | None, bias: Tensor | None, kind: str,
                      batch_stats: bool, act: str, alpha: float) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """BatchNorm's backward with the activation's, in differentiable PyTorch ops (second-order gradients flow
    through it). ``dmean``/``dinvstd``: gradients reaching the statistics (in a second-order pass)."""
    ref = x if x is not None else y
    assert ref is not None
    nd, acc = ref.ndim, mean.dtype
    w, b = _channel(weight, nd, acc), _channel(bias, nd, acc)
    assert y is not None or x is not None
    xhat = _xhat(x, y if y is not None else ref, mean, invstd, w, b, act, alpha)
    dz = _dz(dy, y, xhat, w, b, act, alpha).to(acc)
    dims = _stat_dims(nd, kind)
    count = ref.numel() // max(mean.numel(), 1) if batch_stats else 1
    s_dz = dz.sum(dims, keepdim=True)  # per statistic: per channel, or per sample and channel
    s_dzx = (dz * xhat).sum(dims, keepdim=True)
    per_channel = [i for i in range(nd) if i != 1]
    db = s_dz.sum(per_channel) if bias is not None else None
    dw = s_dzx.sum(per_channel) if weight is not None else None
    scale = invstd * w if w is not None else invstd
    if batch_stats:
        dx = scale * (dz - s_dz / count - xhat * (s_dzx / count))
    else:
        dx = dz * scale
    if dmean is not None:
        dx = dx + dmean / count
    if dinvstd is not None:
        dx = dx - (dinvstd * invstd.square() / count) * xhat
    return dx, dw, db


def _backward_aten(dy: Tensor, x: Tensor | None, y: Tensor | None, mean: Tensor, invstd: Tensor,
                   weight: Tensor | None, bias: Tensor | None, kind: str, act: str, alpha: float, eps: float,
                   needs: tuple[bool, bool, bool]) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """First-order training backward with ATen's batch-norm backward kernel (as fast as the reference's). From the
    output alone, the kernel's ``(input − mean) · invstd`` is x̂ with input = act⁻¹(y), mean = β, invstd = 1/γ, and
    its ``dx`` (which carries ``weight · invstd``) comes out right with weight = γ² / σ."""
    ref = x if x is not None else y
    assert ref is not None
    n, c = ref.shape[:2]
    acc = mean.dtype
    rows = mean.shape[0]
    flat = functools.partial(_per_statistic, rows=rows, c=c, nd=ref.ndim)
    w, b = _channel(weight, ref.ndim, acc), _channel(bias, ref.ndim, acc)
    if x is not None:
        xhat = (x.to(acc) - mean) * invstd if _grad_from_z(act, alpha) else x  # x̂ only for SiLU's z
        dz = _dz(dy, y, xhat, w, b, act, alpha).to(x.dtype)
        src, k_mean, k_invstd = x, flat(mean), flat(invstd)
        k_weight = flat(w) if w is not None else None
    else:
        assert y is not None
        dz = _dz(dy, y, y, w, b, act, alpha).to(y.dtype)  # y-based: the x̂ argument is not read
        src = y if act == "linear" else torch.ops.aten.leaky_relu_backward(y, y, 1.0 / alpha, True)  # z = act⁻¹(y)
        ones = torch.ones(1, c, *[1] * (ref.ndim - 2), dtype=acc, device=ref.device)
        k_mean = flat(b if b is not None else ones * 0)
        k_invstd = flat(1 / w if w is not None else ones)
        k_weight = flat((w * w if w is not None else ones) * invstd)
    if kind == "instance":  # the [1, N·C, ...] view of the forward; both NCHW (one sample's channels_last x is
        # viewable as is, and the kernel then read it against an NCHW dz: wrong gradients)
        src, dz = src.contiguous().view(1, n * c, *src.shape[2:]), dz.contiguous().view(1, n * c, *dz.shape[2:])
    mask = [needs[0], needs[1] and weight is not None, needs[2] and bias is not None]
    dx, dw, db = torch.ops.aten.native_batch_norm_backward(dz, src, k_weight, None, None, k_mean, k_invstd, True, eps,
                                                           mask)
    if kind == "instance":
        dx = dx.view(ref.shape) if mask[0] else dx
        dw = dw.view(n, c).sum(0) if mask[1] else dw
        db = db.view(n, c).sum(0) if mask[2] else db
    return dx, dw if mask[1] else None, db if mask[2] else None


def _per_statistic(t: Tensor, rows: int, c: int, nd: int) -> Tensor:
    """A ``[1 or rows, C, 1, ...]`` tensor as one contiguous value per statistic (``rows · C``)."""
    return t.expand(rows, c, *[1] * (nd - 2)).reshape(-1).contiguous()


class _NormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                running_var: Tensor | None, kind: str, batch_stats: bool, momentum: float, eps: float, act: str,
                alpha: float, backend: str) -> tuple[Tensor, Tensor, Tensor]:
        forward = _forward_triton if backend == "triton" else _forward_torch
        y, xs, mean, invstd = forward(x, weight, bias, running_mean, running_var, kind, batch_stats, momentum, eps,
                                      act, alpha)
        ctx.set_materialize_grads(False)
        output_only = any(ctx.needs_input_grad[:3]) and _output_only(x, weight, bias, act, alpha)
        keep_y = output_only or not _grad_from_z(act, alpha)
        ctx.save_for_backward(None if output_only else xs, y if keep_y else None, mean, invstd, weight, bias)
        ctx.args = (kind, batch_stats, eps, act, alpha, backend, x.dtype)
        if not batch_stats:
            ctx.mark_non_differentiable(mean, invstd)
        return y, mean, invstd  # the statistics are outputs, so a second-order pass differentiates through them

    @staticmethod
    def backward(ctx: Any, dy: Tensor | None, dmean: Tensor | None,
                 dinvstd: Tensor | None) -> tuple[Tensor | None, ...]:
        x, y, mean, invstd, weight, bias = ctx.saved_tensors
        kind, batch_stats, eps, act, alpha, backend, dtype = ctx.args
        needs = tuple(ctx.needs_input_grad[:3])
        if dy is None:  # only the statistics were used
            dy = torch.zeros_like(x if x is not None else y)
        first_order = not torch.is_grad_enabled() and dmean is None and dinvstd is None
        if first_order and backend == "triton":
            dx, dw, db = _backward_triton(dy, x, y, mean, invstd, weight, bias, batch_stats, act, alpha, dtype)
        elif first_order and batch_stats:
            dx, dw, db = _backward_aten(dy, x, y, mean, invstd, weight, bias, kind, act, alpha, eps, needs)
        else:  # eval mode, or second order: differentiable PyTorch
            dx, dw, db = _backward_formula(dy, dmean, dinvstd, x, y, mean, invstd, weight, bias, kind, batch_stats,
                                           act, alpha)
        return (dx.to(dtype) if needs[0] else None,
                dw.to(weight.dtype) if needs[1] and dw is not None else None,
                db.to(bias.dtype) if needs[2] and db is not None else None,
                None, None, None, None, None, None, None, None, None)


@register_op("norm_act.fused", priority=10)
def _norm_act_fused(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                    running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
                    alpha: float) -> Tensor:
    """One output buffer; the backward keeps only y where the activation is exactly invertible (memory-saving)."""
    return _NormAct.apply(x, weight, bias, running_mean, running_var, kind, training or running_mean is None,
                          momentum, eps, act, alpha, "torch")[0]


# ---------------------------------------------------------------------------------------------------------------
# compiled
# ---------------------------------------------------------------------------------------------------------------

def _norm_act_traced(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                     running_var: Tensor | None, kind: str, training: bool, momentum: Tensor | None, eps: float,
                     act: str, alpha: float) -> Tensor:
    """What ``compiled`` compiles: the reference, with the running statistics' update written out and ``momentum`` a
    0-dim tensor (given when the statistics are updated, else None). As a Python float ``momentum`` would be baked
    into the graph, and ``momentum=None`` modules (1 / num_batches_tracked) would compile a new graph every step.
    The update is ``F.batch_norm``'s: ``(1 − m)·running + m·batch``, with the unbiased variance; InstanceNorm's
    averages the per-sample statistics over the batch, as ``F.instance_norm`` does."""
    if momentum is None:
        return _norm_act_ref(x, weight, bias, running_mean, running_var, kind, training, 0.0, eps, act, alpha)
    assert running_mean is not None and running_var is not None
    y = _norm_act_ref(x, weight, bias, None, None, kind, True, 0.0, eps, act, alpha)
    c = x.shape[1]
    var, mean = torch.var_mean(x.detach().to(_acc(x)), dim=_stat_dims(x.ndim, kind), correction=0)  # no gradient
    count = x.numel() // max(mean.numel(), 1)
    var = var * (count / max(count - 1, 1))
    mean, var = mean.reshape(-1, c).mean(0), var.reshape(-1, c).mean(0)
    running_mean.copy_(momentum * mean + (1 - momentum) * running_mean)
    running_var.copy_(momentum * var + (1 - momentum) * running_var)
    return y


_compiled_traced = compiled(_norm_act_traced)


@register_op("norm_act.compiled", requires=compile_requires)
def _norm_act_compiled(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                       running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
                       alpha: float) -> Tensor:
    """torch.compile of the reference, with ``momentum`` passed as a tensor so that a new value compiles nothing
    (the running statistics are still updated in place: inductor writes mutated inputs back)."""
    update = training and running_mean is not None  # the running statistics are updated
    m = torch.full((), momentum, dtype=_acc(x), device=x.device) if update else None
    return _compiled_traced(x, weight, bias, running_mean, running_var, kind, training, m, eps, act, alpha)


# ---------------------------------------------------------------------------------------------------------------
# triton
# ---------------------------------------------------------------------------------------------------------------

BLOCK = 1024


@functools.cache
def _kernels(interpret: bool) -> tuple[Any, Any, Any]:
    """Build the Triton kernels on first use (``interpret`` keys the cache: the interpreter is chosen at build).

    Every kernel reads its per-statistic values at ``p = (offs // inner) % C`` (the channel), plus
    ``(offs // per_sample) · C`` when the statistics are per sample (InstanceNorm)."""
    import triton
    import triton.language as tl

    @triton.jit
    def fwd(x_ptr, scale_ptr, shift_ptr, y_ptr, n, C, inner, per_sample, alpha,
            ACT: tl.constexpr, PER_SAMPLE: tl.constexpr, BLOCK: tl.constexpr) -> None:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        p = (offs // inner) % C
        if PER_SAMPLE:
            p += (offs // per_sample) * C
        z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        z = z * tl.load(scale_ptr + p, mask=mask, other=0.0) + tl.load(shift_ptr + p, mask=mask, other=0.0)
        if ACT == 1:
            z = tl.maximum(z, 0.0)
        elif ACT == 2:
            z = tl.where(z > 0, z, z * alpha)
        elif ACT == 3:
            z = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)  # tanh, saturating correctly at both ends
        elif ACT == 4:
            z = 1.0 / (1.0 + tl.exp(-z))
        elif ACT == 5:
            z = z * (1.0 / (1.0 + tl.exp(-z)))
        tl.store(y_ptr + offs, z.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def bwd_dz(dy_ptr, src_ptr, y_ptr, pa_ptr, pb_ptr, w_ptr, b_ptr, dz_ptr, dzx_ptr, n, C, inner, per_sample, alpha,
               ACT: tl.constexpr, FROM_Y: tl.constexpr, GRAD_FROM_Z: tl.constexpr, PER_SAMPLE: tl.constexpr,
               BLOCK: tl.constexpr) -> None:
        """dz = dy · act'(z) and dz · x̂, with x̂ = src · pa + pb (src: x, or act⁻¹(y) when FROM_Y)."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        p = (offs // inner) % C
        if PER_SAMPLE:
            p += (offs // per_sample) * C
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        s = tl.load(src_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if FROM_Y:
            if ACT == 2:
                s = tl.where(s > 0, s, s / alpha)
        xhat = s * tl.load(pa_ptr + p, mask=mask, other=0.0) + tl.load(pb_ptr + p, mask=mask, other=0.0)
        if GRAD_FROM_Z:
            z = xhat * tl.load(w_ptr + p, mask=mask, other=0.0) + tl.load(b_ptr + p, mask=mask, other=0.0)
            if ACT == 2:
                d = tl.where(z > 0, 1.0, alpha)
            else:
                sg = 1.0 / (1.0 + tl.exp(-z))
                d = sg * (1.0 + z * (1.0 - sg))
        else:
            y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            if ACT == 0:
                d = tl.full(y.shape, 1.0, tl.float32)
            elif ACT == 1:
                d = tl.where(y > 0, 1.0, 0.0)
            elif ACT == 2:
                d = tl.where(y > 0, 1.0, alpha)
            elif ACT == 3:
                d = 1.0 - y * y
            else:
                d = y * (1.0 - y)
        dz = dy * d
        tl.store(dz_ptr + offs, dz, mask=mask)
        tl.store(dzx_ptr + offs, dz * xhat, mask=mask)

    @triton.jit
    def bwd_dx(dz_ptr, src_ptr, pa_ptr, pb_ptr, k1_ptr, k2_ptr, k3_ptr, dx_ptr, n, C, inner, per_sample, alpha,
               ACT: tl.constexpr, FROM_Y: tl.constexpr, STATS: tl.constexpr, PER_SAMPLE: tl.constexpr,
               BLOCK: tl.constexpr) -> None:
        """dx = k1 · dz + k2 · x̂ + k3 (k2 = k3 = 0 without batch statistics)."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        p = (offs // inner) % C
        if PER_SAMPLE:
            p += (offs // per_sample) * C
        dx = tl.load(dz_ptr + offs, mask=mask, other=0.0) * tl.load(k1_ptr + p, mask=mask, other=0.0)
        if STATS:
            s = tl.load(src_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            if FROM_Y:
                if ACT == 2:
                    s = tl.where(s > 0, s, s / alpha)
            xhat = s * tl.load(pa_ptr + p, mask=mask, other=0.0) + tl.load(pb_ptr + p, mask=mask, other=0.0)
            dx += xhat * tl.load(k2_ptr + p, mask=mask, other=0.0) + tl.load(k3_ptr + p, mask=mask, other=0.0)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)

    return fwd, bwd_dz, bwd_dx


def _dense(t: Tensor) -> tuple[Tensor, int, torch.memory_format]:
    """(t dense for flat indexing, elements between consecutive channels, its memory format)."""
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return t, 1, torch.channels_last
    return t.contiguous(), math.prod(t.shape[2:]), torch.contiguous_format


def _grid(n: int) -> tuple[int]:
    return ((n + BLOCK - 1) // BLOCK,)


def _statistics(x: Tensor, kind: str, batch_stats: bool, running_mean: Tensor | None, running_var: Tensor | None,
                momentum: float, eps: float) -> tuple[Tensor, Tensor]:
    """(mean, invstd) as ``[1 or N, C, 1, ...]`` in fp32, updating the running statistics as F.batch_norm does."""
    n, c = x.shape[:2]
    acc = _acc(x)
    if not batch_stats:
        assert running_mean is not None and running_var is not None
        shape = [1, c, *[1] * (x.ndim - 2)]
        return running_mean.to(acc, copy=True).view(shape), torch.rsqrt(running_var.to(acc) + eps).view(shape)
    dims = _stat_dims(x.ndim, kind)
    shape = [n if kind == "instance" else 1, c, *[1] * (x.ndim - 2)]
    if x.is_cuda and kind == "batch" and acc == torch.float32:  # one pass, no fp32 copy of a bf16 x
        mean, invstd = torch.batch_norm_stats(x, eps)
        mean, invstd = mean.view(shape), invstd.view(shape)
        var = invstd.pow(-2) - eps
    else:
        var, mean = torch.var_mean(x.to(acc), dim=dims, correction=0, keepdim=True)
        invstd = torch.rsqrt(var + eps)
    if running_mean is not None and running_var is not None:
        count = x.numel() // mean.numel()
        m, v = mean.view(-1, c).mean(0), (var * (count / max(count - 1, 1))).view(-1, c).mean(0)
        running_mean.copy_(momentum * m + (1 - momentum) * running_mean.to(acc))
        running_var.copy_(momentum * v + (1 - momentum) * running_var.to(acc))
    return mean, invstd


def _forward_triton(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                    running_var: Tensor | None, kind: str, batch_stats: bool, momentum: float, eps: float, act: str,
                    alpha: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    fwd, _, _ = _kernels(triton_interpret())
    mean, invstd = _statistics(x, kind, batch_stats, running_mean, running_var, momentum, eps)
    rows, c = mean.shape[0], x.shape[1]
    w, b = _channel(weight, x.ndim, mean.dtype), _channel(bias, x.ndim, mean.dtype)
    scale = invstd * w if w is not None else invstd
    shift = b - mean * scale if b is not None else -mean * scale
    xs, inner, _ = _dense(x)
    y = torch.empty_like(xs)
    if xs.numel():
        flat = functools.partial(_per_statistic, rows=rows, c=c, nd=x.ndim)
        fwd[_grid(xs.numel())](xs, flat(scale).float(), flat(shift).float(), y, xs.numel(), c, inner,
                               xs[0].numel(), alpha, ACT=ACTIVATIONS[act].code, PER_SAMPLE=rows > 1, BLOCK=BLOCK)
    return y, xs, mean, invstd


def _backward_triton(dy: Tensor, x: Tensor | None, y: Tensor | None, mean: Tensor, invstd: Tensor,
                     weight: Tensor | None, bias: Tensor | None, batch_stats: bool, act: str, alpha: float,
                     dtype: torch.dtype) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """First-order backward: a Triton pass for dz and dz·x̂, PyTorch's sums of those per statistic, a Triton pass
    for dx."""
    _, bwd_dz, bwd_dx = _kernels(triton_interpret())
    src = x if x is not None else y
    assert src is not None
    src, inner, fmt = _dense(src)
    nd, (rows, c), n = src.ndim, mean.shape[:2], src.numel()
    acc = mean.dtype
    flat = functools.partial(_per_statistic, rows=rows, c=c, nd=nd)
    w, b = _channel(weight, nd, acc), _channel(bias, nd, acc)
    ones = torch.ones(1, c, *[1] * (nd - 2), dtype=acc, device=src.device)
    w1, b0 = w if w is not None else ones, b if b is not None else ones * 0
    if x is not None:  # x̂ = x · invstd − mean · invstd
        pa, pb = invstd, -mean * invstd
    else:  # x̂ = (act⁻¹(y) − β) / γ
        pa, pb = 1 / w1, -b0 / w1
    dims = _stat_dims(nd, "batch" if rows == 1 else "instance")
    dz = torch.empty(src.shape, dtype=torch.float32, device=src.device).contiguous(memory_format=fmt)
    dzx = torch.empty_like(dz)
    pa, pb = flat(pa).float(), flat(pb).float()
    if n:
        bwd_dz[_grid(n)](dy.contiguous(memory_format=fmt), src, y.contiguous(memory_format=fmt) if y is not None
                         else src, pa, pb, flat(w1).float(), flat(b0).float(), dz, dzx, n, c, inner, src[0].numel(),
                         alpha, ACT=ACTIVATIONS[act].code, FROM_Y=x is None, GRAD_FROM_Z=_grad_from_z(act, alpha),
                         PER_SAMPLE=rows > 1, BLOCK=BLOCK)
    s_dz, s_dzx = dz.sum(dims, keepdim=True), dzx.sum(dims, keepdim=True)
    per_channel = [i for i in range(nd) if i != 1]
    k1 = invstd * w1
    if batch_stats:
        count = n // max(mean.numel(), 1)
        k2, k3 = -k1 * s_dzx / count, -k1 * s_dz / count
    else:
        k2 = k3 = torch.zeros_like(k1)
    dx = torch.empty(src.shape, dtype=dtype, device=src.device).contiguous(memory_format=fmt)
    if n:
        bwd_dx[_grid(n)](dz, src, pa, pb, flat(k1).float(), flat(k2).float(), flat(k3).float(), dx, n, c, inner,
                         src[0].numel(), alpha, ACT=ACTIVATIONS[act].code, FROM_Y=x is None, STATS=batch_stats,
                         PER_SAMPLE=rows > 1, BLOCK=BLOCK)
    dw = s_dzx.sum(per_channel) if weight is not None else None
    db = s_dz.sum(per_channel) if bias is not None else None
    return dx, dw, db


@register_op("norm_act.triton", requires=triton_requires, priority=20)  # on CUDA once measured
def _norm_act_triton(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                     running_var: Tensor | None, kind: str, training: bool, momentum: float, eps: float, act: str,
                     alpha: float) -> Tensor:
    """Statistics by PyTorch; normalisation + affine + activation, and its backward, as Triton passes (CUDA)."""
    return _NormAct.apply(x, weight, bias, running_mean, running_var, kind, training or running_mean is None,
                          momentum, eps, act, alpha, "triton")[0]


# ---------------------------------------------------------------------------------------------------------------
# Modules with torch's parameter names
# ---------------------------------------------------------------------------------------------------------------


class _ActMixin(AutoImpl):
    """The activation half of the fused norm modules: ``act``, ``alpha`` and ``impl`` as ``norm_act`` takes them
    (``impl="auto"`` resolved once per device type, see ``AutoImpl``)."""

    op_name = "norm_act"
    act: str
    alpha: float | None
    impl: str

    def _set_act(self, act: str, alpha: float | None, impl: str) -> None:
        if act not in ACTIVATIONS:
            raise UnknownNameError(act, "activation", [a for a in ACTIVATIONS if a.startswith(act[:2])],
                                   f"norm_act supports {', '.join(ACTIVATIONS)}")
        self.act, self.alpha, self.impl = act, alpha, impl

    def _act_repr(self) -> str:
        return f", act={self.act!r}" + (f", alpha={self.alpha}" if self.alpha is not None else "")


class BatchNormAct2d(_ActMixin, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` followed by an activation, as one ``norm_act`` call.

    Parameters and buffers keep BatchNorm2d's names (``weight``, ``bias``, ``running_mean``, ``running_var``,
    ``num_batches_tracked``), so state dicts of the two-module layout load unchanged, and the constructor takes
    BatchNorm2d's arguments, ``momentum=None`` (a cumulative average) included. ``act``, ``alpha`` and ``impl`` are
    ``norm_act``'s.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *, act: str = "relu",
                 alpha: float | None = None, impl: str = "auto") -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self._set_act(act, alpha, impl)

    def forward(self, x: Tensor) -> Tensor:  # nn.BatchNorm2d.forward, with norm_act in place of F.batch_norm
        self._check_input_dim(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        training = self.training or (self.running_mean is None and self.running_var is None)
        tracked = not self.training or self.track_running_stats  # buffers are updated only when tracked
        args = _checked(x, self.weight, self.bias, self.running_mean if tracked else None,
                        self.running_var if tracked else None, "batch", training, momentum, self.eps, self.act,
                        self.alpha)
        return self.resolved_function(x.device, _norm_act_ref)(*args)

    def extra_repr(self) -> str:
        return super().extra_repr() + self._act_repr()


class InstanceNormAct2d(_ActMixin, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` followed by an activation, as one ``norm_act`` call.

    Same constructor, parameter and buffer names as InstanceNorm2d (``affine=False`` and no running statistics by
    default, as CycleGAN and pix2pix use it; StarGAN's is ``affine=True, track_running_stats=True``), and the same
    ``momentum=None``: as in torch, InstanceNorm then never updates its running statistics.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device: Any = None, dtype: Any = None, *, act: str = "relu",
                 alpha: float | None = None, impl: str = "auto") -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self._set_act(act, alpha, impl)

    def forward(self, x: Tensor) -> Tensor:  # nn.InstanceNorm2d.forward, with norm_act in place of F.instance_norm
        self._check_input_dim(x)
        if x.size(x.dim() - 3) != self.num_features:
            if self.affine:
                raise ShapeError(f"InstanceNormAct2d: expected {self.num_features} channels at dim {x.dim() - 3}, got "
                                 f"input of shape {tuple(x.shape)}")
            warnings.warn(f"InstanceNormAct2d: input's size at dim={x.dim() - 3} does not match num_features "
                          f"({self.num_features}); it is not used because affine=False", stacklevel=2)
        if x.dim() == 3:  # unbatched
            return self.forward(x.unsqueeze(0)).squeeze(0)
        args = _checked(x, self.weight, self.bias, self.running_mean, self.running_var, "instance",
                        self.training or not self.track_running_stats, 0.0 if self.momentum is None else self.momentum,
                        self.eps, self.act, self.alpha)
        return self.resolved_function(x.device, _norm_act_ref)(*args)

    def extra_repr(self) -> str:
        return super().extra_repr() + self._act_repr()


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------

VARIANTS = ("batch-train-relu", "batch-train-lrelu", "batch-eval-relu", "instance-train-relu",
            "instance_affine-train-relu", "instance_affine-eval-linear", "batch-train-tanh",
            "instance_affine-train-lrelu", "batch-train-silu")
_VARIANT_PARTS = (("batch", "instance", "instance_affine"), ("train", "eval"), tuple(ACTIVATIONS))


def _check_variant(_: Any, attribute: Any, value: str) -> None:
    parts = value.split("-")
    if value and (len(parts) != 3 or any(p not in allowed for p, allowed in zip(parts, _VARIANT_PARTS))):
        raise ValueError(f"variant must be '' or KIND-MODE-ACT with KIND one of {', '.join(_VARIANT_PARTS[0])}, MODE "
                         f"train or eval, ACT one of {', '.join(_VARIANT_PARTS[2])}; got {value!r}")


@attrs.frozen(kw_only=True)
class NormActShape:
    """The inputs of one ``norm_act`` case (a test shape, or a benchmark shape of ``ganzoo bench ops --shapes``)."""

    x: tuple[int, ...] = dims_field()  # the input's shape [N, C, ...]
    variant: str = attrs.field(default="", validator=_check_variant)  # e.g. "batch-train-relu"; "": the case's


SHAPES = {
    "small": NormActShape(x=(4, 6, 5, 5)),
    "odd": NormActShape(x=(3, 5, 7, 9)),
    "single": NormActShape(x=(1, 6, 5, 7)),  # one sample: what ``direct`` computes differently
    # benchmark shapes: a generic layer of each kind (benchmarks/shapes.toml has the zoo's model layers)
    "batch-relu.64x128x16x16": NormActShape(x=(64, 128, 16, 16), variant="batch-train-relu"),
    "batch-lrelu.64x128x16x16": NormActShape(x=(64, 128, 16, 16), variant="batch-train-lrelu"),
    "instance-relu.1x256x64x64": NormActShape(x=(1, 256, 64, 64), variant="instance-train-relu"),
}


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(x, weight, bias, running_mean, running_var): the running buffers are arguments, updated in place."""
    params = case.params if case.params is not None else SHAPES[case.shape]
    shape = params.x
    kind, mode, act = (params.variant or case.variant or VARIANTS[0]).split("-")
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
    if act in ("relu", "lrelu"):
        _off_the_kink(x, weight, bias, rm, rv, kind, mode == "train")
    for t in (x, weight, bias):
        if t is not None:
            t.requires_grad_(case.requires_grad)
    return (x, weight, bias, rm, rv), {"kind": kind, "training": mode == "train", "act": act}


@torch.no_grad()
def _off_the_kink(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                  running_var: Tensor | None, kind: str, training: bool, margin: float = 0.05) -> None:
    """Move the elements of ``x`` whose pre-activation lies within ``margin`` of 0 away from it, in place: there bf16
    rounding decides on which side of (Leaky)ReLU's kink an element falls, and so its gradient. Moving x moves the
    batch statistics a little, so a few rounds re-check."""
    sign = torch.ones(x.shape[1], device=x.device) if weight is None else torch.where(weight >= 0, 1.0, -1.0)
    for _ in range(4):
        z = _norm_act_ref(x.float(), weight, bias, None if running_mean is None else running_mean.clone(),
                          None if running_var is None else running_var.clone(), kind, training, 0.1, 1e-5, "linear",
                          0.0)
        near = z.abs() < margin
        if not near.any():
            return
        away = torch.where(z >= 0, 1.0, -1.0) * sign.view(1, -1, *[1] * (x.ndim - 2))  # along γ's sign: |z| grows
        x.add_((near * away * 2 * margin).to(x.dtype))


SPEC = define_op(OpSpec(
    name="norm_act", call=norm_act, sample=_sample, variants=VARIANTS,
    shapes={k: f"{v.variant} on {v.x}" for k, v in SHAPES.items() if k not in ("small", "odd", "single")},
    shape_type=NormActShape, test_shapes=("single",),
    tol={torch.float32: (1e-4, 1e-4), torch.bfloat16: (3e-2, 3e-2)},
))
