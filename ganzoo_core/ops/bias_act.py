"""``bias_act``: add a per-channel bias, apply an activation, scale by a gain and clamp, in one pass.

    y = clamp(gain * act(x + b), -clamp, clamp)

Implementations (the reference first):

- ``ref``: plain PyTorch, one op per step. Autograd keeps the pre-activation and the activation's input alive.
- ``fused``: one output buffer written in place, and a backward that reads only the *output* ``y`` (every activation
  here except SiLU has a derivative that is a function of its output), so training keeps one tensor per call
  instead of two or three. Its backward is written in differentiable PyTorch, so penalties that need second-order
  gradients (WGAN-GP, R1) work through it.
- ``compiled``: ``torch.compile`` of the reference.
- ``triton``: the ``fused`` algorithm with the forward and first-order backward as Triton kernels (CUDA; tested on
  CPU under ``TRITON_INTERPRET=1``). Under ``create_graph=True`` the backward switches to the PyTorch formulas.

Defaults differ from StyleGAN's on purpose: the gain defaults to 1 for every activation, because the GANs in this zoo
(DCGAN, pix2pix, CycleGAN, StarGAN, StackGAN) do not rescale activations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo_core.errors import ShapeError, UnknownNameError
from ganzoo_core.ops._common import compile_requires, compiled, triton_interpret, triton_requires
from ganzoo_core.ops._dispatch import Case, OpSpec, define_op, dims_field, dispatch, register_op

# ---------------------------------------------------------------------------------------------------------------
# Spec: one row per activation
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class Activation:
    code: int  # the activation's number in the Triton kernels
    func: Callable[[Tensor, float], Tensor]  # reference forward, (x, alpha) -> act(x)
    alpha: float  # default alpha (the negative slope of lrelu)
    grad_from_output: bool  # act'(z) is a function of act(z): backward needs only the output


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(0, lambda x, a: x, 0.0, True),
    "relu": Activation(1, lambda x, a: F.relu(x), 0.0, True),
    "lrelu": Activation(2, lambda x, a: F.leaky_relu(x, a), 0.2, True),
    "tanh": Activation(3, lambda x, a: torch.tanh(x), 0.0, True),
    "sigmoid": Activation(4, lambda x, a: torch.sigmoid(x), 0.0, True),
    "silu": Activation(5, lambda x, a: F.silu(x), 0.0, False),
}


def bias_act(
    x: Tensor,
    b: Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "auto",
) -> Tensor:
    """``clamp(gain * act(x + b), -clamp, clamp)``; each step optional.

    Args:
        x: input of any shape.
        b: bias of shape ``[x.shape[dim]]``, or None.
        dim: the dimension of ``x`` the bias runs along (1: channels of NCHW).
        act: one of ``ACTIVATIONS`` (``linear``, ``relu``, ``lrelu``, ``tanh``, ``sigmoid``, ``silu``).
        alpha: the activation's parameter (lrelu's negative slope, 0.2 by default).
        gain: output scale (1 by default).
        clamp: clamp the output to ``[-clamp, clamp]`` (None: no clamp).
        impl: ``"auto"``, ``"ref"``, ``"fused"``, ``"compiled"``, ``"triton"`` or one a plugin registered.

    Returns:
        A tensor of ``x``'s shape, dtype and memory format.
    """
    args = _checked(x, b, dim, act, alpha, gain, clamp)  # the arguments first, then the implementation
    return dispatch("bias_act", impl, x.device, _bias_act_ref)(*args)


def _checked(x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float | None, gain: float | None,
             clamp: float | None) -> tuple[Any, ...]:
    """``bias_act``'s arguments checked, as its implementations take them (modules call the implementation they
    resolved with these directly)."""
    if act not in ACTIVATIONS:
        raise UnknownNameError(act, "activation", [a for a in ACTIVATIONS if a.startswith(act[:2])],
                               f"bias_act supports {', '.join(ACTIVATIONS)}")
    dim = dim % x.ndim if x.ndim else 0
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ShapeError(f"bias_act: bias of shape {tuple(b.shape)} does not fit dim {dim} of x "
                         f"{tuple(x.shape)}; expected shape ({x.shape[dim]},)")
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 (or None), got {clamp}")
    alpha = float(ACTIVATIONS[act].alpha if alpha is None else alpha)
    gain = 1.0 if gain is None else float(gain)
    return x, b, dim, act, alpha, gain, clamp


# ---------------------------------------------------------------------------------------------------------------
# ref
# ---------------------------------------------------------------------------------------------------------------


@register_op("bias_act.ref", reference=True)
def _bias_act_ref(x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float,
                  clamp: float | None) -> Tensor:
    """Bias, activation, gain and clamp as separate PyTorch ops (the ground truth)."""
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = ACTIVATIONS[act].func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# ---------------------------------------------------------------------------------------------------------------
# fused (PyTorch, in place, output-only backward) and triton share one autograd.Function
# ---------------------------------------------------------------------------------------------------------------


def _act_grad(act: str, src: Tensor, alpha: float, gain: float) -> Tensor:
    """act'(z), from the output ``src = gain * act(z)`` (or from ``src = z`` for SiLU), in differentiable ops."""
    if act == "silu":
        s = torch.sigmoid(src)
        return s * (1 + src * (1 - s))
    t = src / gain if gain != 1 else src
    if act == "linear":
        return torch.ones_like(t)
    if act == "relu":
        return (t > 0).to(t.dtype)
    if act == "lrelu":
        return torch.where(t > 0, 1.0, alpha).to(t.dtype)
    if act == "tanh":
        return 1 - t * t
    return t * (1 - t)  # sigmoid


def activate_(y: Tensor, act: str, alpha: float) -> Tensor:
    """The activation ``act`` applied to ``y`` in place (one of ``ACTIVATIONS``); returns ``y``."""
    if act == "relu":
        y.relu_()
    elif act == "lrelu":
        F.leaky_relu_(y, alpha)
    elif act == "tanh":
        y.tanh_()
    elif act == "sigmoid":
        y.sigmoid_()
    elif act == "silu":
        F.silu(y, inplace=True)
    return y


def _forward_torch(x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float,
                   clamp: float | None) -> tuple[Tensor, Tensor]:
    """(y, z): y computed in one buffer in place; z is the pre-activation (kept only for SiLU)."""
    shape = [-1 if i == dim else 1 for i in range(x.ndim)]
    y = x + b.to(x.dtype).reshape(shape) if b is not None else x.clone()
    z = y.clone() if act == "silu" else y
    activate_(y, act, alpha)
    if gain != 1:
        y.mul_(gain)
    if clamp is not None:
        y.clamp_(-clamp, clamp)
    return y, z


def _backward_torch(dy: Tensor, y: Tensor, z: Tensor, act: str, alpha: float, gain: float,
                    clamp: float | None) -> Tensor:
    """dL/dz from dL/dy and the output y, with ATen's output-based backward kernels (one pass each; they are
    differentiable, so second-order gradients flow through them)."""
    if clamp is not None:
        dy = dy * (y.abs() < clamp).to(dy.dtype)
    if gain != 1:
        dy, y = dy * gain, y / gain
    if act == "linear":
        return dy
    if act == "relu":
        return torch.ops.aten.threshold_backward(dy, y, 0)
    if act == "lrelu":
        return torch.ops.aten.leaky_relu_backward(dy, y, alpha, alpha > 0)
    if act == "tanh":
        return torch.ops.aten.tanh_backward(dy, y)
    if act == "sigmoid":
        return torch.ops.aten.sigmoid_backward(dy, y)
    return dy * _act_grad(act, z, alpha, gain)  # silu, from the kept pre-activation


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float,
                clamp: float | None, backend: str) -> Tensor:
        if backend == "triton":
            y, z = _forward_triton(x, b, dim, act, alpha, gain, clamp)
        else:
            y, z = _forward_torch(x, b, dim, act, alpha, gain, clamp)
        ctx.save_for_backward(y, z if act == "silu" else None)
        ctx.args = (dim, act, alpha, gain, clamp, backend, b is not None, b.dtype if b is not None else None)
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        y, z = ctx.saved_tensors
        dim, act, alpha, gain, clamp, backend, has_b, b_dtype = ctx.args
        z = y if z is None else z
        if backend == "triton" and not torch.is_grad_enabled():  # first order only: second order needs the graph
            dz = _backward_triton(dy, y, z, act, alpha, gain, clamp)
        else:
            dz = _backward_torch(dy, y, z, act, alpha, gain, clamp)
        db = None
        if has_b and ctx.needs_input_grad[1]:
            db = dz.sum([i for i in range(dz.ndim) if i != dim]).to(b_dtype)
        return dz, db, None, None, None, None, None, None


def _needs_function(x: Tensor, b: Tensor | None, act: str, gain: float, clamp: float | None) -> bool:
    return not (b is None and act == "linear" and gain == 1 and clamp is None)


@register_op("bias_act.fused", auto=("cpu",), priority=10)
def _bias_act_fused(x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float,
                    clamp: float | None) -> Tensor:
    """One buffer written in place; the backward reads only the output (memory-saving)."""
    if not _needs_function(x, b, act, gain, clamp):
        return x
    return _BiasAct.apply(x, b, dim, act, alpha, gain, clamp, "torch")


# ---------------------------------------------------------------------------------------------------------------
# compiled
# ---------------------------------------------------------------------------------------------------------------

_compiled_ref = compiled(_bias_act_ref)


@register_op("bias_act.compiled", requires=compile_requires)
def _bias_act_compiled(*args: Any) -> Tensor:
    """torch.compile of the reference."""
    return _compiled_ref(*args)


# ---------------------------------------------------------------------------------------------------------------
# triton
# ---------------------------------------------------------------------------------------------------------------

BLOCK = 1024


@functools.cache
def _kernels(interpret: bool) -> tuple[Any, Any]:
    """Build the Triton kernels on first use (``interpret`` keys the cache: the interpreter is chosen at build)."""
    import triton
    import triton.language as tl

    @triton.jit
    def fwd(x_ptr, b_ptr, y_ptr, n, C, inner, alpha, gain, clamp,
            ACT: tl.constexpr, HAS_B: tl.constexpr, CLAMP: tl.constexpr, BLOCK: tl.constexpr) -> None:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_B:
            z += tl.load(b_ptr + (offs // inner) % C, mask=mask, other=0.0).to(tl.float32)
        if ACT == 1:
            z = tl.maximum(z, 0.0)
        elif ACT == 2:
            z = tl.where(z > 0, z, z * alpha)
        elif ACT == 3:
            z = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)  # tanh, saturating correctly at both ends
        elif ACT == 4:
            z = (1.0 / (1.0 + tl.exp(-z)))
        elif ACT == 5:
            z = z * (1.0 / (1.0 + tl.exp(-z)))
        y = z * gain
        if CLAMP:
            y = tl.minimum(tl.maximum(y, -clamp), clamp)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def bwd(dy_ptr, y_ptr, z_ptr, dz_ptr, n, alpha, gain, clamp,
            ACT: tl.constexpr, CLAMP: tl.constexpr, BLOCK: tl.constexpr) -> None:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        t = y / gain
        if ACT == 0:
            d = tl.full(t.shape, 1.0, tl.float32)
        elif ACT == 1:
            d = tl.where(t > 0, 1.0, 0.0)
        elif ACT == 2:
            d = tl.where(t > 0, 1.0, alpha)
        elif ACT == 3:
            d = 1.0 - t * t
        elif ACT == 4:
            d = t * (1.0 - t)
        else:
            z = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            s = (1.0 / (1.0 + tl.exp(-z)))
            d = s * (1.0 + z * (1.0 - s))
        g = dy * d * gain
        if CLAMP:
            g = tl.where(tl.abs(y) < clamp, g, 0.0)
        tl.store(dz_ptr + offs, g.to(dz_ptr.dtype.element_ty), mask=mask)

    return fwd, bwd


def _channel_layout(x: Tensor, dim: int) -> tuple[Tensor, int]:
    """(x in a dense layout, elements between consecutive channels in memory) for flat indexing in the kernel."""
    if x.ndim == 4 and dim == 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return x, 1
    x = x.contiguous()
    return x, math.prod(x.shape[dim + 1:])


def _forward_triton(x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float,
                    clamp: float | None) -> tuple[Tensor, Tensor]:
    fwd, _ = _kernels(triton_interpret())
    x, inner = _channel_layout(x, dim)
    y = torch.empty_like(x)
    z = x  # the pre-activation, which SiLU's backward reads; with a bias it is recomputed below
    n = x.numel()
    if n:
        bias = b.to(x.dtype) if b is not None else x  # any pointer when HAS_B is false
        fwd[(triton_cdiv(n),)](x, bias, y, n, x.shape[dim] if x.ndim else 1, inner, alpha, gain,
                               0.0 if clamp is None else float(clamp), ACT=ACTIVATIONS[act].code,
                               HAS_B=b is not None, CLAMP=clamp is not None, BLOCK=BLOCK)
    if act == "silu" and b is not None:
        z = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    return y, z


def _backward_triton(dy: Tensor, y: Tensor, z: Tensor, act: str, alpha: float, gain: float,
                     clamp: float | None) -> Tensor:
    _, bwd = _kernels(triton_interpret())
    dy = dy.contiguous(memory_format=_memory_format(y))
    dz = torch.empty_like(y)
    n = y.numel()
    if n:
        bwd[(triton_cdiv(n),)](dy, y, z.contiguous(memory_format=_memory_format(y)), dz, n, alpha, gain,
                               0.0 if clamp is None else float(clamp), ACT=ACTIVATIONS[act].code,
                               CLAMP=clamp is not None, BLOCK=BLOCK)
    return dz


def _memory_format(t: Tensor) -> torch.memory_format:
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def triton_cdiv(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK


@register_op("bias_act.triton", requires=triton_requires, priority=20)  # on CUDA once measured
def _bias_act_triton(x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float,
                     clamp: float | None) -> Tensor:
    """Triton forward and backward kernels (CUDA)."""
    if not _needs_function(x, b, act, gain, clamp):
        return x
    return _BiasAct.apply(x, b, dim, act, alpha, gain, clamp, "triton")


# ---------------------------------------------------------------------------------------------------------------
# Test and benchmark specification
# ---------------------------------------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class BiasActShape:
    """The inputs of one ``bias_act`` case (a test shape, or a benchmark shape of ``ganzoo bench ops --shapes``)."""

    x: tuple[int, ...] = dims_field()  # the input's shape; the bias runs along dim 1
    act: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.in_(ACTIVATIONS)))
    # the activation; None: the case's variant
    bias: bool = True  # with a bias


SHAPES = {
    "small": BiasActShape(x=(4, 8, 6, 6)),
    "odd": BiasActShape(x=(3, 5, 7, 9)),
    # benchmark shapes: a generic layer of each kind (benchmarks/shapes.toml has the zoo's model layers)
    "lrelu.64x64x32x32": BiasActShape(x=(64, 64, 32, 32), act="lrelu", bias=False),
    "tanh.64x3x64x64": BiasActShape(x=(64, 3, 64, 64), act="tanh", bias=False),
    "relu.1x256x64x64": BiasActShape(x=(1, 256, 64, 64), act="relu"),
}
VARIANTS = ("linear", "relu", "lrelu", "tanh", "sigmoid", "silu", "lrelu+gain+clamp")


def _sample(case: Case, gen: torch.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    params = case.params if case.params is not None else SHAPES[case.shape]
    shape, with_bias = params.x, params.bias
    variant = case.variant if params.act is None else params.act
    act_name, _, extra = variant.partition("+")
    x = torch.randn(shape, generator=gen).to(case.device, case.dtype)
    if case.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    b = (torch.randn(shape[1], generator=gen) * 0.5).to(case.device) if with_bias else None
    kwargs: dict[str, Any] = {"act": act_name}
    with torch.no_grad():  # keep pre-activations off the kink at 0, where bf16 rounding decides the gradient's side
        pre = x.float() + (b.float().reshape(1, -1, *[1] * (x.ndim - 2)) if b is not None else 0)
        x.add_((pre.abs() < 0.02).to(x.dtype) * 0.05)
    if extra:
        kwargs |= {"gain": math.sqrt(2), "clamp": 1.5}
        with torch.no_grad():  # keep pre-clamp values off the clamp edge, where bf16 rounding decides the gradient
            pre = _bias_act_ref(x.float(), b, 1, act_name, ACTIVATIONS[act_name].alpha, math.sqrt(2), None)
            x.add_(((pre.abs() - 1.5).abs() < 0.05).to(x.dtype) * 0.2)
    x.requires_grad_(case.requires_grad)
    if b is not None:
        b.requires_grad_(case.requires_grad)
    return (x, b), kwargs


SPEC = define_op(OpSpec(
    name="bias_act", call=bias_act, sample=_sample, variants=VARIANTS,
    shapes={k: f"{v.act} on {v.x}{' with bias' if v.bias else ''}" for k, v in SHAPES.items()
            if k not in ("small", "odd")},
    shape_type=BiasActShape,
))
